"""Lexer and parser: template source to a list of nodes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from tether.cli.gotemplate.funcs import FUNCS
from tether.cli.gotemplate.values import TemplateError

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
class Node:
    pass


@dataclass
class Text(Node):
    text: str


@dataclass
class Arg:
    kind: str  # field, var, dot, lit, ident, pipe
    value: Any = None
    fields: list[str] = field(default_factory=list)


@dataclass
class Cmd:
    args: list[Arg]


@dataclass
class Pipe:
    cmds: list[Cmd]
    decl: list[str] = field(default_factory=list)
    is_assign: bool = False


@dataclass
class Action(Node):
    pipe: Pipe


@dataclass
class Block(Node):
    kind: str  # if, range, with
    pipe: Pipe
    body: list[Node]
    else_body: list[Node] | None = None


@dataclass
class Ctl(Node):
    kind: str  # break / continue


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


class Parser:
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

    def parse(self) -> list[Node]:
        nodes, end = self._list()
        if end is not None:
            raise TemplateError(f"unexpected {{{{{end}}}}}")
        return nodes

    def _list(self) -> tuple[list[Node], str | None]:
        nodes: list[Node] = []
        while self.pos < len(self.items):
            kind, val = self.items[self.pos]
            self.pos += 1
            if kind == "text":
                nodes.append(Text(val))
                continue
            word = val.split(None, 1)[0] if val else ""
            rest = val[len(word) :].strip()
            if word in ("end", "else"):
                return nodes, val
            if word in ("if", "range", "with"):
                nodes.append(self._block(word, rest))
            elif word in ("break", "continue"):
                nodes.append(Ctl(word))
            elif word in ("define", "template", "block"):
                raise TemplateError(f"{word} is not supported")
            else:
                if not val:
                    raise TemplateError("missing value for command")
                nodes.append(Action(self._pipe(val)))
        return nodes, None

    def _block(self, kind: str, rest: str) -> Block:
        pipe = self._pipe(rest)
        body, end = self._list()
        if end is None:
            raise TemplateError(f"unexpected EOF in {kind}")
        block = Block(kind, pipe, body)
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

    def _pipe(self, src: str) -> Pipe:
        toks = _lex_action(src)
        pipe = Pipe([])
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
            pipe.cmds.append(Cmd(self._args(ct)))
        return pipe

    def _args(self, toks: list[_Tok]) -> list[Arg]:
        args: list[Arg] = []
        k = 0
        while k < len(toks):
            t = toks[k]
            k += 1
            if t.kind == "field":
                args.append(Arg("field", fields=t.text[1:].split(".")))
            elif t.kind == "var":
                name, *flds = t.text.split(".")
                args.append(Arg("var", name, flds))
            elif t.kind == "dot":
                args.append(Arg("dot"))
            elif t.kind in ("str", "raw", "chr"):
                args.append(Arg("lit", _unquote(t)))
            elif t.kind == "num":
                args.append(Arg("lit", _number(t.text)))
            elif t.kind == "ident":
                name, *flds = t.text.split(".")
                if name in ("true", "false"):
                    args.append(Arg("lit", name == "true"))
                elif name == "nil":
                    args.append(Arg("lit", None))
                elif name in FUNCS:
                    args.append(Arg("ident", name))
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
                args.append(Arg("pipe", self._pipe(inner), flds))
            elif t.kind == "rp":
                raise TemplateError("unexpected right paren")
            else:
                raise TemplateError(f"unexpected {t.text!r} in operand")
        return args
