"""Typed configs from plain data: a (nested) dict to frozen dataclasses, validated once, every
problem named by its dotted key (``var.train.optim.lr: must be > 0``).

Used for params.yaml (lsrs.pipeline.params) and for the report's spec (lsrs.report.spec); it imports
nothing but the standard library, so the torch-free report can use it too.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Mapping


def from_dict(cls, data, prefix: str = "", error: type[Exception] = ValueError, require_all: bool = False):
    """Build dataclass `cls` from `data`: unknown keys, wrong types and the dataclass' own validation
    (ValueError/TypeError in __post_init__) raise `error` naming the key. Lists become tuples, ints
    floats where the field says so. With `require_all` a missing key is an error too (else its default)."""
    if not isinstance(data, Mapping):
        raise error(f"{prefix or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields]
    unknown = sorted(str(k) for k in set(data) - set(names))
    if unknown:
        raise error(f"{_join(prefix, unknown[0])}: unknown key (known: {', '.join(names)})")
    if require_all:
        missing = [n for n in names if n not in data]
        if missing:
            raise error(f"{_join(prefix, missing[0])}: missing key")
    kwargs = {k: _convert(hints[k], v, _join(prefix, k), error, require_all) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except error:
        raise
    except (ValueError, TypeError) as exc:
        raise error(f"{prefix or cls.__name__}: {exc}") from exc


def _join(prefix: str, key) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _convert(tp, value, key: str, error: type[Exception], require_all: bool):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key, error, require_all)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _convert(next(a for a in args if a is not type(None)), value, key, error, require_all)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise error(f"{key}: expected a mapping, got {value!r}")
        return {_convert(args[0], k, key, error, require_all): _convert(args[1], v, _join(key, k), error, require_all)
                for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise error(f"{key}: expected a list, got {value!r}")
        return tuple(_convert(args[0], v, f"{key}[{i}]", error, require_all) for i, v in enumerate(value))
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool, float) and not (isinstance(value, tp) and not (tp is int and isinstance(value, bool))):
        raise error(f"{key}: expected {tp.__name__}, got {value!r}")
    return value
