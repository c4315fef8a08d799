"""Which target needs which: the dependency graph, its cycles, its order, its roots. Pure.

A graph maps a target's name to the names it depends on (`depends_on` in the config, and the
relations systemd knows between the watched units: Requires=, BindsTo=, PartOf=, After=).
Names outside the graph are ignored by every function here: the config validates them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Graph = Mapping[str, Iterable[str]]  # name -> the names it depends on

# systemd's properties that say a unit needs another; the bound ones also stop it with it.
NEEDS = ("Requires", "BindsTo", "PartOf", "After")
BOUND = ("Requires", "BindsTo", "PartOf")


def cycle(graph: Graph) -> list[str] | None:
    """A cycle as a path that ends where it began (["trader", "dashboard", "trader"]), or None."""
    done: set[str] = set()
    for start in graph:
        path: list[str] = []
        found = _visit(graph, start, path, set(), done)
        if found is not None:
            return found
    return None


def _visit(
    graph: Graph, name: str, path: list[str], on_path: set[str], done: set[str]
) -> list[str] | None:
    if name in on_path:
        return [*path[path.index(name) :], name]
    if name in done or name not in graph:
        return None
    path.append(name)
    on_path.add(name)
    for needed in graph[name]:
        found = _visit(graph, needed, path, on_path, done)
        if found is not None:
            return found
    path.pop()
    on_path.discard(name)
    done.add(name)
    return None


def order(graph: Graph, names: Iterable[str]) -> list[str]:
    """`names` with every dependency before what needs it; otherwise in the order given.

    Assumes no cycle (the config refuses one).
    """
    wanted = list(names)
    out: list[str] = []
    seen: set[str] = set()

    def place(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for needed in graph.get(name, ()):
            if needed in wanted:
                place(needed)
        out.append(name)

    for name in wanted:
        place(name)
    return out


def needs(graph: Graph, name: str) -> list[str]:
    """Everything `name` depends on, directly or through others, nearest first."""
    out: list[str] = []
    todo = list(graph.get(name, ()))
    while todo:
        needed = todo.pop(0)
        if needed in out or needed == name:
            continue
        out.append(needed)
        todo.extend(graph.get(needed, ()))
    return out


def dependants(graph: Graph, name: str) -> list[str]:
    """Every target that depends on `name`, directly or through others, in graph order."""
    return [other for other in graph if other != name and name in needs(graph, other)]


def roots(graph: Graph) -> list[str]:
    """The targets that depend on nothing."""
    return [name for name, needed in graph.items() if not list(needed)]


def merge(*graphs: Graph) -> dict[str, tuple[str, ...]]:
    """One graph holding every edge of the given ones (names in first-seen order)."""
    out: dict[str, list[str]] = {}
    for graph in graphs:
        for name, needed in graph.items():
            edges = out.setdefault(name, [])
            edges.extend(n for n in needed if n not in edges and n != name)
    return {name: tuple(edges) for name, edges in out.items()}


def from_units(
    relations: Mapping[str, Mapping[str, Iterable[str]]], names: Mapping[str, str]
) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """systemd's relations between watched units as two graphs of target names.

    `relations` maps a unit to its properties (`NEEDS`) as read from the bus; `names` maps a
    watched unit to its target. Units nobody watches drop out. Returns (needs, bound): the
    second holds only the relations through which systemd itself stops the dependant.
    """
    graph: dict[str, tuple[str, ...]] = {}
    bound: dict[str, tuple[str, ...]] = {}
    for unit, props in relations.items():
        name = names.get(unit)
        if name is None:
            continue
        graph[name] = _targets(props, NEEDS, names, name)
        bound[name] = _targets(props, BOUND, names, name)
    return graph, bound


def _targets(
    props: Mapping[str, Iterable[str]], keys: Iterable[str], names: Mapping[str, str], own: str
) -> tuple[str, ...]:
    out: list[str] = []
    for key in keys:
        for unit in props.get(key, ()):
            name = names.get(unit)
            if name is not None and name != own and name not in out:
                out.append(name)
    return tuple(out)
