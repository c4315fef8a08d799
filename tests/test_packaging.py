"""The wheel ships the daemon and nothing else (no sandbox, demo fleet or benchmark), and
installs are locked: requirements.lock pins every runtime dependency with hashes, within
pyproject.toml's bounds, and every distribution the package imports is declared."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_holds_only_the_daemon(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
         "-q", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"supervisor"}
    # The shipped unit, for `supervisor doctor` to compare the installed one with.
    data = [n.split("/", 2)[2] for n in names if n.split("/")[0].endswith(".data")]
    assert data == ["share/sidecar-supervisor/units/sidecar-supervisor.service"]
    assert "supervisor/app/daemon.py" in names
    assert not [n for n in names if "sandbox" in n or "demo" in n or "bench" in n]
    # The status page ships as package data: no CDN, no build step.
    for page in ("index.html", "page.js", "page.css"):
        assert f"supervisor/api/static/{page}" in names


# -- locked installs -------------------------------------------------------------------------

LOCK = ROOT / "requirements.lock"


def declared() -> list[Requirement]:
    """The runtime dependencies of pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


def locked() -> dict[str, tuple[str, list[str]]]:
    """requirements.lock: each distribution's pinned version and its hashes."""
    pins: dict[str, tuple[str, list[str]]] = {}
    text = LOCK.read_text().replace("\\\n", " ")
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *options = line.split()
        name, version = spec.split("==")
        hashes = [o.removeprefix("--hash=") for o in options if o.startswith("--hash=sha256:")]
        pins[canonicalize_name(name)] = (version, hashes)
    return pins


def test_the_lock_pins_every_runtime_dependency_within_pyproject_with_hashes() -> None:
    pins = locked()
    for req in declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} is declared but not locked: refresh requirements.lock"
        version, _ = pins[name]
        assert req.specifier.contains(version), f"{name}=={version} does not satisfy {req}"
    for pinned, (version, hashes) in pins.items():
        assert hashes, f"{pinned}=={version} has no hash"


def test_the_lock_is_whole_every_dependency_of_a_locked_one_is_locked() -> None:
    # What pip --require-hashes needs: nothing outside the lock may be pulled in.
    pins = locked()
    env = {"extra": ""}
    for name in pins:
        for text in importlib.metadata.requires(name) or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate(env):
                assert canonicalize_name(req.name) in pins, f"{name} needs {req}, not locked"


def test_every_0x_dependency_has_an_upper_bound() -> None:
    pins = locked()
    for req in declared():
        version, _ = pins[canonicalize_name(req.name)]
        if version.startswith("0."):
            assert any(s.operator in ("<", "<=", "~=", "==") for s in req.specifier), req


def test_every_imported_distribution_is_declared() -> None:
    top: set[str] = set()
    for path in (ROOT / "supervisor").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                top.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                top.add(node.module.split(".")[0])
    third_party = top - set(sys.stdlib_module_names) - {"supervisor"}
    dists = importlib.metadata.packages_distributions()
    names = {canonicalize_name(r.name) for r in declared()}
    for module in sorted(third_party):
        assert module in dists, f"{module} is imported but no installed distribution has it"
        assert {canonicalize_name(d) for d in dists[module]} & names, f"{module} is not declared"


def test_the_installer_installs_the_lock_hash_checked() -> None:
    script = (ROOT / "install_services.sh").read_text()
    assert '--require-hashes -r "$repo/requirements.lock"' in script
    assert '--upgrade --no-deps "$repo"' in script
