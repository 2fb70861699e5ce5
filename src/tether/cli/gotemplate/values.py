"""Template values: errors, ``MISSING``, Go-style printing, truth and comparison."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from typing import Any


class TemplateError(Exception):
    """A template that does not parse or fails while executing."""


class _Missing:
    def __repr__(self) -> str:
        return "<no value>"


MISSING: Any = _Missing()

# Object-valued fields that are Go maps in Docker's API types.
MAP_FIELDS = frozenset(
    {
        "Labels",
        "Options",
        "Networks",
        "Ports",
        "ExposedPorts",
        "Volumes",
        "Containers",
        "AuxiliaryAddresses",
        "AuxAddress",
        "DriverOpts",
        "Tmpfs",
        "Sysctls",
        "StorageOpt",
        "Annotations",
        "Peers",
    }
)
# Maps whose values Go holds through pointers.
PTR_VALUE_MAPS = frozenset({"Networks"})
# Struct fields that are pointers in Docker's API types.
PTR_FIELDS = frozenset(
    {
        "State",
        "Config",
        "HostConfig",
        "NetworkSettings",
        "IPAMConfig",
        "Health",
        "RestartPolicy",
        "Node",
    }
)


class GoMap(dict[str, Any]):
    """A JSON object known to be a Go map (prints as ``map[...]``)."""

    ptr_values: bool = False


# ---------------------------------------------------------------- printing


def _fake_ptr(v: object) -> str:
    h = zlib.crc32(json.dumps(v, sort_keys=True, default=str).encode()) & 0xFFFFF
    return f"0xc000{h:05x}0"[:12]


def _fmt_float(f: float) -> str:
    if f == int(f) and abs(f) < 1e21:
        s = repr(float(f))
        if "e" not in s:
            return str(int(f))
    s = repr(f)
    if "e" in s:
        mant, exp = s.split("e")
        sign = exp[0] if exp[0] in "+-" else "+"
        digits = exp.lstrip("+-").rjust(2, "0")
        return f"{mant}e{sign}{digits}"
    return s


def _fmt(v: Any, key: str | None, top: bool, ptr: bool = False) -> str:
    if v is MISSING:
        return "<no value>"
    if v is None:
        if key in MAP_FIELDS:
            return "map[]"
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _fmt_float(v)
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_fmt(x, None, False) for x in v) + "]"
    if isinstance(v, dict):
        if not top and (ptr or key in PTR_FIELDS):
            return _fake_ptr(v)
        if isinstance(v, GoMap) or key in MAP_FIELDS:
            pv = (isinstance(v, GoMap) and v.ptr_values) or key in PTR_VALUE_MAPS
            items = " ".join(f"{k}:{_fmt(v[k], None, False, pv)}" for k in sorted(v))
            return f"map[{items}]"
        return "{" + " ".join(_fmt(x, k, False) for k, x in v.items()) + "}"
    if callable(v):
        return _fake_ptr(repr(v))
    return str(v)


def go_str(v: Any) -> str:
    """Print a value the way ``{{.}}`` would (Go's ``fmt.Print``)."""
    return _fmt(v, None, True)


def wrap(v: Any, key: str) -> Any:
    if isinstance(v, dict) and not isinstance(v, GoMap) and key in MAP_FIELDS:
        m = GoMap(v)
        m.ptr_values = key in PTR_VALUE_MAPS
        return m
    return v


def to_json(v: Any) -> str:
    if v is MISSING:
        v = None
    return json.dumps(_jsonable(v), ensure_ascii=False, separators=(",", ":"))


def _jsonable(v: Any) -> Any:
    if isinstance(v, GoMap):
        return {k: _jsonable(v[k]) for k in sorted(v)}
    if isinstance(v, dict):
        return {k: _jsonable(wrap(x, k)) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


# ---------------------------------------------------------------- truth & compare


def truth(v: Any) -> bool:
    if v is MISSING or v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return v != 0
    if isinstance(v, (str, list, tuple)):
        return len(v) > 0
    if isinstance(v, GoMap):
        return len(v) > 0
    return True  # structs are always true in Go


def _basic(v: Any, name: str) -> Any:
    if v is MISSING or v is None:
        raise TemplateError(f"error calling {name}: invalid type for comparison")
    if isinstance(v, (dict, list, tuple)):
        raise TemplateError(f"error calling {name}: non-comparable type")
    return v


def go_eq(a: Any, *bs: Any) -> bool:
    if not bs:
        raise TemplateError("wrong number of args for eq: want at least 1 got 0")
    a = _basic(a, "eq")
    for b in bs:
        b = _basic(b, "eq")
        if isinstance(a, bool) != isinstance(b, bool) or isinstance(a, str) != isinstance(b, str):
            raise TemplateError("error calling eq: incompatible types for comparison")
        if a == b:
            return True
    return False


def ordered(name: str, op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def f(a: Any, b: Any) -> bool:
        a, b = _basic(a, name), _basic(b, name)
        if isinstance(a, bool) or isinstance(b, bool):
            raise TemplateError(f"error calling {name}: invalid type for comparison")
        if isinstance(a, str) != isinstance(b, str):
            raise TemplateError(f"error calling {name}: incompatible types for comparison")
        return op(a, b)

    return f
