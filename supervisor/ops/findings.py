"""What `supervisor doctor` found: one record per check, the verdict and how it is shown. Pure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum


class Level(StrEnum):
    """How a check came out; a warning never makes doctor fail."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Finding:
    """One check: its name, how it came out, what was seen and, for a problem, the fix."""

    name: str
    level: Level
    detail: str
    fix: str = ""

    @classmethod
    def ok(cls, name: str, detail: str) -> Finding:
        """A check that passed."""
        return cls(name, Level.OK, detail)

    @classmethod
    def warn(cls, name: str, detail: str, fix: str) -> Finding:
        """Something to look at that does not stop the supervisor doing its job."""
        return cls(name, Level.WARN, detail, fix)

    @classmethod
    def fail(cls, name: str, detail: str, fix: str) -> Finding:
        """Something that stops it (or part of it) working."""
        return cls(name, Level.FAIL, detail, fix)


_RANK = {Level.OK: 0, Level.WARN: 1, Level.FAIL: 2}


def verdict(findings: Sequence[Finding]) -> Level:
    """The worst level found (ok when nothing was checked)."""
    return max((f.level for f in findings), key=_RANK.__getitem__, default=Level.OK)


def exit_code(findings: Sequence[Finding]) -> int:
    """0 when nothing failed, 1 otherwise (warnings alone still exit 0)."""
    return 1 if verdict(findings) is Level.FAIL else 0


def render_text(findings: Sequence[Finding]) -> str:
    """One line per check (`fail  port  ...; fix: ...`), then the verdict."""
    width = max((len(f.name) for f in findings), default=0)
    lines = []
    for f in findings:
        fix = f"; fix: {f.fix}" if f.fix and f.level is not Level.OK else ""
        lines.append(f"{f.level.value:<4}  {f.name:<{width}}  {f.detail}{fix}")
    counts = {level: sum(f.level is level for f in findings) for level in Level}
    summary = ", ".join(f"{n} {level.value}" for level, n in counts.items() if n)
    lines.append(f"doctor: {verdict(findings).value} ({summary or 'nothing checked'})")
    return "\n".join(lines)


def render_json(findings: Sequence[Finding]) -> str:
    """`{"status": "ok|warn|fail", "checks": [{name, level, detail, fix}, ...]}` for scripts."""
    checks = [{**asdict(f), "level": f.level.value} for f in findings]
    return json.dumps({"status": verdict(findings).value, "checks": checks}, indent=2)
