"""Generate the docs' reference pages; mkdocs-gen-files runs this at build time (mkdocs.yml).

Nothing here is written twice: every page is read from what the code and configuration hold.

- ``reference/options.md`` (:func:`options_page`): every config group and option
  (``conf/<group>/*.yaml``), every key with its default, read from the composed configuration
  (``fedlab.run.compose_config``), and its meaning, read from the builder's Google-style
  docstring (``Args:`` or ``Attributes:``), the option file's comments and, for the top level,
  the schema dataclasses of ``fedlab.config``.
- ``reference/run-folder.md`` (:func:`run_folder_page`): every file of a run folder (names from
  ``fedlab/runs/files.py``) and every column of ``metrics.csv``, ``summary.json`` and the
  report's tables, from ``docs/reference/columns.yaml``.
- ``reference/cli.md`` (:func:`cli_page`): each command's ``--help``, captured now.
- ``reference/api/*.md`` (:func:`api_pages`): one mkdocstrings page per package; fedlab's
  docstrings name objects with Sphinx roles (``:class:`Task```), which :class:`SphinxRoles`, a
  griffe extension mkdocs.yml loads, shows as code.

``tests/test_docs.py`` calls these functions: the reference cannot fall behind the code.
"""

from __future__ import annotations

import ast
import enum
import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
CONF = REPO / "conf"
COLUMNS_FILE = REPO / "docs" / "reference" / "columns.yaml"
FILES_MODULE = REPO / "fedlab" / "runs" / "files.py"

# The packages of the Python API reference, one page each, in this order.
API_MODULES = (
    "fedlab.run", "fedlab.config", "fedlab.data", "fedlab.tasks", "fedlab.models",
    "fedlab.algorithms", "fedlab.aggregators", "fedlab.attacks", "fedlab.privacy",
    "fedlab.optimizers",
    "fedlab.clients", "fedlab.trainers", "fedlab.callbacks", "fedlab.executors",
    "fedlab.loggers", "fedlab.runs", "fedlab.report", "fedlab.errors",
)
# The commands: (console script, ``python -m`` module); pyproject.toml names each script's code.
COMMANDS = (
    ("fedlab", "fedlab"),
    ("fedlab-report", "fedlab.report"),
    ("fedlab-select", "fedlab.select"),
    ("fedlab-worker", "fedlab.worker"),
    ("fedlab-credentials", "fedlab.credentials"),
)
# Groups whose options set keys anywhere (``@package _global_``), listed after the others.
# These, and any group without a default in conf/config.yaml (added with ``+group=option``), are
# shown as the keys their files set; the other groups' options as the nodes they compose to.
GLOBAL_GROUPS = ("hparams_search", "experiment")
# Keys of a group node documented by a schema besides (or instead of) a builder's arguments.
GROUP_SCHEMAS = {"dataset": "fedlab.config.schemas.DatasetSchema",
                 "schedule": "fedlab.config.schedule.Schedule"}
# The top level's keys that are not groups, and the schema documenting each level.
TOP_LEVEL = (("", "fedlab.config.schemas.FedlabSchema"),
             ("objective", "fedlab.config.schemas.ObjectiveSchema"),
             ("personalization", "fedlab.config.schemas.PersonalizationSchema"))
HIDDEN_KEYS = ("_target_", "_partial_")
UNDOCUMENTED = "**undocumented**"

# ---- docstrings

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj):`(~?)([^`]+)`")


def without_roles(text: str) -> str:
    """Sphinx roles as code spans: ``:class:`~a.B``` -> ```B```, ``:func:`a.f``` -> ```a.f```."""
    return ROLE.sub(lambda m: f"``{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}``",
                    text)


def markdown(text: str) -> str:
    """A docstring fragment (reST roles, double backticks) as one line of Markdown."""
    text = without_roles(text).replace("``", "`")
    parts = text.split("`")
    # Outside code spans: no raw HTML, no table breaks.
    parts = [part if i % 2 else part.replace("<", "&lt;") for i, part in enumerate(parts)]
    return " ".join("`".join(parts).replace("|", "\\|").split())


def locate(target: str):
    """The object a ``_target_`` names (importing its module)."""
    module_name, _, name = target.rpartition(".")
    while module_name:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            module_name, _, outer = module_name.rpartition(".")
            name = f"{outer}.{name}"
            continue
        obj = module
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj
    raise ImportError(target)


