"""The house keeps its shape: one table of rooms and the directions they may import in.

`ROOMS` is the table the README's layout section shows (its "may import" column is checked
against it below). Every module of the shipped package sits in exactly one room, as one kind:

- **pure**: decision logic and shared types. No I/O (no I/O library, no `open`, no file, socket,
  process, thread or sleep call), and it imports only pure modules;
- **edge**: an adapter (D-Bus, HTTP, /proc, files, Telegram). It imports pure modules only,
  never another adapter;
- **join**: connects its room's adapters to the pure core and runs its loop. It imports pure
  modules and adapters, never the composition layer;
- **composes**: builds and runs the others (the composition layer, the command line).

A module imports only its own room and the rooms its room may import. Nowhere: relative
imports (`from ..app import daemon` hides a direction), imports by name at run time
(`importlib`, `__import__`), or the dev tools.

`problems(root)` checks any copy of the tree, so a test can plant a fault and see it caught;
`tests/test_layers.py` runs it, and holds the README's layout table to this one.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Room:
    """One row of the table: the rooms it may import, and its modules by kind (space-separated)."""

    uses: str
    pure: str = ""
    edges: str = ""
    joins: str = ""
    composes: str = ""

    def modules(self, kind: str) -> list[str]:
        return str(getattr(self, kind)).split()


KINDS = ("pure", "edges", "joins", "composes")
# Module names are below `supervisor.`; "supervisor" is the package itself (its __version__).
ROOMS: dict[str, Room] = {
    "shared": Room(
        uses="",
        pure="supervisor model errors procfs redaction happenings times graph"
        " config config.probes config.targets config.schema config.schema.base config.schema.env"
        " config.schema.probes config.schema.targets",
        edges="config.file",
    ),
    "runtime": Room(
        uses="shared", edges="runtime.notify runtime.logs runtime.state runtime.limits runtime.tls"
    ),
    "watch": Room(
        uses="shared",
        pure="watch.health watch.verdict watch.track watch.units watch.jobs watch.intent"
        " watch.cause watch.deps",
        edges="watch.bus watch.lastwords",
        joins="watch.systemd watch.link watch.autopsy watch.listener",
    ),
    "probing": Room(
        uses="shared watch",
        pure="probing.schedule probing.stuck probing.hang probing.outcome probing.nagios"
        " probing.conditions",
        edges="probing.probes probing.process probing.host probing.resources",
        joins="probing.runner",
    ),
    "guard": Room(
        uses="shared",
        pure="guard.activity guard.breaker guard.throttle guard.trim",
        edges="guard.load",
        joins="guard.sentry",
    ),
    "history": Room(
        uses="shared",
        pure="history.events history.uptime history.ring history.report history.sql",
        edges="history.store",
        joins="history.recorder",
    ),
    "recovery": Room(
        uses="shared watch probing",
        pure="recovery.policy",
        edges="recovery.ports",
        joins="recovery.executor",
    ),
    "alerts": Room(
        uses="shared runtime",
        pure="alerts.policy alerts.incident alerts.roots alerts.rounds alerts.outbox alerts.chat"
        " alerts.commands alerts.text",
        edges="alerts.telegram",
        joins="alerts.delivery alerts.lastword alerts.sending",
    ),
    "api": Room(
        uses="shared guard history",
        pure="api.render api.attempts api.tally api.quiet api.metering api.exposition",
        edges="api.server api.refusal api.counts api.history api.stream api.page api.control",
        joins="api.transport api.metrics",
    ),
    "ops": Room(
        uses="shared runtime watch recovery alerts history api",
        pure="ops.findings ops.judge ops.archive ops.reading",
        edges="ops.host",
        joins="ops.doctor ops.backup",
        composes="ops.commands",
    ),
    "app": Room(
        uses="shared runtime watch probing guard history recovery alerts api",
        composes="app.daemon app.build app.fleet app.persist app.supervision app.waiting"
        " app.holding app.dispatch app.subscribers app.stopping app.serving",
    ),
    "command": Room(
        uses="shared runtime history alerts api ops app",
        pure="risks",
        composes="cli hold_cli why __main__",
    ),
}

# A crossing the table forbids, allowed for now: each named with the step that removes it.
# A crossing no longer made fails the test, so this list only shrinks.
ALLOWED: dict[tuple[str, str], str] = {
    # issue 20: the cgroup's OOM count and the last words belong with the /proc readers and
    # the journal reader; to go when both are passed in as callables by the composition layer.
    ("watch.autopsy", "probing.resources"): "reads the cgroup's OOM kills with ProcReader",
    ("alerts.lastword", "watch.cause"): "the supervisor's own last lines, as a unit's",
    ("alerts.lastword", "watch.lastwords"): "the supervisor's own last lines, as a unit's",
}
# The one I/O of a pure module: the config's loader reads the file (and the token file) it is
# pointed at; only the composition layer and the command line call it.
ALLOWED_IO: dict[tuple[str, str], str] = {
    ("config", "read_bytes"): "load_source() reads the config file",
    ("config", "read_text"): "TelegramConfig.bot_token() reads the token file",
}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


IO_LIBS = _words(
    "aiohttp asyncio concurrent ctypes dbus_fast fcntl http httpx mmap multiprocessing"
    " prometheus_client psutil pty resource select selectors shutil signal socket sqlite3"
    " subprocess tempfile telegram threading urllib"
)
IO_CALLS = frozenset({"open", "input", "print"})
# os.<name>(...) and time.<name>(...) that touch the world (reading the clock does not).
OS_IO = _words(
    "open read write close remove unlink rename replace stat lstat listdir scandir walk makedirs"
    " mkdir rmdir kill killpg fsync system popen fork execv execvp spawnv chmod chown truncate"
    " link symlink readlink pipe dup2"
)
TIME_IO = frozenset({"sleep"})
# <path>.<name>(...): pathlib's file calls.
PATH_IO = _words(
    "read_text write_text read_bytes write_bytes iterdir glob rglob unlink mkdir rmdir touch"
    " exists is_file is_dir stat chmod symlink_to hardlink_to"
)
# importlib's data readers are fine; what resolves a module from a string at run time is not.
IMPORTLIB_OK = frozenset({"importlib.resources", "importlib.metadata"})


@dataclass(frozen=True)
class Place:
    room: str
    kind: str


@functools.cache
def placed() -> dict[str, Place]:
    """Every module named in the table, with its room and kind."""
    out: dict[str, Place] = {}
    for name, room in ROOMS.items():
        for kind in KINDS:
            for module in room.modules(kind):
                out[module] = Place(name, kind)
    return out


@dataclass(frozen=True)
class Facts:
    """What the check reads from one module: its imports and its calls."""

    imports: tuple[ast.Import | ast.ImportFrom, ...]
    calls: tuple[ast.Call, ...]
    code: bool  # False for a package's __init__ that holds only a docstring


@functools.cache
def _facts(text: str) -> Facts:
    """Parsed and walked once per distinct text: the tree and its scratch copies share it."""
    tree = ast.parse(text)
    nodes = list(ast.walk(tree))
    return Facts(
        imports=tuple(n for n in nodes if isinstance(n, ast.Import | ast.ImportFrom)),
        calls=tuple(n for n in nodes if isinstance(n, ast.Call)),
        code=not all(isinstance(n, ast.Expr) for n in tree.body),
    )


def package(root: Path) -> dict[str, Facts]:
    """Every module under root/supervisor that holds code (a docstring alone does not)."""
    found: dict[str, Facts] = {}
    base = root / "supervisor"
    for path in sorted(base.rglob("*.py")):
        facts = _facts(path.read_text())
        parts = path.relative_to(base).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
            if parts and not facts.code:
                continue
        found[".".join(parts) or "supervisor"] = facts
    return found


def imported_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The dotted names an import statement may bind (a `from` import: each name as a module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    return [base] + [f"{base}.{a.name}" if base else a.name for a in node.names]


def our_module(name: str, known: dict[str, Facts]) -> str | None:
    """The module of ours that a dotted name refers to, longest match first."""
    if name != "supervisor" and not name.startswith("supervisor."):
        return None
    parts = name.split(".")[1:]
    while parts and ".".join(parts) not in known:
        parts.pop()
    return ".".join(parts) or "supervisor"


def _import_problems(module: str, facts: Facts, known: dict[str, Facts]) -> list[str]:
    places = placed()
    here = places[module]
    room = ROOMS[here.room]
    out: list[str] = []
    for call in facts.calls:
        if isinstance(call.func, ast.Name) and call.func.id == "__import__":
            out.append(f"{module}:{call.lineno} imports by name at run time (__import__)")
    for node in facts.imports:
        where = f"{module}:{node.lineno}"
        if isinstance(node, ast.ImportFrom) and node.level:
            out.append(f"{where} imports relatively (from {'.' * node.level}{node.module or ''})")
            continue
        names = imported_names(node)
        for name in names:
            top = name.split(".")[0]
            # `from importlib import resources` also names "importlib": judge the module named.
            bare = name == "importlib" and isinstance(node, ast.ImportFrom)
            if top == "importlib" and not bare and not name.startswith(tuple(IMPORTLIB_OK)):
                out.append(f"{where} imports by name at run time ({name})")
            if top == "devtools":
                out.append(f"{where} imports the dev tools ({name})")
            if here.kind == "pure" and top in IO_LIBS:
                out.append(f"{where} is pure but imports the I/O library {name}")
        for target in {t for t in (our_module(n, known) for n in names) if t is not None}:
            if target == module:
                continue
            problem = _crossing(module, target, places, room)
            if problem and (module, target) not in ALLOWED:
                out.append(f"{where} imports supervisor.{target}: {problem}")
    return out


def _crossing(module: str, target: str, places: dict[str, Place], room: Room) -> str | None:
    """Why `module` may not import `target`, or None."""
    there = places.get(target)
    if there is None:
        return "a module missing from the table"
    here = places[module]
    if there.room != here.room and there.room not in room.modules("uses"):
        return f"room {here.room} may not import room {there.room}"
    if here.kind == "pure" and there.kind != "pure":
        return f"a pure module imports a {there.kind} module"
    if here.kind == "edges" and there.kind != "pure":
        return f"an adapter imports a {there.kind} module (adapters import only pure ones)"
    if here.kind == "joins" and there.kind == "composes":
        return "a joiner imports the composition layer"
    return None


def _io_problems(module: str, facts: Facts) -> list[str]:
    """Calls that do I/O, in a module the table calls pure."""
    out: list[str] = []
    for node in facts.calls:
        func = node.func
        name = None
        if isinstance(func, ast.Name) and func.id in IO_CALLS:
            name = func.id
        elif isinstance(func, ast.Attribute):
            owner = func.value.id if isinstance(func.value, ast.Name) else None
            if (owner == "os" and func.attr in OS_IO) or (owner == "time" and func.attr in TIME_IO):
                name = f"{owner}.{func.attr}"
            elif owner not in {"os", "time", "re"} and func.attr in PATH_IO:
                name = func.attr
        if name and (module, name) not in ALLOWED_IO:
            out.append(f"{module}:{node.lineno} is pure but does I/O ({name})")
    return out


def problems(root: Path) -> list[str]:
    """Everything in the tree at `root` that breaks the table; empty when the house holds."""
    known = package(root)
    places = placed()
    out = [f"{m}: not in the table of rooms" for m in sorted(set(known) - set(places))]
    out += [f"{m}: in the table, not in the tree" for m in sorted(set(places) - set(known))]
    for module, facts in known.items():
        if module not in places:
            continue
        out += _import_problems(module, facts, known)
        if places[module].kind == "pure":
            out += _io_problems(module, facts)
    return out
