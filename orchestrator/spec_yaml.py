"""Bounded YAML reading for specs: one parse, then limits on size, depth and alias expansion.

`yaml.safe_load` shares aliased nodes, so a "billion laughs" document loads at once but is
enormous to walk, validate or print; a recursive alias (`a: &x [*x]`) is a cycle; thousands of
nested brackets overflow the parser's stack. Each is refused here with one problem, before
anything walks the document.
"""

from __future__ import annotations

from typing import Any

import yaml

from orchestrator.errors import SpecProblem

MAX_BYTES = 1_000_000  # a spec is a page of YAML; a megabyte is already absurd
MAX_DEPTH = 32  # nesting of mappings and lists, aliases expanded
MAX_NODES = 10_000  # values in the document with every alias expanded

LineMap = dict[tuple[str, ...], int]


class YamlRefused(Exception):
    """The text is not YAML orch will read; `problem` says why (field "(file)")."""

    def __init__(self, problem: SpecProblem, *, syntax: bool = False) -> None:
        super().__init__(str(problem))
        self.problem = problem
        self.syntax = syntax  # not YAML at all, rather than YAML beyond the limits


def _refuse(message: str, line: int | None = None, *, syntax: bool = False) -> YamlRefused:
    return YamlRefused(SpecProblem("(file)", message, line), syntax=syntax)


def _compose(text: str) -> yaml.Node | None:
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        raise _refuse(f"larger than {MAX_BYTES:,} bytes; a spec is a page of YAML")
    try:
        _check_depth(text)
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise _refuse(f"not valid YAML: {problem}", mark.line + 1 if mark else None,
                      syntax=True) from None
    except RecursionError:
        raise _refuse(f"nested too deeply (at most {MAX_DEPTH} levels)") from None


def _check_depth(text: str) -> None:
    """Stop at the first value nested deeper than MAX_DEPTH, reading YAML's event stream (no
    recursion), before the composer recurses through thousands of brackets."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise _refuse(f"nested deeper than {MAX_DEPTH} levels",
                              event.start_mark.line + 1)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def _check_shape(root: yaml.Node) -> None:
    """Refuse cycles, nesting deeper than MAX_DEPTH and more than MAX_NODES expanded values.
    Sizes are memoized per node, so a shared (aliased) node is measured once."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise _refuse(f"nested deeper than {MAX_DEPTH} levels",
                          node.start_mark.line + 1)
        key = id(node)
        if key in on_path:
            raise _refuse("an alias refers to a value that contains it (a recursive alias)",
                          node.start_mark.line + 1)
        if key in sizes:
            return sizes[key]
        on_path.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            children = [c for pair in node.value for c in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_NODES:
                raise _refuse(f"more than {MAX_NODES:,} values once aliases are expanded "
                              "(an alias bomb?)", node.start_mark.line + 1)
        on_path.discard(key)
        sizes[key] = total
        return total

    size(root, 0)


def _lines(root: yaml.Node | None) -> LineMap:
    """Each key path's 1-based line (bounded: the shape check ran first)."""
    lines: LineMap = {}

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = (*path, str(k.value))
                lines[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                key = (*path, str(i))
                lines[key] = item.start_mark.line + 1
                walk(item, key)

    if root is not None:
        walk(root, ())
    return lines


def read_yaml(text: str) -> tuple[Any, LineMap]:
    """Parse `text` once: its value and each key path's line, or YamlRefused."""
    root = _compose(text)
    if root is None:
        return None, {}
    _check_shape(root)
    loader = yaml.SafeLoader("")
    try:
        value = loader.construct_document(root)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise _refuse(f"not valid YAML: {problem}", mark.line + 1 if mark else None,
                      syntax=True) from None
    except (ValueError, OverflowError, TypeError) as e:
        # e.g. a date like 2024-02-30, or an integer of more than 4,300 digits
        what = "an integer too long to read" if "digits" in str(e) else str(e).splitlines()[0]
        raise _refuse(f"not valid YAML: {what}", syntax=True) from None
    finally:
        loader.dispose()
    return value, _lines(root)


def line_map(text: str) -> LineMap:
    """Each key path's line, or {} when the text is not YAML orch will read."""
    try:
        return _lines(_checked(text))
    except YamlRefused:
        return {}


def _checked(text: str) -> yaml.Node | None:
    root = _compose(text)
    if root is not None:
        _check_shape(root)
    return root
