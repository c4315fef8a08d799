"""Shared pieces of the config models: strictness, common field types, and located problems."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(gt=0, le=86_400)]
GraceSeconds = Annotated[float, Field(ge=0, le=86_400)]  # 0: none
Count = Annotated[int, Field(ge=1, le=1000)]
Percent = Annotated[float, Field(gt=0, le=100)]
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Strict(BaseModel):
    """Unknown keys are errors: a typo must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldError(ValueError):
    """A problem found by a validator of a whole model, located at one of its fields.

    pydantic reports a model validator's error at the model; the error lines name the field
    (`describe_errors` appends `where` to the path), so the user is pointed at the key to fix.
    """

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where


def check_command(argv: list[str]) -> list[str]:
    """An argument list whose program is an absolute path (`~` expanded); no shell implied."""
    if not argv:
        raise ValueError("must name a program: an empty command runs nothing")
    program = str(Path(argv[0]).expanduser())
    if not Path(program).is_absolute():
        raise ValueError(
            f"the program must be an absolute path (got {argv[0]!r}): nothing is looked up on PATH"
        )
    return [program, *argv[1:]]


def check_absolute(path: Path) -> Path:
    """A path with `~` expanded, which must then be absolute."""
    path = path.expanduser()
    if not path.is_absolute():
        raise ValueError(f"must be an absolute path (got {str(path)!r})")
    return path


def check_env(env: dict[str, str]) -> dict[str, str]:
    """Variable names a process can be given."""
    for name in env:
        if not _ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid environment variable name")
    return env
