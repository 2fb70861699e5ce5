"""The functions Go's text/template and docker register (``FUNCS``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from tether.cli.gotemplate.values import (
    MISSING,
    TemplateError,
    go_eq,
    go_str,
    ordered,
    to_json,
    truth,
)


def _index(item: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(item, dict):
            item = item.get(k, MISSING) if isinstance(k, str) else MISSING
            if item is MISSING:
                item = None
        elif isinstance(item, (list, tuple, str)):
            if not isinstance(k, int) or isinstance(k, bool):
                raise TemplateError("error calling index: cannot index slice/array with type")
            if not 0 <= k < len(item):
                raise TemplateError(f"error calling index: index out of range: {k}")
            item = item[k]
        else:
            raise TemplateError(f"error calling index: can't index item of type {type(item)}")
    return item


def _len(v: Any) -> int:
    if isinstance(v, (str, list, tuple, dict)):
        return len(v)
    raise TemplateError(f"error calling len: len of type {type(v).__name__}")


def _slice(v: Any, *idx: int) -> Any:
    if not isinstance(v, (str, list, tuple)):
        raise TemplateError("error calling slice: can't slice item")
    if len(idx) > 2:
        raise TemplateError("error calling slice: too many slice indexes")
    start = idx[0] if idx else 0
    end = idx[1] if len(idx) > 1 else len(v)
    if not 0 <= start <= end <= len(v):
        raise TemplateError(f"error calling slice: index out of range: {end}")
    return v[start:end]


def _print_args(args: tuple[Any, ...]) -> str:
    # Go's fmt.Sprint adds spaces between operands when neither is a string.
    out: list[str] = []
    prev_str = True
    for i, a in enumerate(args):
        is_str = isinstance(a, str)
        if i > 0 and not is_str and not prev_str:
            out.append(" ")
        out.append(go_str(a))
        prev_str = is_str
    return "".join(out)


_PRINTF_RE = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+))?([a-zA-Z%])")


def _printf(fmt: str, *args: Any) -> str:
    it = iter(args)

    def repl(m: re.Match[str]) -> str:
        flags, width, prec, verb = m.groups()
        if verb == "%":
            return "%"
        try:
            a = next(it)
        except StopIteration:
            return f"%!{verb}(MISSING)"
        spec = flags.replace("#", "") + (width or "") + (f".{prec}" if prec else "")
        if verb in "vs":
            return format(go_str(a), _strspec(flags, width, prec))
        if verb == "q":
            return format(json.dumps(go_str(a), ensure_ascii=False), _strspec(flags, width, None))
        if verb == "t":
            return format(go_str(a), _strspec(flags, width, None))
        if verb in "dxXobeEfgG" and isinstance(a, (int, float)) and not isinstance(a, bool):
            pyverb = verb if verb != "d" else "d"
            val: Any = int(a) if verb in "dxXob" else float(a)
            return format(val, _numspec(spec) + pyverb)
        return f"%!{verb}({go_str(a)})"

    out = _PRINTF_RE.sub(repl, fmt)
    rest = list(it)
    if rest:
        out += "%!(EXTRA " + ", ".join(go_str(r) for r in rest) + ")"
    return out


def _strspec(flags: str, width: str | None, prec: str | None) -> str:
    align = "<" if "-" in flags else ">"
    return f"{align}{width or ''}" + (f".{prec}" if prec else "")


def _numspec(spec: str) -> str:
    if spec.startswith("-"):
        return "<" + spec[1:]
    return spec


def _join(items: Any, sep: str) -> str:
    if not isinstance(items, (list, tuple)):
        raise TemplateError("error calling join: wrong type for value; expected []string")
    return sep.join(go_str(x) for x in items)


def _pad(s: str, before: int, after: int) -> str:
    return " " * before + s + " " * after if s else s


def _truncate(s: str, n: int) -> str:
    return s[:n] if len(s) > n else s


def _title(s: str) -> str:
    return re.sub(r"(^|[^\w'])(\w)", lambda m: m.group(1) + m.group(2).upper(), s)


def _and(*args: Any) -> Any:
    v: Any = MISSING
    for v in args:
        if not truth(v):
            return v
    return v


def _or(*args: Any) -> Any:
    v: Any = MISSING
    for v in args:
        if truth(v):
            return v
    return v


FUNCS: dict[str, Callable[..., Any]] = {
    "json": to_json,
    "join": _join,
    "split": lambda s, sep: s.split(sep) if sep else list(s),
    "upper": lambda s: go_str(s).upper(),
    "lower": lambda s: go_str(s).lower(),
    "title": lambda s: _title(go_str(s)),
    "pad": _pad,
    "truncate": _truncate,
    "index": _index,
    "len": _len,
    "slice": _slice,
    "not": lambda v: not truth(v),
    "and": _and,
    "or": _or,
    "eq": go_eq,
    "ne": lambda a, b: not go_eq(a, b),
    "lt": ordered("lt", lambda a, b: a < b),
    "le": ordered("le", lambda a, b: a <= b),
    "gt": ordered("gt", lambda a, b: a > b),
    "ge": ordered("ge", lambda a, b: a >= b),
    "print": lambda *a: _print_args(a),
    "printf": _printf,
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
}
