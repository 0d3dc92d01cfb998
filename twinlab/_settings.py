"""Settings files (sample configs, batch manifests): read bounded, paths resolved one way.

A settings file names data; it never holds it. :func:`read_settings` refuses files over
:data:`MAX_CONFIG_BYTES` and YAML whose aliases (``&anchor``/``*alias``, merge keys) would expand
to more than :data:`MAX_YAML_NODES` values — the expansion is counted on the parsed node graph
before any Python object is built, so an alias bomb costs milliseconds, not gigabytes. Every
parser error is one line. :func:`resolve_path` is the one rule for relative paths in such a file:
relative to the file's folder, made absolute at load time.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from .errors import InputError, ReadError, TwinlabError

#: a config or manifest larger than this is not a settings file (and is not read whole)
MAX_CONFIG_BYTES = 1 << 20
#: YAML nodes after alias expansion: real configs have hundreds; an alias bomb has billions
MAX_YAML_NODES = 100_000


def resolve_path(path: str | os.PathLike, base: str | os.PathLike) -> Path:
    """``path`` as an absolute, normalised path; a relative one is taken relative to the folder
    ``base`` (the folder of the config or manifest that names it), never to the current directory
    of whichever process reads it later."""
    path = Path(path).expanduser()
    return Path(os.path.abspath(path if path.is_absolute() else Path(base).expanduser() / path))


def read_settings(path: Path) -> dict[str, Any]:
    """A TOML or YAML settings file (config or manifest) as a mapping, bounded in size and, for
    YAML, in alias expansion (:data:`MAX_CONFIG_BYTES`, :data:`MAX_YAML_NODES`)."""
    if not path.is_file():
        raise ReadError(f"config {path} does not exist")
    with open(path, "rb") as fh:
        raw = fh.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise InputError(f"{path.name} is larger than {MAX_CONFIG_BYTES // 1024} KiB; a config names data files, "
                         "it does not hold data")
    try:
        text = raw.decode("utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            data = _load_yaml(text)
        else:
            data = tomllib.loads(text)
    except TwinlabError as exc:
        raise InputError(f"cannot parse {path.name}: {exc}") from None
    except Exception as exc:
        raise InputError(f"cannot parse {path.name}: {_one_line(exc)}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path.name} must hold a table of settings")
    return data


def _load_yaml(text: str) -> Any:
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        """safe_load that refuses a document whose alias (and merge key) expansion is too large or
        recursive, before any Python object is built from it."""

        def compose_document(self):
            node = super().compose_document()
            _check_yaml_expansion(node)
            return node

    return yaml.load(text, Loader=BoundedLoader)  # a SafeLoader subclass: no Python tags


def _check_yaml_expansion(root: Any) -> None:
    """Count the nodes of the document with every alias expanded, without expanding anything:
    each shared node's expanded size is computed once (memoised by identity)."""
    import yaml

    def children(node: Any) -> list[Any]:
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        if isinstance(node, yaml.MappingNode):
            return [n for pair in node.value for n in pair]
        return []

    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children(node))
            if sizes[key] > MAX_YAML_NODES:
                raise InputError(f"the YAML expands to more than {MAX_YAML_NODES} values through its aliases "
                                 "(&anchor/*alias); write the settings out instead")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise InputError("the YAML refers to itself through an alias (&anchor/*alias); remove the cycle")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children(node) if id(c) not in sizes)


def _one_line(exc: Exception) -> str:
    """A parser's message on one line (PyYAML's span several, with a caret under the source)."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        context = getattr(exc, "context", None)
        return f"{(context + ': ') if context else ''}{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())
