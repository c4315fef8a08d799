"""SUPERVISOR_* environment overrides: what the environment sets, nested as in the file.

`SUPERVISOR_HTTP__PORT=6000` sets `http.port`: the prefix, then the keys joined by `__`, in
any case. A value for a table or a list (a model, list or dict field) is JSON
(`SUPERVISOR_TARGETS='[{"name": ...}]'`); any other is given to the model as text, which
validates it like the file's. Variables naming no top-level key are left alone. These are
pydantic-settings' rules, kept without its import (it cost 1.2 MB of RSS for one call at
start, and a reload).
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

PREFIX = "SUPERVISOR_"
NESTING = "__"
_CONTAINERS = (list, dict, set, frozenset, tuple)


class EnvValueError(ValueError):
    """A variable's value could not be read (its value is not repeated: it may be a secret)."""

    def __init__(self, name: str, key: str, why: str) -> None:
        super().__init__(f"{key} (set by {name} in the environment): {why}")


def overrides(env: Mapping[str, str], model: type[BaseModel]) -> dict[str, Any]:
    """The keys the environment sets for `model`, as a nested dict (outer tables first, so a
    nested variable refines a table given whole as JSON)."""
    out: dict[str, Any] = {}
    found = [(name, name[len(PREFIX) :].lower().split(NESTING)) for name in env]
    found = [(n, keys) for n, keys in found if n.upper().startswith(PREFIX)]
    for name, keys in sorted(found, key=lambda item: len(item[1])):
        if keys[0] not in model.model_fields:
            continue
        value = _decoded(name, keys, env[name], model)
        node = out
        for key in keys[:-1]:
            inner = node.get(key)
            if not isinstance(inner, dict):
                inner = node[key] = {}
            node = inner
        node[keys[-1]] = value
    return out


def merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `over` laid on it: tables merged key by key, anything else replaced."""
    out = dict(base)
    for key, value in over.items():
        below = out.get(key)
        if isinstance(below, Mapping) and isinstance(value, Mapping):
            out[key] = merged(below, value)
        else:
            out[key] = value
    return out


def _decoded(name: str, keys: list[str], value: str, model: type[BaseModel]) -> Any:
    """The value as the model takes it: JSON for a table or a list, else the text."""
    annotation: Any = model
    for key in keys:
        fields = _model(annotation)
        if fields is None or key not in fields.model_fields:
            return value  # not a known key: validation says so, naming it
        annotation = fields.model_fields[key].annotation
    if not value or not _complex(annotation):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise EnvValueError(name, ".".join(keys), f"not valid JSON ({exc.msg})") from None


def _options(annotation: Any) -> tuple[Any, ...]:
    """The types an annotation allows (the members of a union, Annotated's type)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _options(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return tuple(t for arg in typing.get_args(annotation) for t in _options(arg))
    return (annotation,)


def _model(annotation: Any) -> type[BaseModel] | None:
    return next(
        (t for t in _options(annotation) if isinstance(t, type) and issubclass(t, BaseModel)),
        None,
    )


def _complex(annotation: Any) -> bool:
    """A table or a list: given as JSON in the environment."""
    for option in _options(annotation):
        origin = typing.get_origin(option) or option
        if isinstance(origin, type) and issubclass(origin, (BaseModel, *_CONTAINERS)):
            return True
    return False