def docstring_sections(text: str | None) -> dict:
    """``{"summary": first paragraph, "params": {name: description}}`` of a Google docstring."""
    from griffe import Docstring

    text = inspect.cleandoc(text or "")
    params = {}
    parsed = Docstring(text).parse("google", warnings=False)  # libraries' docstrings too
    for section in parsed:
        if section.kind.value in ("parameters", "attributes", "other parameters"):
            params.update({p.name: p.description for p in section.value})
    return {"summary": text.split("\n\n", 1)[0], "params": params}


def field_comments(cls: type) -> dict[str, str]:
    """The comment lines above (or beside) each annotated field of a class's source."""
    try:
        lines, _ = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return {}
    comments, pending = {}, []
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("# "))
            continue
        match = re.match(r"(\w+)\s*:[^=]*(?:=.*?)?(?:#\s*(.*))?$", stripped)
        if match and pending + [match.group(2) or ""] != [""]:
            comments[match.group(1)] = " ".join([*pending, match.group(2) or ""]).strip()
        pending = []
    return comments


@cache
def parameter_docs(target: str) -> dict:
    """``{"summary", "params"}`` of a builder: its docstring and its ``__init__``'s, merged."""
    try:
        obj = locate(target)
    except (ImportError, AttributeError):
        return {"summary": "", "params": {}}
    docs = docstring_sections(obj.__doc__)
    if inspect.isclass(obj):
        init = obj.__dict__.get("__init__")
        if init is not None and init.__doc__:
            docs["params"].update(docstring_sections(init.__doc__)["params"])
        for name, comment in field_comments(obj).items():
            docs["params"].setdefault(name, comment)
    return docs


def choices_of(target: str) -> dict[str, list[str]]:
    """The closed choices (enums) among a fedlab builder's parameters: name -> values.

    Read as the config schemas read them (``fedlab.config.signatures``), so a choice added to
    an enum shows here at once.
    """
    from fedlab.config.signatures import SignatureError, signature_fields

    try:
        fields = signature_fields(target)
    except SignatureError:
        return {}
    return {name: [member.value for member in kind] for name, kind, _ in fields
            if isinstance(kind, type) and issubclass(kind, enum.Enum)}


# ---- option files

def option_files() -> dict[str, list[Path]]:
    """``group -> option files``, ``hydra/launcher`` included, in the order the page lists."""
    groups = {}
    for path in sorted(CONF.rglob("*.yaml")):
        group = str(path.parent.relative_to(CONF))
        if group != ".":
            groups.setdefault(group, []).append(path)
    order = [g for g in default_options() if g in groups]
    order += [g for g in sorted(groups) if g not in order and g not in GLOBAL_GROUPS
              and not g.startswith("hydra")]
    order += [g for g in GLOBAL_GROUPS if g in groups]
    order += [g for g in sorted(groups) if g.startswith("hydra")]
    return {group: groups[group] for group in order}


@cache
def default_options() -> dict[str, str | None]:
    """``group -> default option`` from ``conf/config.yaml``'s defaults list."""
    defaults = yaml.safe_load((CONF / "config.yaml").read_text())["defaults"]
    return {group: option for item in defaults if isinstance(item, dict)
            for group, option in item.items()}


def header_comment(path: Path) -> str:
    """An option file's leading comment as Markdown: prose, and its example commands as code."""
    prose, code, blocks = [], [], []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line[1:]
        if text.strip().startswith("@package"):
            continue
        text = text[1:] if text.startswith(" ") else text
        if text.startswith("  "):  # an example command
            if prose:
                blocks.append(markdown(" ".join(prose)))
                prose = []
            code.append(text.rstrip())
        else:
            if code:
                blocks.append("```\n" + inspect.cleandoc("\n".join(code)) + "\n```")
                code = []
            prose.append(text.strip())
    if prose:
        blocks.append(markdown(" ".join(prose)))
    if code:
        blocks.append("```\n" + inspect.cleandoc("\n".join(code)) + "\n```")
    return "\n\n".join(blocks)


def key_comments(path: Path) -> dict[str, str]:
    """Comments on an option file's keys (the lines above a key, or after it): path -> text."""
    comments, stack, pending, in_header = {}, [], [], True
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if in_header and (stripped.startswith("#") or not stripped):
            continue
        in_header = False
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("# "))
            continue
        match = re.match(r"(\s*)([\w/@.]+):(.*)$", line)
        if not match or stripped.startswith("-"):
            pending = []
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3)
        stack = [(i, k) for i, k in stack if i < indent] + [(indent, key)]
        inline = rest.split(" #", 1)[1].strip() if " #" in rest else ""
        text = " ".join([*pending, inline]).strip()
        if text:
            comments[".".join(k for _, k in stack)] = text
            if key == "_target_" and len(stack) > 1:  # a comment on the entry it builds
                comments.setdefault(".".join(k for _, k in stack[:-1]), text)
        pending = []
    return comments


