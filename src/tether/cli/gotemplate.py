"""A small interpreter for the subset of Go's text/template that ``--format`` uses.

Supported: text and ``{{ }}`` actions with ``{{-``/``-}}`` trimming, comments,
fields (``.A.B``), ``.``, ``$`` and ``$var`` (with fields), string/number/bool/nil
literals, parenthesised pipelines, ``|`` pipes, variable declaration and
assignment, ``if``/``else if``/``else``, ``range`` (lists, maps in sorted key
order, integers; with ``$i, $v :=`` and ``else``), ``with``, ``break``,
``continue``, and the functions Go and docker register (``json``, ``join``,
``split``, ``upper``, ``lower``, ``title``, ``pad``, ``truncate``, ``index``,
``len``, ``slice``, ``not``, ``and``, ``or``, ``eq``/``ne``/``lt``/``le``/``gt``/``ge``,
``print``, ``printf``, ``println``).

Values come from decoded JSON, so Go's typed printing is approximated:
a JSON object named by a known map field (``Labels``, ``Networks``, ...) prints as
``map[k:v ...]`` in sorted key order; other objects print as structs
``{v1 v2 ...}`` in the order the daemon sent their fields; objects Go holds
through a pointer inside a map or struct (``Networks`` values, ``IPAMConfig``, ...)
print as a stable pointer-like ``0xc000...`` value, as docker does for
``{{.NetworkSettings.Networks}}`` (``map[net:0xc0004a2000]``).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MISSING", "Template", "TemplateError", "go_str", "render"]


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


def _wrap(v: Any, key: str) -> Any:
    if isinstance(v, dict) and not isinstance(v, GoMap) and key in MAP_FIELDS:
        m = GoMap(v)
        m.ptr_values = key in PTR_VALUE_MAPS
        return m
    return v


def _json(v: Any) -> str:
    if v is MISSING:
        v = None
    return json.dumps(_jsonable(v), ensure_ascii=False, separators=(",", ":"))


def _jsonable(v: Any) -> Any:
    if isinstance(v, GoMap):
        return {k: _jsonable(v[k]) for k in sorted(v)}
    if isinstance(v, dict):
        return {k: _jsonable(_wrap(x, k)) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


# ---------------------------------------------------------------- truth & compare


def _truth(v: Any) -> bool:
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


def _eq(a: Any, *bs: Any) -> bool:
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


def _ordered(name: str, op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def f(a: Any, b: Any) -> bool:
        a, b = _basic(a, name), _basic(b, name)
        if isinstance(a, bool) or isinstance(b, bool):
            raise TemplateError(f"error calling {name}: invalid type for comparison")
        if isinstance(a, str) != isinstance(b, str):
            raise TemplateError(f"error calling {name}: incompatible types for comparison")
        return op(a, b)

    return f


# ---------------------------------------------------------------- functions


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
        if not _truth(v):
            return v
    return v


def _or(*args: Any) -> Any:
    v: Any = MISSING
    for v in args:
        if _truth(v):
            return v
    return v


FUNCS: dict[str, Callable[..., Any]] = {
    "json": _json,
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
    "not": lambda v: not _truth(v),
    "and": _and,
    "or": _or,
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _ordered("lt", lambda a, b: a < b),
    "le": _ordered("le", lambda a, b: a <= b),
    "gt": _ordered("gt", lambda a, b: a > b),
    "ge": _ordered("ge", lambda a, b: a >= b),
    "print": lambda *a: _print_args(a),
    "printf": _printf,
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
}

# ---------------------------------------------------------------- lexer

_ACTION_RE = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<chr>'(?:[^'\\]|\\.)+')
  | (?P<decl>:=)
  | (?P<assign>=)
  | (?P<num>[-+]?(?:0[xX][0-9a-fA-F_]+|\d[\d_]*(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+))
  | (?P<field>(?:\.[A-Za-z_]\w*)+)
  | (?P<var>\$\w*(?:\.[A-Za-z_]\w*)*)
  | (?P<dot>\.)
  | (?P<ident>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)
  | (?P<lp>\()
  | (?P<rp>\)(?:\.[A-Za-z_]\w*)*)
  | (?P<pipe>\|)
  | (?P<comma>,)
    """,
    re.X,
)


@dataclass
class _Tok:
    kind: str
    text: str


