"""A helper the layering tests share: the first import cycle of a dependency graph."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle of ``graph`` (node -> the nodes it depends on) as the path that closes it,
    ``["a", "b", "a"]``, or None when there is none. Dependencies outside the graph's keys
    are ignored."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, trail: list[str]) -> list[str] | None:
        if state.get(node) == 1:
            return trail[trail.index(node):] + [node]
        if state.get(node) == 2:
            return None
        state[node] = 1
        for target in graph.get(node, ()):
            if target in graph:
                cycle = visit(target, trail + [node])
                if cycle:
                    return cycle
        state[node] = 2
        return None

    for node in graph:
        cycle = visit(node, [])
        if cycle:
            return cycle
    return None
