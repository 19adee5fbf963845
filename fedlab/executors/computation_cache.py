"""A disk cache of traced and compiled computations: a configuration's later runs skip both.

Tracing turns the algorithm's Python (model, optimizers, aggregator) into TFF computations; it
takes seconds at every start. A traced process is four computations (``initialize``, ``next``,
``get_model_weights``, ``set_model_weights``), kept as TFF's serialized protos plus the Python
containers of their types (which the protos do not carry: ``LearningProcessOutput``,
``ModelWeights``, ...), in a folder named by a key of everything that shapes them:

- the configuration nodes that build them (the assembler picks them, ``run.SHAPING_CONFIG``)
  and the source files of every ``_target_`` named there (your own model module included);
- the seed set while tracing, only when the traced process has random ops (DP noise, a Keras
  model's dropout or per-client initialisers): a seed sweep of a process without them traces
  once;
- fedlab's own source, the TensorFlow and TFF versions;
- what the trainer knows only at run time (``ProcessCache.process(build, **context)``): the
  clients' batch type, the DP guarantee the noise was calibrated for, the model's architecture.

Compiling a computation for the worker (:meth:`ProcessCache.compiled`) is cached by the
computation's own content. A load that fails (a damaged, partial or foreign entry) is a miss:
traced or compiled and stored again. A cache folder that cannot be written costs only the time
(one warning).
"""

import contextlib
import functools
import hashlib
import importlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tensorflow as tf
import tensorflow_federated as tff
from google.protobuf.message import DecodeError
from hydra.utils import get_object
from tensorflow_federated.proto.v0 import computation_pb2
from tensorflow_federated.python.common_libs import structure

from fedlab.runs.folder import make_private, owned_by_this_user

log = logging.getLogger("fedlab")

PROCESS_PARTS = ("initialize", "next", "get_model_weights", "set_model_weights")
TYPES_FILE = "types.json"
PROCESSES, COMPILED = "processes", "compiled"  # the cache's two kinds of entries
# What reading a damaged, partial or foreign entry raises.
UNREADABLE = (OSError, ValueError, KeyError, ImportError, AttributeError, TypeError,
              DecodeError)
FEDLAB_PACKAGE = Path(__file__).resolve().parents[1]  # fedlab/


def _targets(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        if isinstance(node.get("_target_"), str):
            yield node["_target_"]
        for value in node.values():
            yield from _targets(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _targets(value)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _source_digest(target: str) -> str:
    """The digest of the source file defining ``target`` ("" when it has none)."""
    try:
        module = importlib.import_module(get_object(target).__module__)
        return _file_digest(Path(module.__file__))
    except (ImportError, AttributeError, TypeError, ValueError, OSError):
        return ""


@functools.cache
def fedlab_source_digest() -> str:
    """One digest of every Python file of the fedlab package (as loaded: read once)."""
    digest = hashlib.sha256()
    for path in sorted(FEDLAB_PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(FEDLAB_PACKAGE)).encode())
        digest.update(_file_digest(path).encode())
    return digest.hexdigest()


def config_fingerprint(shaping: Mapping[str, Any]) -> str:
    """What the resolved configuration nodes ``shaping`` contribute to a process's cache key."""
    sources = {target: _source_digest(target) for target in sorted(set(_targets(shaping)))}
    return _digest({"config": shaping, "sources": sources, "fedlab": fedlab_source_digest(),
                    "tensorflow": tf.__version__, "tff": tff.__version__})


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=repr).encode()).hexdigest()


# The Python containers of a computation's type, as a tree parallel to the type.
def _containers(type_spec: tff.Type) -> Any:
    if isinstance(type_spec, tff.StructType):
        container = type_spec.python_container
        if container is not None and _importable(container) is not container:
            raise ValueError(f"{container!r} cannot be imported by name")
        return {"container": None if container is None
                else f"{container.__module__}:{container.__qualname__}",
                "elements": [_containers(element) for element in type_spec.children()]}
    if isinstance(type_spec, tff.FederatedType):
        return {"member": _containers(type_spec.member)}
    if isinstance(type_spec, tff.SequenceType):
        return {"element": _containers(type_spec.element)}
    if isinstance(type_spec, tff.FunctionType):
        return {"parameter": (None if type_spec.parameter is None
                              else _containers(type_spec.parameter)),
                "result": _containers(type_spec.result)}
    return None


def _importable(container: type) -> Any:
    with contextlib.suppress(ImportError, AttributeError):
        return _import(f"{container.__module__}:{container.__qualname__}")
    return None


def _import(name: str) -> Any:
    module, _, qualified = name.partition(":")
    value: Any = importlib.import_module(module)
    for attribute in qualified.split("."):
        value = getattr(value, attribute)
    return value


