"""The house keeps the shape `tests/layers.py` gives it, and the README shows that same table.

Each kind of fault the check exists for is planted into a scratch copy of the tree and must be
named; the untouched copy must pass.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.layers import (
    ALLOWED,
    ALLOWED_IO,
    KINDS,
    ROOMS,
    ROOT,
    imported_names,
    our_module,
    package,
    problems,
)


def test_the_house_keeps_the_table() -> None:
    assert problems(ROOT) == []


def test_the_table_runs_one_way() -> None:
    """No room may import, through any path, a room that may import it."""

    def reach(name: str, seen: frozenset[str] = frozenset()) -> frozenset[str]:
        assert name not in seen, f"the table loops through {sorted(seen)}"
        below = frozenset(ROOMS[name].modules("uses"))
        return below.union(*(reach(u, seen | {name}) for u in below))

    for name, room in ROOMS.items():
        assert set(room.modules("uses")) <= set(ROOMS), name
        reach(name)


def test_every_module_sits_in_one_room_as_one_kind() -> None:
    listed = [m for room in ROOMS.values() for kind in KINDS for m in room.modules(kind)]
    assert len(listed) == len(set(listed)), sorted(m for m in listed if listed.count(m) > 1)


def test_every_allowance_is_still_needed() -> None:
    """An allowance whose crossing is gone must go too, so the list only shrinks."""
    known = package(ROOT)
    made = {
        (module, target)
        for module, facts in known.items()
        for node in facts.imports
        for target in (our_module(n, known) for n in imported_names(node))
        if target
    }
    assert set(ALLOWED) <= made, set(ALLOWED) - made
    for module, call in ALLOWED_IO:
        names = {getattr(c.func, "attr", getattr(c.func, "id", None)) for c in known[module].calls}
        assert call in names, (module, call)


def _readme_table() -> dict[str, tuple[str, set[str]]]:
    """The README's layout table: room -> (what it holds, the rooms it may import)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## How the code is laid out", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, set[str]]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or set(cells[0]) <= {"-", " "} or cells[0] == "room":
            continue
        room = cells[0].strip("`*").removeprefix("supervisor/").rstrip("/")
        rows[room] = (cells[1], set(re.findall(r"`([a-z]+)/?`", cells[2])))
    return rows


def test_the_readme_shows_this_table() -> None:
    rows = _readme_table()
    assert set(rows) - {"devtools", "tests"} == set(ROOMS)
    for name, room in ROOMS.items():
        holds, uses = rows[name]
        table = set(room.modules("uses"))
        assert uses == table, f"README row {name}: may import {uses}, the table {table}"
        for kind in KINDS:
            for module in set(room.modules(kind)) - {"supervisor"}:
                file = module.split(".")[-1]
                assert f"`{file}.py`" in holds or f"`{file}/`" in holds, (
                    f"README row {name}: {file}"
                )


# A scratch copy of the tree with one fault planted: the check must name it.
PLANTS = {
    "relative": ("watch/health.py", "from ..app import daemon", "imports relatively"),
    "reporting": (
        "recovery/executor.py",
        "from supervisor.alerts import telegram",
        "room recovery may not import room alerts",
    ),
    "io": ("guard/breaker.py", "import threading", "is pure but imports the I/O library"),
    "open": ("history/uptime.py", "def _peek() -> str:\n    return open('x').read()", "does I/O"),
    "importlib": ("alerts/text.py", "import importlib", "imports by name at run time"),
    "up": ("history/sql.py", "from supervisor.api import metrics", "may not import room api"),
    "sideways": ("history/ring.py", "from supervisor.alerts import outbox", "room alerts"),
    "action": ("recovery/policy.py", "import supervisor.history.events", "room history"),
}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean copy of the package and README, which each planting test copies again."""
    base = tmp_path_factory.mktemp("house")
    shutil.copytree(ROOT / "supervisor", base / "supervisor", ignore=_caches)
    return base


def _caches(_: str, names: list[str]) -> list[str]:
    """Only the source: no byte code, no static files."""
    return [n for n in names if n in {"__pycache__", "static"}]


def test_the_untouched_copy_passes(scratch: Path) -> None:
    assert problems(scratch) == []


@pytest.mark.parametrize("kind", sorted(PLANTS))
def test_a_planted_fault_is_caught(kind: str, scratch: Path, tmp_path: Path) -> None:
    file, line, expected = PLANTS[kind]
    copy = tmp_path / "house"
    shutil.copytree(scratch, copy)
    target = copy / "supervisor" / file
    target.write_text(target.read_text() + f"\n{line}\n")
    found = problems(copy)
    module = file.removesuffix(".py").replace("/", ".")
    assert any(p.startswith(f"{module}:") and expected in p for p in found), found
