"""The import direction holds: the pure core imports no adapter and no I/O library."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "supervisor"
CORE = {"model", "health", "render", "errors"}
ADAPTERS = {"systemd", "http", "metrics", "notify", "selfstats", "logs"}
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
    "os",
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


def test_core_does_no_io_and_imports_no_adapter() -> None:
    for module in CORE:
        for name in imports(module):
            top, _, rest = name.partition(".")
            assert top not in IO_LIBS, f"{module} imports {name}"
            if top == "supervisor":
                assert rest.split(".")[0] not in ADAPTERS, f"{module} imports {name}"


def test_adapters_do_not_import_each_other() -> None:
    for module in ADAPTERS:
        for name in imports(module):
            if name.startswith("supervisor."):
                other = name.split(".")[1]
                assert other not in ADAPTERS or other == module, f"{module} imports {name}"
                assert other != "daemon", f"{module} imports the composition root"
