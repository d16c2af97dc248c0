"""Reading YAML that nobody vouched for: config files, RL-Zoo files, `--env-kwargs`, a foreign run's config.

`yaml.safe_load` runs no code, but it still reads files of any size, builds documents whose aliases
expand to billions of nodes (a few hundred bytes are enough: every later walk over the data, even an
error message quoting it, then takes minutes and gigabytes), and reads `1e-2` as a string (YAML 1.1 wants
`1.0e-2`). `load_yaml_text` bounds the size, the depth and the expanded node count before anything is
constructed, reads `1e-2` as the number it looks like, and reports a non-UTF-8 file in one line.
"""

from __future__ import annotations

import re
import reprlib
from typing import Any

import yaml

from trpo.errors import ConfigError

MAX_YAML_BYTES = 1 << 20
"""The largest YAML text read (a config file is a few kilobytes)."""
MAX_NODES = 100_000
"""The most nodes a document may have once its aliases are expanded."""
MAX_DEPTH = 64
"""The deepest nesting of lists and mappings."""

_SCIENTIFIC = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-2`, `3E5` as floats (YAML 1.2 / JSON style)."""


BoundedLoader.add_implicit_resolver("tag:yaml.org,2002:float", _SCIENTIFIC, list("-+0123456789"))


def short(value: Any, width: int = 60) -> str:
    """repr(value) cut to about `width` characters without walking all of a huge value."""
    r = reprlib.Repr()
    r.maxstring = r.maxother = width
    r.maxlist = r.maxdict = r.maxtuple = r.maxset = 6
    r.maxlevel = 3
    text = r.repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def load_yaml_text(data: bytes | str, source: str) -> Any:
    """Parse one YAML document within the bounds above; raise `ConfigError` (one line) otherwise."""
    if isinstance(data, bytes):
        if len(data) > MAX_YAML_BYTES:
            raise ConfigError(f"{source} is {len(data):,} bytes; a trpo YAML file may have at most {MAX_YAML_BYTES:,}")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{source} is not UTF-8 text (byte {data[exc.start : exc.start + 1]!r} at offset {exc.start}); "
                "save it as UTF-8 YAML"
            ) from None
    else:
        text = data
        if len(text) > MAX_YAML_BYTES:
            raise ConfigError(f"{source} is {len(text):,} characters; at most {MAX_YAML_BYTES:,} are read")
    loader = BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{source} is not valid YAML: {first}") from None
    except RecursionError:
        raise ConfigError(f"{source} nests lists or mappings too deeply (more than {MAX_DEPTH} levels)") from None
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node, source: str) -> None:
    """Refuse a document whose aliases expand beyond MAX_NODES nodes, that nests deeper than MAX_DEPTH, or
    that refers to itself; counted on the composed graph (each shared node once), so this is cheap."""
    size: dict[int, int] = {}
    if not _children(root):
        return
    on_path = {id(root)}
    stack = [(root, 1, iter(_children(root)))]
    while stack:
        node, depth, pending = stack[-1]
        child = next(pending, None)
        if child is None:
            stack.pop()
            on_path.discard(id(node))
            total = 1 + sum(size[id(c)] for c in _children(node))
            if total > MAX_NODES:
                raise ConfigError(
                    f"{source} expands to more than {MAX_NODES:,} values through its aliases (&anchor/*alias); "
                    "write the values out"
                )
            size[id(node)] = total
            continue
        key = id(child)
        if key in size:
            continue
        if key in on_path:
            raise ConfigError(f"{source} refers to itself through an alias; write the values out")
        grandchildren = _children(child)
        if not grandchildren:
            size[key] = 1
            continue
        if depth + 1 > MAX_DEPTH:
            raise ConfigError(f"{source} nests lists or mappings too deeply (more than {MAX_DEPTH} levels)")
        on_path.add(key)
        stack.append((child, depth + 1, iter(grandchildren)))