def _lex_action(src: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(src):
        m = _TOKEN_RE.match(src, pos)
        if not m:
            raise TemplateError(f"unexpected {src[pos]!r} in command")
        kind = m.lastgroup or ""
        if kind != "ws":
            toks.append(_Tok(kind, m.group()))
        pos = m.end()
    return toks


# ---------------------------------------------------------------- AST


@dataclass
class _Node:
    pass


@dataclass
class _Text(_Node):
    text: str


@dataclass
class _Arg:
    kind: str  # field, var, dot, lit, ident, pipe
    value: Any = None
    fields: list[str] = field(default_factory=list)


@dataclass
class _Cmd:
    args: list[_Arg]


@dataclass
class _Pipe:
    cmds: list[_Cmd]
    decl: list[str] = field(default_factory=list)
    is_assign: bool = False


@dataclass
class _Action(_Node):
    pipe: _Pipe


@dataclass
class _Block(_Node):
    kind: str  # if, range, with
    pipe: _Pipe
    body: list[_Node]
    else_body: list[_Node] | None = None


@dataclass
class _Ctl(_Node):
    kind: str  # break / continue


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


def _unquote(tok: _Tok) -> Any:
    if tok.kind == "str":
        return json.loads(tok.text) if "\\'" not in tok.text else tok.text[1:-1]
    if tok.kind == "raw":
        return tok.text[1:-1]
    if tok.kind == "chr":
        return ord(tok.text[1:-1].encode().decode("unicode_escape"))
    raise TemplateError("bad literal")


def _number(text: str) -> int | float:
    t = text.replace("_", "")
    try:
        return int(t, 0)
    except ValueError:
        return float(t)


class _Parser:
    def __init__(self, src: str) -> None:
        self.items = self._split(src)
        self.pos = 0

    @staticmethod
    def _split(src: str) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        pos = 0
        trim_next = False
        for m in _ACTION_RE.finditer(src):
            text = src[pos : m.start()]
            if trim_next:
                text = text.lstrip(" \t\r\n")
            if m.group(1):
                text = text.rstrip(" \t\r\n")
            if text:
                out.append(("text", text))
            body = m.group(2).strip()
            if body.startswith("/*"):
                if not body.endswith("*/"):
                    raise TemplateError("unclosed comment")
            else:
                out.append(("action", body))
            trim_next = bool(m.group(3))
            pos = m.end()
        rest = src[pos:]
        if "{{" in rest:
            raise TemplateError("unclosed action")
        if trim_next:
            rest = rest.lstrip(" \t\r\n")
        if rest:
            out.append(("text", rest))
        return out

    def parse(self) -> list[_Node]:
        nodes, end = self._list()
        if end is not None:
            raise TemplateError(f"unexpected {{{{{end}}}}}")
        return nodes

    def _list(self) -> tuple[list[_Node], str | None]:
        nodes: list[_Node] = []
        while self.pos < len(self.items):
            kind, val = self.items[self.pos]
            self.pos += 1
            if kind == "text":
                nodes.append(_Text(val))
                continue
            word = val.split(None, 1)[0] if val else ""
            rest = val[len(word) :].strip()
            if word in ("end", "else"):
                return nodes, val
            if word in ("if", "range", "with"):
                nodes.append(self._block(word, rest))
            elif word in ("break", "continue"):
                nodes.append(_Ctl(word))
            elif word in ("define", "template", "block"):
                raise TemplateError(f"{word} is not supported")
            else:
                if not val:
                    raise TemplateError("missing value for command")
                nodes.append(_Action(self._pipe(val)))
        return nodes, None

    def _block(self, kind: str, rest: str) -> _Block:
        pipe = self._pipe(rest)
        body, end = self._list()
        if end is None:
            raise TemplateError(f"unexpected EOF in {kind}")
        block = _Block(kind, pipe, body)
        if end == "end":
            return block
        else_rest = end[4:].strip()
        if else_rest.startswith(("if ", "with ")):
            sub_kind, sub = else_rest.split(None, 1)
            if sub_kind != kind:
                raise TemplateError(f"else {sub_kind} inside {kind}")
            block.else_body = [self._block(sub_kind, sub)]
            return block
        if else_rest:
            raise TemplateError(f"unexpected {else_rest!r} after else")
        block.else_body, end2 = self._list()
        if end2 != "end":
            raise TemplateError(f"expected end; found {end2}")
        return block

    def _pipe(self, src: str) -> _Pipe:
        toks = _lex_action(src)
        pipe = _Pipe([])
        i = 0
        # declarations: $x := / $x = / $i, $v :=
        j = 0
        names: list[str] = []
        while j < len(toks) and toks[j].kind == "var" and "." not in toks[j].text:
            names.append(toks[j].text)
            j += 1
            if j < len(toks) and toks[j].kind == "comma":
                j += 1
                continue
            break
        if names and j < len(toks) and toks[j].kind in ("decl", "assign"):
            pipe.decl = names
            pipe.is_assign = toks[j].kind == "assign"
            i = j + 1
        cmd_toks: list[list[_Tok]] = [[]]
        depth = 0
        for t in toks[i:]:
            if t.kind == "lp":
                depth += 1
            elif t.kind == "rp":
                depth -= 1
            if t.kind == "pipe" and depth == 0:
                cmd_toks.append([])
            else:
                cmd_toks[-1].append(t)
        for ct in cmd_toks:
            if not ct:
                raise TemplateError("missing command")
            pipe.cmds.append(_Cmd(self._args(ct)))
        return pipe

    def _args(self, toks: list[_Tok]) -> list[_Arg]:
        args: list[_Arg] = []
        k = 0
        while k < len(toks):
            t = toks[k]
            k += 1
            if t.kind == "field":
                args.append(_Arg("field", fields=t.text[1:].split(".")))
            elif t.kind == "var":
                name, *flds = t.text.split(".")
                args.append(_Arg("var", name, flds))
            elif t.kind == "dot":
                args.append(_Arg("dot"))
            elif t.kind in ("str", "raw", "chr"):
                args.append(_Arg("lit", _unquote(t)))
            elif t.kind == "num":
                args.append(_Arg("lit", _number(t.text)))
            elif t.kind == "ident":
                name, *flds = t.text.split(".")
                if name in ("true", "false"):
                    args.append(_Arg("lit", name == "true"))
                elif name == "nil":
                    args.append(_Arg("lit", None))
                elif name in FUNCS:
                    args.append(_Arg("ident", name))
                else:
                    raise TemplateError(f'function "{name}" not defined')
            elif t.kind == "lp":
                depth = 1
                start = k
                while k < len(toks) and depth:
                    if toks[k].kind == "lp":
                        depth += 1
                    elif toks[k].kind == "rp":
                        depth -= 1
                    k += 1
                if depth:
                    raise TemplateError("unclosed left paren")
                close = toks[k - 1].text
                inner = " ".join(x.text for x in toks[start : k - 1])
                flds = close[2:].split(".") if len(close) > 1 else []
                args.append(_Arg("pipe", self._pipe(inner), flds))
            elif t.kind == "rp":
                raise TemplateError("unexpected right paren")
            else:
                raise TemplateError(f"unexpected {t.text!r} in operand")
        return args


# ---------------------------------------------------------------- execution


class _State:
    def __init__(self, root: Any) -> None:
        self.vars: list[tuple[str, Any]] = [("$", root)]
        self.out: list[str] = []

    def lookup(self, name: str) -> Any:
        for n, v in reversed(self.vars):
            if n == name:
                return v
        raise TemplateError(f"undefined variable: {name}")

    def assign(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise TemplateError(f"undefined variable: {name}")


def _field(v: Any, name: str, args: list[Any] | None = None) -> Any:
    if isinstance(v, dict):
        if name in v:
            r = v[name]
        elif isinstance(v, GoMap):
            r = MISSING
        else:
            r = MISSING
    elif v is MISSING or v is None:
        raise TemplateError(f"nil pointer evaluating interface {{}}.{name}")
    else:
        attr = getattr(v, name, MISSING)
        if attr is MISSING:
            raise TemplateError(f"can't evaluate field {name} in type {type(v).__name__}")
        r = attr
    if callable(r) and not isinstance(r, type):
        return r(*(args or []))
    if args:
        raise TemplateError(f"{name} has arguments but cannot be invoked as function")
    return _wrap(r, name)


def _fields(v: Any, names: list[str], args: list[Any] | None = None) -> Any:
    for i, n in enumerate(names):
        v = _field(v, n, args if i == len(names) - 1 else None)
    return v


class _Exec:
    def __init__(self, state: _State) -> None:
        self.s = state

    def nodes(self, nodes: list[_Node], dot: Any) -> None:
        for n in nodes:
            self.node(n, dot)

    def node(self, n: _Node, dot: Any) -> None:
        s = self.s
        if isinstance(n, _Text):
            s.out.append(n.text)
        elif isinstance(n, _Action):
            v = self.pipe(n.pipe, dot)
            if not n.pipe.decl:
                s.out.append(go_str(v))
        elif isinstance(n, _Block):
            mark = len(s.vars)
            try:
                if n.kind == "range":
                    self.range(n, dot)
                else:
                    v = self.pipe(n.pipe, dot)
                    if _truth(v):
                        self.nodes(n.body, v if n.kind == "with" else dot)
                    elif n.else_body is not None:
                        self.nodes(n.else_body, dot)
            finally:
                del s.vars[mark:]
        elif isinstance(n, _Ctl):
            raise _Break() if n.kind == "break" else _Continue()

    def range(self, n: _Block, dot: Any) -> None:
        decl = n.pipe.decl
        n.pipe.decl = []
        try:
            v = self.pipe(n.pipe, dot)
        finally:
            n.pipe.decl = decl
        items: Iterator[tuple[Any, Any]]
        if v is MISSING or v is None:
            items = iter(())
        elif isinstance(v, dict):
            items = ((k, v[k]) for k in sorted(v))
        elif isinstance(v, (list, tuple)):
            items = iter(enumerate(v))
        elif isinstance(v, int) and not isinstance(v, bool):
            items = ((i, i) for i in range(v))
        else:
            raise TemplateError(f"range can't iterate over {go_str(v)}")
        mark = len(self.s.vars)
        ran = False
        for k, item in items:
            ran = True
            del self.s.vars[mark:]
            if len(decl) == 1:
                self.s.vars.append((decl[0], item))
            elif len(decl) == 2:
                self.s.vars.append((decl[0], k))
                self.s.vars.append((decl[1], item))
            try:
                self.nodes(n.body, item)
            except _Continue:
                continue
            except _Break:
                break
        del self.s.vars[mark:]
        if not ran and n.else_body is not None:
            self.nodes(n.else_body, dot)

    def pipe(self, p: _Pipe, dot: Any) -> Any:
        v: Any = MISSING
        first = True
        for cmd in p.cmds:
            v = self.cmd(cmd, dot, None if first else (v,))
            first = False
        if p.decl:
            if p.is_assign:
                self.s.assign(p.decl[0], v)
            else:
                self.s.vars.append((p.decl[-1], v))
        return v

    def arg(self, a: _Arg, dot: Any) -> Any:
        if a.kind == "lit":
            return a.value
        if a.kind == "dot":
            return dot
        if a.kind == "field":
            return _fields(dot, a.fields)
        if a.kind == "var":
            return _fields(self.s.lookup(a.value), a.fields)
        if a.kind == "pipe":
            return _fields(self.pipe(a.value, dot), a.fields)
        if a.kind == "ident":
            return FUNCS[a.value]()
        raise TemplateError("bad operand")

    def cmd(self, c: _Cmd, dot: Any, piped: tuple[Any, ...] | None) -> Any:
        head = c.args[0]
        rest = [self.arg(a, dot) for a in c.args[1:]]
        if piped is not None:
            rest.append(piped[0])
        if head.kind == "ident":
            fn = FUNCS[head.value]
            if head.value in ("and", "or"):
                return fn(*rest)
            try:
                return fn(*rest)
            except TemplateError:
                raise
            except TypeError as e:
                raise TemplateError(f"wrong number of args for {head.value}: {e}") from None
            except (AttributeError, ValueError) as e:
                raise TemplateError(f"error calling {head.value}: {e}") from None
        if rest:
            if head.kind == "field":
                return _fields(dot, head.fields, rest)
            if head.kind == "var" and head.fields:
                return _fields(self.s.lookup(head.value), head.fields, rest)
            raise TemplateError(
                f"can't give argument to non-function {go_str(self.arg(head, dot))}"
            )
        return self.arg(head, dot)


class Template:
    """A parsed template; ``execute(data)`` returns the rendered text."""

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self.nodes = _Parser(source).parse()
        except TemplateError as e:
            raise TemplateError(f"template: :1: {e}") from None

    def execute(self, data: Any) -> str:
        state = _State(data)
        try:
            _Exec(state).nodes(self.nodes, data)
        except (_Break, _Continue):
            raise TemplateError("template: :1: break or continue outside range") from None
        except TemplateError as e:
            raise TemplateError(f"template: :1: executing: {e}") from None
        return "".join(state.out)


def render(source: str, data: Any) -> str:
    """Parse and execute ``source`` against ``data``."""
    return Template(source).execute(data)
