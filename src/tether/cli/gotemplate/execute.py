"""Execution: walking parsed nodes against the data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tether.cli.gotemplate.funcs import FUNCS
from tether.cli.gotemplate.parse import Action, Arg, Block, Cmd, Ctl, Node, Pipe, Text
from tether.cli.gotemplate.values import MISSING, GoMap, TemplateError, go_str, truth, wrap


class Break(Exception):
    pass


class Continue(Exception):
    pass


class State:
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
    return wrap(r, name)


def _fields(v: Any, names: list[str], args: list[Any] | None = None) -> Any:
    for i, n in enumerate(names):
        v = _field(v, n, args if i == len(names) - 1 else None)
    return v


class Exec:
    def __init__(self, state: State) -> None:
        self.s = state

    def nodes(self, nodes: list[Node], dot: Any) -> None:
        for n in nodes:
            self.node(n, dot)

    def node(self, n: Node, dot: Any) -> None:
        s = self.s
        if isinstance(n, Text):
            s.out.append(n.text)
        elif isinstance(n, Action):
            v = self.pipe(n.pipe, dot)
            if not n.pipe.decl:
                s.out.append(go_str(v))
        elif isinstance(n, Block):
            mark = len(s.vars)
            try:
                if n.kind == "range":
                    self.range(n, dot)
                else:
                    v = self.pipe(n.pipe, dot)
                    if truth(v):
                        self.nodes(n.body, v if n.kind == "with" else dot)
                    elif n.else_body is not None:
                        self.nodes(n.else_body, dot)
            finally:
                del s.vars[mark:]
        elif isinstance(n, Ctl):
            raise Break() if n.kind == "break" else Continue()

    def range(self, n: Block, dot: Any) -> None:
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
            except Continue:
                continue
            except Break:
                break
        del self.s.vars[mark:]
        if not ran and n.else_body is not None:
            self.nodes(n.else_body, dot)

    def pipe(self, p: Pipe, dot: Any) -> Any:
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

    def arg(self, a: Arg, dot: Any) -> Any:
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

    def cmd(self, c: Cmd, dot: Any, piped: tuple[Any, ...] | None) -> Any:
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
