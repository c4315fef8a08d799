"""The import direction holds: pure core <- adapters <- composition layer.

`config` counts with the core here: the pure modules read their settings from it (its one
I/O is `load()`, called only by the composition layer).

The pure core imports no adapter and no I/O library; adapters import the core, never each
other; only the composition layer (daemon, repair, notifications, cli) joins adapters.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "supervisor"
CORE = {
    "model",
    "health",
    "render",
    "errors",
    "config",
    "schedule",
    "recovery",
    "breaker",
    "alerting",
    "outbox",
    "chat",
}
ADAPTERS = {
    "systemd",
    "http",
    "metrics",
    "notify",
    "selfstats",
    "logs",
    "probes",
    "ports",
    "resources",
    "state",
    "telegram",
}
COMPOSITION = {"daemon", "repair", "notifications", "cli", "__main__", "__init__"}
TOOLS = {"sandbox", "demo"}  # the test and demo sandbox and fleet: never imported by the daemon
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
}


def imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def ours(module: str) -> set[str]:
    return {n.split(".")[1] for n in imports(module) if n.startswith("supervisor.")}


def test_every_module_has_a_layer() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert modules | packages == CORE | ADAPTERS | COMPOSITION | TOOLS


def test_core_does_no_io_and_imports_only_core() -> None:
    for module in CORE:
        for name in imports(module):
            assert name.split(".")[0] not in IO_LIBS, f"{module} imports {name}"
        assert ours(module) <= CORE, f"{module} imports {ours(module) - CORE}"


def test_adapters_import_only_the_core() -> None:
    for module in ADAPTERS:
        assert ours(module) <= CORE, f"{module} imports {ours(module) - CORE}"


def test_nothing_but_the_tests_imports_the_sandbox() -> None:
    for module in CORE | ADAPTERS | COMPOSITION - {"__main__", "__init__"}:
        assert not ours(module) & TOOLS, f"{module} imports the sandbox or the demo fleet"
