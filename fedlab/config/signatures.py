"""Config schemas derived from fedlab's builders' signatures: each default is written once.

An option file ``conf/<group>/<option>.yaml`` that names a fedlab ``_target_`` gets the schema
``schema/<group>/<option>`` (its defaults list extends it: ``- /schema/<group>/<option>@_here_``):
a dataclass with one field per parameter of the target, typed from its annotation and defaulting
to its default (a parameter without a default is required: ``???``). A node of the option with
a ``_target_`` of its own (a data set's ``partition``) gets its target's schema too. So the
builder's signature is the only place a default is written; the YAML sets only what differs.

The signature is read from the target's source file (Python's ``ast``), not by importing it:
fedlab's builders import TensorFlow, which ``python -m fedlab --help``, ``--cfg`` and the
skipping of completed sweep jobs do not wait for. ``tests/test_config.py`` checks every derived
schema against ``inspect.signature`` of the imported builder.
"""

import ast
import dataclasses
import enum
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import MISSING, OmegaConf

from fedlab.config import choices

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
# Names an annotation may use, resolved without importing the builder's module; any other
# annotation (a TFF or Keras type) is typed Any.
ANNOTATION_NAMES = {
    "int": int, "float": float, "str": str, "bool": bool, "None": None, "Any": Any,
    "list": list, "tuple": list, "dict": dict, "Sequence": list, "Mapping": dict,
    **{name: value for name, value in vars(choices).items()
       if isinstance(value, type) and issubclass(value, enum.Enum)},
}


class SignatureError(ValueError):
    """A target's signature cannot be read from its source."""


def _source_node(target: str) -> tuple[ast.AST, ast.Module]:
    """The ``def`` or ``class`` node ``target`` names, and its module's tree (no import)."""
    parts = target.split(".")
    if parts[0] != "fedlab":
        raise SignatureError(f"{target}: only fedlab's own builders are read from source")
    for split in range(len(parts) - 1, 0, -1):
        base = PACKAGE_ROOT.joinpath(*parts[1:split])
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                module = ast.parse(path.read_text(), str(path))
                node: ast.AST = module
                for name in parts[split:]:
                    found = next((child for child in ast.iter_child_nodes(node)
                                  if isinstance(child, ast.FunctionDef | ast.ClassDef)
                                  and child.name == name), None)
                    if found is None and node is module:  # re-exported: where it comes from
                        origin = next((f"{statement.module}.{name}" for statement in module.body
                                       if isinstance(statement, ast.ImportFrom)
                                       and any(a.name == name and a.asname is None
                                               for a in statement.names)), None)
                        if origin is not None:
                            return _source_node(origin)
                    if found is None:
                        raise SignatureError(f"{target}: no {name} in {path}")
                    node = found
                return node, module
    raise SignatureError(f"{target}: no module of it under {PACKAGE_ROOT}")