def value_text(value) -> str:
    """A default as it would be written on the command line."""
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, enum.Enum):
        return f"`{value.value}`"
    if value == "???":
        return "required"
    if isinstance(value, dict | list):
        return "`" + yaml.safe_dump(value, default_flow_style=True, width=10_000).strip() + "`"
    return f"`{value}`"


# ---- the options page

def compose(overrides: list[str]):
    """The configuration ``python -m fedlab OVERRIDES`` runs (Hydra's compose API)."""
    from fedlab.run import compose_config

    return compose_config(overrides)


@cache
def composed_options() -> dict[tuple[str, str], object]:
    """``(group, option) -> composed node`` of every option of the groups the assembler reads.

    One composition picks one option of every group at once (a group's node does not depend
    on the others' choices: interpolations stay unresolved), so the few compositions it takes
    stay fast.
    """
    groups = {group: [p.stem for p in paths] for group, paths in option_files().items()
              if group not in GLOBAL_GROUPS and default_options().get(group) is not None}
    nodes = {}
    for index in range(max(len(options) for options in groups.values())):
        picked = {group: options[index] for group, options in groups.items()
                  if index < len(options)}
        cfg = compose([f"{group}={option}" for group, option in picked.items()])
        nodes.update({(group, option): cfg[group] for group, option in picked.items()})
    return nodes


def node_rows(node, prefix: str, comments: dict[str, str], extra_docs: tuple[str, ...] = (),
              missing: list | None = None) -> list[tuple[str, str, str]]:
    """``(key, default, meaning)`` of every key under a composed ``node`` (recursively).

    Args:
      node: a composed config node (interpolations kept: they are the defaults).
      prefix: its dotted path (``dataset``).
      comments: the option file's comments, by dotted path.
      extra_docs: schemas also documenting the node's keys (the group's schema).
      missing: collects ``(key, target)`` of keys without a meaning.
    """
    from omegaconf import OmegaConf

    target = node.get("_target_") if "_target_" in node else None
    docs, choices = {}, {}
    for source in (*extra_docs, *([target] if target else [])):
        docs.update(parameter_docs(source)["params"])
        choices.update(choices_of(source))
    rows = []
    container = OmegaConf.to_container(node, resolve=False)
    for key, value in container.items():
        if key in HIDDEN_KEYS:
            continue
        path = f"{prefix}.{key}"
        local = path.split(".", 1)[1]
        meaning = [markdown(docs[key])] if docs.get(key) else []
        if isinstance(value, dict) and "_target_" in value:
            child_target = value["_target_"]
            if not meaning:
                meaning.append(markdown(parameter_docs(child_target)["summary"]))
            if local in comments:
                meaning.append(here(comments[local], meaning))
            rows.append((path, f"`{child_target}`", " ".join(meaning) or _missing(
                missing, path, target)))
            rows += node_rows(node[key], path, comments, missing=missing)
            continue
        if local in comments:
            meaning.append(here(comments[local], meaning))
        if key in choices:
            meaning.append("One of " + ", ".join(f"`{c}`" for c in choices[key]) + ".")
        rows.append((path, value_text(value), " ".join(meaning) or _missing(missing, path,
                                                                             target)))
    return rows


def here(comment: str, meaning: list[str]) -> str:
    """An option file's comment on a key, after the key's own meaning if it has one."""
    return f"*Here:* {markdown(comment)}" if meaning else markdown(comment)


def _missing(missing: list | None, path: str, target: str | None) -> str:
    if missing is not None:
        missing.append((path, target))
    return UNDOCUMENTED


def table(rows: list[tuple[str, str, str]], header: str = "default") -> str:
    """A key | default | meaning table."""
    lines = [f"| key | {header} | meaning |", "|---|---|---|"]
    lines += [f"| `{key}` | {default} | {meaning} |" for key, default, meaning in rows]
    return "\n".join(lines)


def flat_keys(value, prefix: str = "") -> list[tuple[str, object]]:
    """A YAML mapping's leaves as ``(dotted key, value)``."""
    if isinstance(value, dict) and value:
        return [leaf for key, child in value.items()
                for leaf in flat_keys(child, f"{prefix}.{key}" if prefix else str(key))]
    return [(prefix, value)]