def _with_containers(type_spec: tff.Type, tree: Any) -> tff.Type:
    if tree is None:
        return type_spec
    if isinstance(type_spec, tff.StructType):
        elements = [(name, _with_containers(element, subtree)) for (name, element), subtree
                    in zip(structure.iter_elements(type_spec), tree["elements"], strict=True)]
        if tree["container"] is None:
            return tff.StructType(elements)
        return tff.StructWithPythonType(elements, _import(tree["container"]))
    if isinstance(type_spec, tff.FederatedType):
        return tff.FederatedType(_with_containers(type_spec.member, tree["member"]),
                                 type_spec.placement, type_spec.all_equal)
    if isinstance(type_spec, tff.SequenceType):
        return tff.SequenceType(_with_containers(type_spec.element, tree["element"]))
    if isinstance(type_spec, tff.FunctionType):
        return tff.FunctionType(
            None if type_spec.parameter is None
            else _with_containers(type_spec.parameter, tree["parameter"]),
            _with_containers(type_spec.result, tree["result"]))
    return type_spec


def save_process(process: tff.learning.templates.LearningProcess, folder: Path) -> None:
    """Write ``process``'s computations and their types' containers into a new ``folder``.

    Raises:
      ValueError: a type's container is a class that cannot be imported by name.
      OSError: the folder cannot be written.
    """
    types = {part: _containers(getattr(process, part).type_signature) for part in PROCESS_PARTS}
    folder.mkdir(parents=True)
    for part in PROCESS_PARTS:
        proto = tff.framework.serialize_computation(getattr(process, part))
        (folder / f"{part}.pb").write_bytes(proto.SerializeToString())
    (folder / TYPES_FILE).write_text(json.dumps(types))


def load_process(folder: Path) -> tff.learning.templates.LearningProcess:
    """The learning process :func:`save_process` wrote into ``folder``, with its exact types.

    Raises:
      One of :data:`UNREADABLE`: not a readable entry of this TFF.
    """
    types = json.loads((folder / TYPES_FILE).read_text())
    parts = {}
    for part in PROCESS_PARTS:
        proto = computation_pb2.Computation()
        proto.ParseFromString((folder / f"{part}.pb").read_bytes())
        computation = tff.framework.deserialize_computation(proto)
        parts[part] = tff.framework.ConcreteComputation.with_type(
            computation, _with_containers(computation.type_signature, types[part]))
    return tff.learning.templates.LearningProcess(
        parts["initialize"], parts["next"], parts["get_model_weights"],
        parts["set_model_weights"])


# TensorFlow op types (substrings) that draw random numbers or seeds: a graph holding one may
# depend on the global seed set while tracing. Deliberately broad (stateless ops too).
RANDOM_OP_TYPES = ("Random", "Shuffle", "Multinomial", "TruncatedNormal", "StandardNormal",
                   "Uniform", "Seed", "Rng", "NonDeterministic", "Dropout")


def _graph_defs(message) -> Iterator[tf.compat.v1.GraphDef]:
    """Every TensorFlow graph inside a TFF computation proto."""
    stack = [message]
    while stack:
        message = stack.pop()
        if isinstance(message, computation_pb2.TensorFlow):
            graph = tf.compat.v1.GraphDef()
            message.graph_def.Unpack(graph)
            yield graph
            continue
        for field, value in message.ListFields():
            if field.message_type is not None:
                stack.extend(value if field.label == field.LABEL_REPEATED else [value])


def random_ops(process: tff.learning.templates.LearningProcess) -> list[str]:
    """The op types in ``process``'s graphs that may depend on the seed set while tracing.

    Ops of :data:`RANDOM_OP_TYPES`, and any op with a non-zero ``seed``/``seed2`` attribute.
    (Constants a seed chose — ``initialize``'s initial weights — are not found: the trainer
    replaces them with the run's own initial model.)
    """
    found = set()
    for part in PROCESS_PARTS:
        for graph in _graph_defs(tff.framework.serialize_computation(getattr(process, part))):
            for node in [*graph.node, *(n for f in graph.library.function for n in f.node_def)]:
                if any(kind in node.op for kind in RANDOM_OP_TYPES) or any(
                        node.attr[name].i for name in ("seed", "seed2") if name in node.attr):
                    found.add(node.op)
    return sorted(found)


