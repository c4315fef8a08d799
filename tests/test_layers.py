"""The import direction holds: pure core <- adapters <- joiners <- composition layer.

Every module of the shipped package is named here on its dotted name, in exactly one layer:

- **core**: pure decision modules and shared types. No I/O library, and only other core
  modules (`config` counts as core: the pure modules read their settings from it, and its one
  I/O, `load()`, is called only by the composition layer);
- **adapters**: the edges (D-Bus, HTTP, /proc, files, Telegram). They import the core only,
  never another adapter;
- **joiners**: the few modules inside a room that connect that room's adapters to the core
  and run its loop (the recovery executor, alert delivery). They import core and adapters,
  never the composition layer;
- **composition**: builds everything and runs it; the only layer that may import all.

Nothing in the product imports the dev tools (`devtools`: the sandbox, the demo fleet).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "supervisor"

CORE = {
    "supervisor.model",
    "supervisor.errors",
    "supervisor.config",
    "supervisor.config.base",
    "supervisor.config.probes",
    "supervisor.config.targets",
    "supervisor.procfs",
    "supervisor.watch.health",
    "supervisor.watch.track",
    "supervisor.watch.units",
    "supervisor.watch.jobs",
    "supervisor.watch.intent",
    "supervisor.probing.schedule",
    "supervisor.probing.stuck",
    "supervisor.probing.outcome",
    "supervisor.probing.nagios",
    "supervisor.probing.conditions",
    "supervisor.recovery.policy",
    "supervisor.guard.breaker",
    "supervisor.guard.throttle",
    "supervisor.alerts.policy",
    "supervisor.alerts.incident",
    "supervisor.alerts.outbox",
    "supervisor.alerts.chat",
    "supervisor.alerts.commands",
    "supervisor.alerts.text",
    "supervisor.redaction",
    "supervisor.api.render",
    "supervisor.history.events",
    "supervisor.history.uptime",
    "supervisor.history.ring",
    "supervisor.history.report",
    "supervisor.history.sql",
    "supervisor.api.attempts",
    "supervisor.api.tally",
    "supervisor.risks",
    "supervisor.ops.findings",
    "supervisor.ops.judge",
    "supervisor.ops.archive",
    "supervisor.ops.reading",
}
ADAPTERS = {
    "supervisor.watch.systemd",
    "supervisor.probing.probes",
    "supervisor.probing.command",
    "supervisor.probing.host",
    "supervisor.probing.resources",
    "supervisor.recovery.ports",
    "supervisor.alerts.telegram",
    "supervisor.guard.load",
    "supervisor.api.server",
    "supervisor.api.transport",
    "supervisor.api.metrics",
    "supervisor.runtime.notify",
    "supervisor.runtime.logs",
    "supervisor.runtime.state",
    "supervisor.history.store",
    "supervisor.api.history",
    "supervisor.api.stream",
    "supervisor.api.page",
    "supervisor.api.control",
    "supervisor.runtime.limits",
    "supervisor.ops.host",
}
JOINERS = {
    "supervisor.watch.link",
    "supervisor.probing.runner",
    "supervisor.recovery.executor",
    "supervisor.alerts.delivery",
    "supervisor.alerts.lastword",
    "supervisor.guard.sentry",
    "supervisor.history.recorder",
    "supervisor.ops.doctor",
    "supervisor.ops.backup",
}
COMPOSITION = {
    "supervisor.app.daemon",
    "supervisor.app.build",
    "supervisor.app.fleet",
    "supervisor.app.persist",
    "supervisor.app.supervision",
    "supervisor.app.waiting",
    "supervisor.cli",
    "supervisor.ops.commands",
    "supervisor.hold_cli",
    "supervisor.app.holding",
    "supervisor.__main__",
}
IO_LIBS = {
    "aiohttp",
    "dbus_fast",
    "psutil",
    "socket",
    "subprocess",
    "telegram",
    "asyncio",
    "prometheus_client",
    "urllib",
    "httpx",
    "select",
    "signal",
    "ctypes",
    "sqlite3",
    "shutil",
    "resource",
}


def dotted(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the package that holds code (package docstrings alone do not count)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        body = [n for n in tree.body if not isinstance(n, ast.Expr)]
        if path.name != "__init__.py" or body:
            found[dotted(path)] = path
    return found


def imports(name: str) -> set[str]:
    path = modules()[name]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            # `from supervisor.api import render` imports the module supervisor.api.render
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def ours(name: str) -> set[str]:
    """The package's modules that `name` imports."""
    known = modules()
    return {n for n in imports(name) if n in known and n != "supervisor"}


def test_every_module_has_exactly_one_layer() -> None:
    layers = [CORE, ADAPTERS, JOINERS, COMPOSITION | {"supervisor"}]
    assert set(modules()) == set().union(*layers)
    assert sum(len(layer) for layer in layers) == len(set().union(*layers))


def test_core_does_no_io_and_imports_only_core() -> None:
    for module in CORE:
        for name in imports(module):
            assert name.split(".")[0] not in IO_LIBS, f"{module} imports {name}"
        assert ours(module) <= CORE, f"{module} imports {ours(module) - CORE}"


def test_adapters_import_only_the_core() -> None:
    for module in ADAPTERS:
        assert ours(module) <= CORE, f"{module} imports {ours(module) - CORE}"


def test_joiners_never_import_the_composition_layer() -> None:
    for module in JOINERS:
        assert ours(module) <= CORE | ADAPTERS, f"{module} imports {ours(module) - CORE - ADAPTERS}"


def test_nothing_in_the_product_imports_the_dev_tools() -> None:
    for module in modules():
        tools = {n for n in imports(module) if n.split(".")[0] == "devtools"}
        assert not tools, f"{module} imports {tools}"