def options_page(missing: list | None = None) -> str:
    """``reference/options.md``: every group, option and key, with default and meaning.

    Args:
      missing: collects ``(key, target)`` of every key without a meaning.
    """
    groups = option_files()
    # (group, option) -> {dotted key: meaning}, for the global options' tables ("": top level)
    known: dict[tuple[str, str], dict[str, str]] = {}
    out = ["# Configuration options", "",
           "Every configuration group, every option of it and every key the option sets, with "
           "its default (read from the configuration `python -m fedlab group=option` composes) "
           "and its meaning (read from the builder's docstring and the option file's comments). "
           "This page is generated from the code by `docs/gen_reference.py` at every docs "
           "build; `python -m fedlab --help` lists the same groups and `python -m fedlab "
           "--cfg job [overrides]` prints any composition.", "",
           "Pick an option with `group=option`, set a key with `group.key=value`, add a key an "
           "option lacks with `+group.key=value`, drop one with `~group.key`. A default "
           "written `${...}` follows another key (an interpolation): `${schedule.seed}` means "
           "the key takes the training seed unless set. Defaults are written once, in the "
           "builder's signature: the option files set only what differs.", "",
           "Groups: " + ", ".join(f"[`{g}`](#{anchor(g)})" for g in ["top level", *groups]),
           "", "## Top level {#top-level}", "",
           "Keys that are not groups (`fedlab.config.schemas.FedlabSchema`, "
           "`ObjectiveSchema`, `PersonalizationSchema`).", ""]
    from omegaconf import OmegaConf

    base = OmegaConf.to_container(compose([]), resolve=False)
    rows = []
    for prefix, schema in TOP_LEVEL:
        values = base[prefix] if prefix else {
            key: value for key, value in base.items()
            if key not in default_options() and not isinstance(value, dict)}
        docs = parameter_docs(schema)["params"]
        choices = choices_of(schema)
        for key, value in values.items():
            name = f"{prefix}.{key}" if prefix else key
            meaning = markdown(docs.get(key, "")) or _missing(missing, name, schema)
            if key in choices:
                meaning += " One of " + ", ".join(f"`{c}`" for c in choices[key]) + "."
            rows.append((name, value_text(value), meaning))
    out += [table(rows), ""]
    known[("", "")] = {key: meaning for key, _, meaning in rows}
    for group, paths in groups.items():
        default = default_options().get(group)
        out += [f"## {group} {{#{anchor(group)}}}", ""]
        out += [f"Default: `{default}`." if default else
                f"No default: pick one with `{group}=<option>`." if group in default_options()
                else f"Not in the defaults list: add an option with `+{group}=<option>`.",
                "Options: " + ", ".join(f"[`{p.stem}`](#{anchor(group, p.stem)})"
                                        for p in paths), ""]
        for path in paths:
            out += option_section(group, path, known, missing)
    return "\n".join(out) + "\n"


def anchor(group: str, option: str | None = None) -> str:
    """The page anchor of a group (``dataset``) or an option (``dataset-mnist``)."""
    name = group.replace("/", "-").replace(" ", "-")
    return f"{name}-{option}".replace("_", "-") if option else name.replace("_", "-")


