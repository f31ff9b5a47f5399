"""PodBoard's YAML: safe loading with bounds, and the deterministic export style.

Loading is safe only (libyaml's ``CSafeLoader`` when PyYAML was built with it). A document is
composed into nodes and checked before any value is built: aliases may not expand past
``PODBOARD_YAML_MAX_NODES`` nodes (counted on the node graph, never expanded), nesting may not
pass ``PODBOARD_YAML_MAX_DEPTH`` levels, and a key may not appear twice in one mapping.
Timestamps load as the exact strings written.

Dumping keeps key order, writes multi-line text as literal blocks and short mappings on one
line (``flow``), so equal data always gives equal bytes.
"""

import re

import yaml
from django.conf import settings

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
STR_TAG = "tag:yaml.org,2002:str"


def limit(name, default):
    """Return the bound ``name`` from the settings, ``default`` when it is not set."""
    return getattr(settings, name, default)


class Refused(Exception):
    """A file that is not acceptable YAML; ``line`` is 1-based, or None when unknown."""

    def __init__(self, line, message):
        super().__init__(message)
        self.line = line
        self.message = message


# Dumping -------------------------------------------------------------------------------------


class _Dumper(_BaseDumper):
    """Safe dumping with literal blocks for multi-line text and plain ISO timestamps."""


class _Flow(dict):
    """A mapping written on one line: ``{step: 1, thought: …}``."""


class FlowList(list):
    """A list written on one line: ``[PROD-100, DEV-101]``."""


_UNSAFE_IN_BLOCK = re.compile(r"[ \t]\n|[ \t]\Z|[\t\r\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff]")


def _represent_str(dumper, value):
    if "\n" not in value and dumper.resolve(yaml.ScalarNode, value, (True, False)) == TIMESTAMP_TAG:
        # Tagged as what the resolver sees, so it is written plain; the loader reads it back
        # as this same string.
        return dumper.represent_scalar(TIMESTAMP_TAG, value)
    if "\n" in value and not _UNSAFE_IN_BLOCK.search(value):
        return dumper.represent_scalar(STR_TAG, value, style="|")
    return dumper.represent_scalar(STR_TAG, value)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(
    _Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items(), flow_style=True)
)
_Dumper.add_representer(
    FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)


def dump_yaml(data):
    """Return ``data`` as UTF-8 YAML bytes in PodBoard's export style."""
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=1_000_000,
        default_flow_style=False,
        encoding="utf-8",
    )


def _flowable(mapping):
    """Return True when ``mapping`` reads well on one line (short single-line scalars only)."""
    width = 0
    for key, value in mapping.items():
        if isinstance(value, str):
            # PyYAML quotes any ':' in flow context, so a timestamp or URI would come out as
            # '2026-11-20T09:00:00Z'; such mappings read better as blocks.
            if "\n" in value or ":" in value or _UNSAFE_IN_BLOCK.search(value):
                return False
            width += len(value)
        elif value is None or isinstance(value, bool | int | float):
            width += 6
        else:
            return False
        width += len(key) + 4
    return width <= 110


def flow(mapping):
    """Return ``mapping`` marked to be written on one line when it reads well that way."""
    return _Flow(mapping) if _flowable(mapping) else mapping


# Loading -------------------------------------------------------------------------------------


class _Loader(_BaseLoader):
    """Safe loading that keeps every timestamp as the exact string written."""


_Loader.add_constructor(TIMESTAMP_TAG, yaml.constructor.SafeConstructor.construct_yaml_str)


def _children(node):
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return ()


def _check_graph(root, max_nodes, max_depth):
    """Refuse a node graph whose expansion passes ``max_nodes`` or ``max_depth``.

    Aliases share nodes, so sizes are memoised per node: a "billion laughs" file costs one
    visit per distinct node instead of one per expanded node.
    """
    size, depth, on_path = {}, {}, set()
    stack = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            kids = _children(node)
            total = 1 + sum(size[id(k)] for k in kids)
            deepest = 1 + max((depth[id(k)] for k in kids), default=0)
            if total > max_nodes:
                raise Refused(
                    node.start_mark.line + 1,
                    f"aliases expand this document past {max_nodes} nodes "
                    "(PODBOARD_YAML_MAX_NODES); refusing it",
                )
            if deepest > max_depth:
                raise Refused(
                    node.start_mark.line + 1,
                    f"nested deeper than {max_depth} levels (PODBOARD_YAML_MAX_DEPTH)",
                )
            size[key], depth[key] = total, deepest
            continue
        if key in size:
            continue
        if key in on_path:
            raise Refused(node.start_mark.line + 1, "an alias refers to the node that contains it")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in size)


def _check_tree(root, max_nodes, max_depth):
    """Refuse a node tree (no aliases) of more than ``max_nodes`` nodes or ``max_depth`` levels."""
    count, stack = 0, [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > max_nodes:
            raise Refused(
                node.start_mark.line + 1,
                f"has more than {max_nodes} nodes (PODBOARD_YAML_MAX_NODES)",
            )
        if depth > max_depth:
            raise Refused(
                node.start_mark.line + 1,
                f"nested deeper than {max_depth} levels (PODBOARD_YAML_MAX_DEPTH)",
            )
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)


def _duplicate_keys(node):
    """Yield ``(line, key)`` for mapping keys written twice (YAML would keep the last silently)."""
    stack, seen = [node], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
                    # The resolved tag tells 1 from '1'.
                    key = (key_node.tag, key_node.value)
                    if key in keys:
                        yield key_node.start_mark.line + 1, key_node.value
                    keys.add(key)
        stack.extend(_children(node))


def parse_yaml(text):
    """Return ``(data, node)`` for one YAML document, or raise ``Refused`` with a line."""
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            reason = " ".join(str(p) for p in (exc.context, exc.problem) if p)
            raise Refused(mark.line + 1 if mark else None, f"not valid YAML: {reason}") from None
        except yaml.YAMLError as exc:
            raise Refused(None, f"not valid YAML: {exc}") from None
        except RecursionError:
            raise Refused(None, "nested too deeply to read") from None
        if node is None:
            return None, None
        limits = (
            limit("PODBOARD_YAML_MAX_NODES", 10_000),
            limit("PODBOARD_YAML_MAX_DEPTH", 50),
        )
        if "*" in text:
            _check_graph(node, *limits)
        else:
            _check_tree(node, *limits)  # no alias, so no shared nodes: a cheaper walk
        for line, key in _duplicate_keys(node):
            raise Refused(line, f"the key {key!r} appears twice")
        try:
            data = loader.construct_document(node)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else None
            raise Refused(line, f"cannot be loaded: {exc.problem}") from None
        return data, node
    finally:
        loader.dispose()


# Finding lines in a loaded document ----------------------------------------------------------


def key_line(node, key):
    """Return the 1-based line of ``key`` in mapping ``node`` (or of the node itself)."""
    if node is None:
        return None
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return key_node.start_mark.line + 1
    return node.start_mark.line + 1


def item_node(node, index):
    """Return the node of item ``index`` of sequence ``node`` (``node`` itself otherwise)."""
    if isinstance(node, yaml.SequenceNode) and index < len(node.value):
        return node.value[index]
    return node


def value_node(node, key):
    """Return the node of ``key``'s value in mapping ``node`` (``node`` itself otherwise)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return value
    return node