def _module_tree(module_name: str) -> ast.Module:
    """The syntax tree of fedlab module ``module_name`` (read, not imported)."""
    base = PACKAGE_ROOT.joinpath(*module_name.split(".")[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return ast.parse(path.read_text(), str(path))
    raise SignatureError(f"{module_name}: no module of it under {PACKAGE_ROOT}")


def _annotation(node: ast.expr | None) -> Any:
    """The type of an annotation, as far as a structured config can check it (else Any)."""
    if node is None:
        return Any
    try:
        value = eval(ast.unparse(node), {"__builtins__": {}}, ANNOTATION_NAMES)  # noqa: S307
    except Exception:  # a name outside ANNOTATION_NAMES: checked when built, not composed
        return Any
    origin = typing.get_origin(value)
    if origin in (list, tuple, Sequence):
        return list[Any]
    if origin in (dict, Mapping):
        return dict[str, Any]
    if origin in (typing.Union, __import__("types").UnionType):
        members = [a for a in typing.get_args(value) if a is not type(None)]
        if len(members) == 1 and members[0] in (int, float, str, bool):
            return members[0] | None
        return Any
    if value in (int, float, str, bool) or (isinstance(value, type)
                                            and issubclass(value, enum.Enum)):
        return value
    return Any


def _default(node: ast.expr, target: str, module: ast.Module | None = None) -> Any:
    """A default: a literal, a fedlab module constant bound to one, or an enum member."""
    try:
        value = ast.literal_eval(node)
        return list(value) if isinstance(value, tuple) else value
    except ValueError:
        pass
    if isinstance(node, ast.Name) and module is not None:
        for statement in module.body:
            if (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                    and isinstance(statement.targets[0], ast.Name)
                    and statement.targets[0].id == node.id):
                return _default(statement.value, target)
            if (isinstance(statement, ast.ImportFrom) and statement.module
                    and statement.module.startswith("fedlab.")
                    and any(a.name == node.id and a.asname is None for a in statement.names)):
                return _default(node, target, _module_tree(statement.module))
    try:
        return eval(ast.unparse(node), {"__builtins__": {}}, ANNOTATION_NAMES)  # noqa: S307
    except Exception as error:
        raise SignatureError(f"{target}: default {ast.unparse(node)} is not a literal") from error


def signature_fields(target: str) -> list[tuple[str, Any, Any]]:
    """``(name, type, default)`` of each parameter of ``target`` (``MISSING``: no default).

    A class's parameters are its ``__init__``'s, or a dataclass's fields; ``self``, ``*args``
    and ``**kwargs`` are left out.
    """
    node, module = _source_node(target)
    if isinstance(node, ast.ClassDef):
        init = next((child for child in node.body
                     if isinstance(child, ast.FunctionDef) and child.name == "__init__"), None)
        if init is None:  # a dataclass: its annotated fields
            return [(item.target.id, _annotation(item.annotation),
                     MISSING if item.value is None else _default(item.value, target, module))
                    for item in node.body
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)]
        node = init
    arguments = node.args
    positional = arguments.posonlyargs + arguments.args
    defaults = [MISSING] * (len(positional) - len(arguments.defaults)) + list(arguments.defaults)
    pairs = list(zip(positional, defaults, strict=True)) + [
        (arg, MISSING if default is None else default)
        for arg, default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)]
    return [(arg.arg, _annotation(arg.annotation),
             default if default is MISSING else _default(default, target, module))
            for arg, default in pairs if arg.arg not in ("self", "cls")]


def derived_schema(target: str, nested: Mapping[str, type] | None = None,
                   name: str = "", bases: tuple[type, ...] = ()) -> type:
    """A structured-config dataclass for ``target`` (``_target_`` plus its parameters).

    Args:
      target: the builder's dotted path.
      nested: schemas of parameters that are themselves built from a ``_target_``.
      name: the dataclass's name (default: the target's last part plus ``Schema``).
      bases: dataclasses whose fields the schema adds to the target's (not passed to it).

    Raises:
      SignatureError: the target's source cannot be read or a default is not a literal.
    """
    nested = dict(nested or {})
    fields: list[tuple] = [("_target_", str, dataclasses.field(default=target))]
    for parameter, annotation, default in signature_fields(target):
        if parameter in nested:
            schema = nested[parameter]
            fields.append((parameter, Any, dataclasses.field(default_factory=schema)))
            continue
        if isinstance(default, list | dict):
            fields.append((parameter, annotation,
                           dataclasses.field(default_factory=lambda d=default: d)))
        else:
            fields.append((parameter, annotation, dataclasses.field(default=default)))
    return dataclasses.make_dataclass(name or target.rsplit(".", 1)[-1] + "Schema", fields,
                                      bases=bases)


def option_schema(option: dict, name: str, bases: tuple[type, ...] = ()) -> type | None:
    """The schema an option file's content derives (``None``: no fedlab ``_target_`` in it).

    Args:
      option: the option file's content.
      name: the schema's name.
      bases: dataclasses the schema extends (fields the assembler reads, not the target).
    """
    target = option.get("_target_")
    if not isinstance(target, str) or not target.startswith("fedlab."):
        return None
    nested = {key: schema for key, value in option.items()
              if key != "defaults" and isinstance(value, dict)
              and (schema := option_schema(value, f"{name}_{key}")) is not None}
    return derived_schema(target, nested, name=name, bases=bases)


def option_schemas(conf_dir: Path, bases: Mapping[str, type] | None = None
                   ) -> dict[tuple[str, str], type]:
    """``(group, option) -> schema`` for every option file of ``conf_dir`` naming a target.

    Args:
      conf_dir: the config folder (one subfolder per group).
      bases: per group, a dataclass every schema of the group extends.
    """
    schemas = {}
    for path in sorted(conf_dir.glob("*/*.yaml")):
        option = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        if not isinstance(option, dict):
            continue
        group = path.parent.name
        schema = option_schema(option, f"{group}_{path.stem}",
                               (bases[group],) if bases and group in bases else ())
        if schema is not None:
            schemas[(path.parent.name, path.stem)] = schema
    return schemas
