"""``json.loads``/``json.dumps`` for the CLI's fast path, without importing :mod:`json`.

``import json`` imports ``json.decoder``, which imports ``re`` (and with it ``enum``,
``functools``, ``collections``): ~9 ms of CPU of a ~24 ms ``tether network ls``
(``python -X importtime``), more than the rest of the command's own work. The C parts of
the json package (``_json``: the scanner, the string escapers) need none of that, so
:func:`loads` runs ``_json``'s scanner directly and :func:`dumps` writes JSON with its
escapers, giving byte for byte what ``json.dumps`` gives for the JSON the API sends
(dicts with string keys, lists, strings, numbers, booleans, null; a unit test holds the
two together). Anything else — another key type, a custom object, no ``_json`` —
falls back to :mod:`json` itself.
"""

from __future__ import annotations

# typing is not imported at run time (~2 ms); mypy reads the name below.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_C: Any
try:
    import _json

    _C = _json
except ImportError:  # pragma: no cover (CPython always has it)
    _C = None

_WS = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Context:
    """What ``_json.make_scanner`` reads from a ``JSONDecoder`` (its defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    memo: dict[str, str] = {}


_scan: Any = None


def loads(text: str | bytes) -> Any:
    """``json.loads`` of UTF-8 or str JSON; ``ValueError`` when it is not JSON."""
    global _scan
    if _C is None:
        import json

        return json.loads(text)
    if not isinstance(text, str):
        text = bytes(text).decode()
    if text.startswith("\ufeff"):  # (json.loads takes a BOM in bytes)
        text = text[1:]
    if _scan is None:
        _scan = _C.make_scanner(_Context())
    i = _skip(text, 0)
    try:
        obj, end = _scan(text, i)
    except StopIteration as exc:
        raise ValueError(f"Expecting value: char {exc.value}") from None
    finally:
        _Context.memo.clear()
    if _skip(text, end) != len(text):
        raise ValueError(f"Extra data: char {end}")
    return obj


def _skip(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _WS:
        i += 1
    return i


def dumps(obj: Any, indent: int | None = None, ensure_ascii: bool = True) -> str:
    """``json.dumps(obj, indent=indent, ensure_ascii=ensure_ascii)``."""
    if _C is None:
        import json

        return json.dumps(obj, indent=indent, ensure_ascii=ensure_ascii)
    out: list[str] = []
    try:
        _write(
            obj,
            out,
            _C.encode_basestring_ascii if ensure_ascii else _C.encode_basestring,
            indent,
            0,
        )
    except _Unusual:
        import json

        return json.dumps(obj, indent=indent, ensure_ascii=ensure_ascii)
    return "".join(out)


class _Unusual(Exception):
    """A value this writer leaves to :mod:`json` (non-string keys, other types)."""


def _write(obj: Any, out: list[str], esc: Any, indent: int | None, level: int) -> None:
    if isinstance(obj, str):
        out.append(esc(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        out.append(int.__repr__(obj))
    elif isinstance(obj, float):
        out.append(_float(obj))
    elif isinstance(obj, dict):
        _container(list(obj.items()), "{", "}", out, esc, indent, level)
    elif isinstance(obj, (list, tuple)):
        _container(list(obj), "[", "]", out, esc, indent, level)
    else:
        raise _Unusual


def _container(
    items: list[Any],
    left: str,
    right: str,
    out: list[str],
    esc: Any,
    indent: int | None,
    level: int,
) -> None:
    if not items:
        out.append(left + right)
        return
    if indent is None:
        sep, pad, end = ", ", "", ""
    else:
        pad = "\n" + " " * (indent * (level + 1))
        sep, end = "," + pad, "\n" + " " * (indent * level)
    out.append(left + pad)
    for n, item in enumerate(items):
        if n:
            out.append(sep)
        if left == "{":
            key, value = item
            if not isinstance(key, str):
                raise _Unusual
            out.append(esc(key) + ": ")
            _write(value, out, esc, indent, level + 1)
        else:
            _write(item, out, esc, indent, level + 1)
    out.append(end + right)


def _float(f: float) -> str:
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "Infinity" if f > 0 else "-Infinity"
    return float.__repr__(f)