def option_section(group: str, path: Path, known: dict, missing: list | None) -> list[str]:
    """One option's heading, its file's comment and its keys."""
    option = path.stem
    out = [f"### {group}={option} {{#{anchor(group, option)}}}", ""]
    comment = header_comment(path)
    if comment:
        out += [comment, ""]
    raw = yaml.safe_load(path.read_text()) or {}
    comments = key_comments(path)
    if group.startswith("hydra"):
        out += [f"Select with `{group}={option}`; it sets Hydra's launcher "
                "(`hydra.launcher.*`, the plugin's own settings; see its documentation).", ""]
        rows = [(f"hydra.launcher.{key}", value_text(value),
                 markdown(comments.get(key, "")) or "a setting of the launcher plugin")
                for key, value in flat_keys({k: v for k, v in raw.items() if k != "defaults"})]
        extends = [d for d in raw.get("defaults", []) if isinstance(d, str)]
        if extends:
            out += ["Extends: " + ", ".join(f"`{e}`" for e in extends) + ".", ""]
        return out + [table(rows), ""]
    if (group, option) not in composed_options():  # keys set where the file's package says
        select = f"+{group}={option}" if default_options().get(group, "") == "" else \
            f"{group}={option}"
        extends = [d for d in raw.get("defaults", []) if isinstance(d, str)]
        out += [f"Select with `{select}`"
                + (" (it extends " + ", ".join(f"[`{e}`](#{anchor(group, e)})" for e in extends)
                   + ", whose settings it keeps)" if extends else "") + ". It sets:", ""]
        rows, chosen = [], dict(default_options())
        for item in raw.get("defaults", []):
            if isinstance(item, dict):
                for key, value in item.items():
                    name = key.replace("override /", "")
                    chosen[name] = value
                    where = (f"[`{name}`](#{anchor(name)})" if name in option_files()
                             else f"`{name}`")
                    rows.append((name, f"`{value}`", f"selects the option `{value}` of {where}"))
        package = package_of(path)
        prefix = "" if package == "_global_" else (package or group)
        for key, value in flat_keys({k: v for k, v in raw.items() if k != "defaults"}, prefix):
            group_of = key.split(".", 1)[0]
            meaning = known.get((group_of, chosen.get(group_of)), known[("", "")]).get(key, "")
            if comments.get(key):
                meaning = (f"{meaning} *Here:* {markdown(comments[key])}" if meaning
                           else markdown(comments[key]))
            rows.append((key, value_text(value), meaning or global_meaning(key)))
        return out + [table(rows, "value"), ""]
    node = composed_options()[(group, option)]
    if node is None:
        return out + ["Sets no keys.", ""]
    target = node.get("_target_")
    if target:
        summary = markdown(parameter_docs(target)["summary"])
        partial = " It is called with `(input_shape, num_classes)` of the data set." \
            if node.get("_partial_") else ""
        out += [f"Builds `{target}`" + (f": {summary}" if summary else ".") + partial, ""]
    extra = (GROUP_SCHEMAS[group],) if group in GROUP_SCHEMAS else ()
    rows = node_rows(node, group, comments, extra, missing)
    known[(group, option)] = {key: meaning for key, _, meaning in rows}
    return out + ([table(rows), ""] if rows else ["Sets no keys.", ""])


def package_of(path: Path) -> str | None:
    """The ``# @package`` an option file declares (None: its group's)."""
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            return None
        if line[1:].strip().startswith("@package"):
            return line[1:].strip().split(None, 1)[1].strip()
    return None


def global_meaning(key: str) -> str:
    """What a Hydra key an experiment sets means."""
    if key.startswith("hydra.sweeper.params."):
        return (f"swept: one job per value of `{key.removeprefix('hydra.sweeper.params.')}` "
                "(comma-separated), or an Optuna search space")
    if key == "hydra.sweep.dir":
        return "the sweep folder (its jobs' folders are `<n>/` in it)"
    if key.startswith("hydra.sweeper."):
        return "a setting of the sweeper (fedlab's Optuna sweeper)"
    return "a setting of Hydra" if key.startswith("hydra.") else ""


# ---- the run folder page

def run_file_names() -> dict[str, tuple[str, str]]:
    """``constant -> (file name, comment)`` of ``fedlab/runs/files.py``."""
    source = FILES_MODULE.read_text()
    lines = source.splitlines()
    names = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            line = lines[node.lineno - 1]
            comment = line.split("#", 1)[1].strip() if "#" in line else ""
            names[node.targets[0].id] = (node.value.value, comment)
    return names


def columns() -> dict:
    """``docs/reference/columns.yaml``: the documented files and columns."""
    return yaml.safe_load(COLUMNS_FILE.read_text())


def documented_names(section: str) -> set[str]:
    """Every name a section of ``columns.yaml`` documents (its tables merged)."""
    return {name for block in columns()[section]["tables"] for name in block["names"]}


def run_folder_page() -> str:
    """``reference/run-folder.md``: the run folder's files and every table's columns."""
    data = columns()
    out = ["# Run folder files and columns", "", markdown(data["intro"]), "",
           "This page is generated by `docs/gen_reference.py` from "
           "`docs/reference/columns.yaml` (the meanings) and `fedlab/runs/files.py` (the file "
           "names); `tests/test_docs.py` runs a run and fails when it writes a column or key "
           "this page does not document.", ""]
    constants = run_file_names()
    for section, spec in data.items():
        if section == "intro":
            continue
        out += [f"## {spec['title']} {{#{spec['anchor']}}}", ""]
        if spec.get("text"):
            out += [markdown(spec["text"]), ""]
        for block in spec["tables"]:
            if block.get("when"):
                out += [f"**{markdown(block['when'])}**", ""]
            out += [f"| {spec['header']} | meaning |", "|---|---|"]
            for name, meaning in block["names"].items():
                constant = next((c for c, (value, _) in constants.items() if value == name), None)
                note = f" (`fedlab.runs.files.{constant}`)" if constant else ""
                out.append(f"| `{name}` | {markdown(meaning)}{note} |")
            out.append("")
    return "\n".join(out) + "\n"