@dataclass(frozen=True)
class ProcessCache:
    """Traced learning processes and compiled computations kept in ``directory``.

    ``fingerprint``: :func:`config_fingerprint` of the configuration that shapes the process;
    ``seed``: the global seed set while tracing, part of an entry's key only when the traced
    process has random ops (:func:`random_ops`) — so runs that differ only in their seed share
    one entry otherwise. Entries beyond ``max_bytes`` in all are removed, least recently used
    first.
    """

    directory: Path
    fingerprint: str
    seed: int | None = None
    max_bytes: int = 1 << 30

    def key(self, seeded: bool = False, **context: Any) -> str:
        """The process entry's name: this configuration, the run-time ``context``, the seed."""
        seed = {"seed": self.seed} if seeded else {}
        return _digest({"fingerprint": self.fingerprint, **seed, **context})[:32]

    def process(self, build: Callable[[], tff.learning.templates.LearningProcess],
                **context: Any) -> tuple[tff.learning.templates.LearningProcess, bool]:
        """The cached process for ``context``, or ``build()``'s, then stored for the next run.

        Returns the process and whether it came from the cache.
        """
        entries = {seeded: self.directory / PROCESSES / self.key(seeded, **context)
                   for seeded in (False, True)}
        for folder in entries.values():
            if folder.is_dir() and self._trusted(folder):
                try:
                    process = load_process(folder)
                except UNREADABLE as error:
                    log.warning("cached learning process %s unusable (%s); tracing it again",
                                folder, error)
                    shutil.rmtree(folder, ignore_errors=True)
                else:
                    _touch(folder)
                    log.info("learning process loaded from the cache: %s", folder)
                    return process, True
        process = build()
        seeded_by = random_ops(process)
        if seeded_by:
            log.debug("the cached process is keyed by the seed too (random ops: %s)",
                      ", ".join(seeded_by))
        self._store(entries[bool(seeded_by)], lambda entry: save_process(process, entry))
        return process, False

    def compiled(self, compile_fn: Callable) -> Callable:
        """``compile_fn`` remembering its results here, keyed by the computation it compiles.

        (TFF's compilation of a round for the worker runs Grappler over every TensorFlow
        graph of it: most of a second for a CNN's round.) The key also holds the TFF version
        and fedlab's source, where ``compile_fn`` lives.
        """
        versions = f"{tff.__version__} {fedlab_source_digest()}".encode()

        def compile_cached(computation):
            proto = tff.framework.ConcreteComputation.get_proto(computation)
            digest = hashlib.sha256(versions)
            digest.update(proto.SerializeToString(deterministic=True))
            path = self.directory / COMPILED / f"{digest.hexdigest()[:32]}.pb"
            if path.is_file() and self._trusted(path):
                try:
                    compiled = computation_pb2.Computation.FromString(path.read_bytes())
                    result = tff.framework.deserialize_computation(compiled)
                except UNREADABLE as error:
                    log.warning("cached compiled computation %s unusable (%s)", path, error)
                else:
                    _touch(path)
                    return result
            result = compile_fn(computation)
            self._store(path, lambda entry: entry.write_bytes(
                tff.framework.serialize_computation(result).SerializeToString()))
            return result

        return compile_cached

    def _trusted(self, entry: Path) -> bool:
        """Whether ``entry`` was written by this user; one warning when not.

        Another user's entry is not loaded: a computation runs any code in the worker.
        """
        if owned_by_this_user(entry):
            return True
        log.warning("cache entry %s was not written by this user: not loaded, traced again",
                    entry)
        return False

    def _store(self, destination: Path, write: Callable[[Path], None]) -> None:
        """``write`` an entry into a staging path, then move it to ``destination`` at once.

        The cache's folders are private to the user (0700).
        """
        try:
            make_private(self.directory)
            make_private(destination.parent)
            staging = Path(tempfile.mkdtemp(prefix=".writing-", dir=self.directory))
        except OSError as error:
            log.warning("cannot write the computation cache %s (%s): runs trace and compile "
                        "every time (computation_cache=null stops trying)", self.directory,
                        error)
            return
        try:
            write(staging / "entry")
            os.rename(staging / "entry", destination)  # a concurrent run's entry may win
        except ValueError as error:
            log.debug("not cached: %s", error)
        except OSError as error:
            if not destination.exists():
                log.warning("cannot write the computation cache %s (%s)", destination, error)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._evict()

    def _evict(self) -> None:
        """Remove the least recently used entries beyond ``max_bytes`` (never the newest)."""
        with contextlib.suppress(OSError):
            entries = [entry for kind in (PROCESSES, COMPILED)
                       if (self.directory / kind).is_dir()
                       for entry in (self.directory / kind).iterdir()]
            entries.sort(key=lambda entry: entry.stat().st_mtime, reverse=True)
            total = 0
            for entry in entries:
                total += _size(entry)
                if total > self.max_bytes and entry is not entries[0]:
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)


def _size(entry: Path) -> int:
    if entry.is_dir():
        return sum(p.stat().st_size for p in entry.iterdir())
    return entry.stat().st_size