# ---- the command line page

def console_scripts() -> dict[str, str]:
    """``[project.scripts]`` of pyproject.toml: script -> ``module:function``."""
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def help_text(module: str) -> str:
    """``python -m module --help``, as a user's terminal of 100 columns shows it."""
    env = {**os.environ, "COLUMNS": "100", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                            text=True, cwd=REPO, env=env, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"python -m {module} --help failed: {result.stderr[-2000:]}")
    return result.stdout.rstrip()


def cli_page() -> str:
    """``reference/cli.md``: each command, what it does and its ``--help``, captured now."""
    scripts = console_scripts()
    out = ["# Command line", "",
           "fedlab's commands, each as a module (`uv run python -m ...`) and as the console "
           "script the package installs (`uv run fedlab-...`; the same code). The help texts "
           "below are captured from the commands at every docs build "
           "(`docs/gen_reference.py`).", "",
           "| command | console script | what it does |", "|---|---|---|"]
    for script, module in COMMANDS:
        origin = importlib.util.find_spec(scripts[script].split(":")[0]).origin
        doc = ast.get_docstring(ast.parse(Path(origin).read_text())) or ""
        summary = markdown(doc.split("\n\n", 1)[0])
        out.append(f"| [`python -m {module}`](#{script}) | `{script}` | {summary} "
                   f"(`{scripts[script]}`) |")
    out.append("")
    for script, module in COMMANDS:
        out += [f"## python -m {module} {{#{script}}}", "", f"Also `{script}`.", "",
                "```text", help_text(module), "```", ""]
    return "\n".join(out) + "\n"


# ---- the Python API pages

def api_pages() -> dict[str, str]:
    """``reference/api/<module>.md`` for each of :data:`API_MODULES`, and the index."""
    pages = {}
    rows = []
    for module in API_MODULES:
        name = f"reference/api/{module}.md"
        summary = module_summary(module)
        rows.append(f"| [`{module}`]({module}.md) | {summary} |")
        pages[name] = (f"# {module}\n\n::: {module}\n    options:\n      show_submodules: true\n"
                       "      show_root_heading: false\n      show_root_toc_entry: false\n")
    pages["reference/api/index.md"] = "\n".join([
        "# Python API", "",
        "The docstrings of fedlab's packages, rendered by mkdocstrings (read from the source, "
        "not imported). Where each package sits in a run: "
        "[Architecture](../../explanation/architecture.md).", "",
        "| package | what it holds |", "|---|---|", *rows]) + "\n"
    return pages


def module_summary(module: str) -> str:
    """The first line of a package's docstring, or of its modules' when it has none."""
    path = REPO.joinpath(*module.split("."))
    files = [path.with_suffix(".py")] if path.with_suffix(".py").exists() else \
        [path / "__init__.py", *sorted(p for p in path.glob("*.py") if p.name != "__init__.py")]
    for file in files:
        doc = ast.get_docstring(ast.parse(file.read_text()))
        if doc:
            summary = markdown(doc.split("\n\n", 1)[0])
            return summary if file.name == "__init__.py" or len(files) == 1 else \
                f"{summary} (`{file.stem}`)"
    return ""


try:
    import griffe

    class SphinxRoles(griffe.Extension):
        """A griffe extension: docstrings' Sphinx roles shown as code (mkdocs.yml loads it)."""

        def on_instance(self, *, obj, **kwargs) -> None:
            """Rewrite the roles of each object's docstring as it is loaded."""
            del kwargs
            if obj.docstring is not None:
                obj.docstring.value = without_roles(obj.docstring.value)
except ImportError:  # griffe comes with mkdocstrings (the dev group)
    pass


def main() -> None:
    """Write every page into the docs mkdocs builds (mkdocs-gen-files' virtual files)."""
    import mkdocs_gen_files

    pages = {"reference/options.md": options_page(),
             "reference/run-folder.md": run_folder_page(),
             "reference/cli.md": cli_page(),
             **api_pages()}
    for name, text in pages.items():
        with mkdocs_gen_files.open(name, "w") as page:
            page.write(text)


if __name__ in ("__main__", "<run_path>"):
    main()
