"""The fast path: the hottest verbs without importing click.

``import click`` is ~30 ms, a third of a whole ``tether network ls``. :func:`run` parses
argv by hand for ``network ls|list``, ``network inspect``, ``ps`` (and ``container
ls|list|ps``), ``images`` (and ``image ls|list``) and ``version``, with only the flags
those verbs take, and prints through :mod:`tether.cli.views`, the same functions the click
commands call. It also takes the write verbs a script runs most: ``network create`` (every
flag), ``network rm|remove``, ``rm`` (``container rm``) and ``run -d`` (``container run
-d``) with every run flag but ``-i``, ``-t``, ``-a``, ``--cidfile``, ``--env-file`` and
``--sig-proxy``; their bodies come from :mod:`tether.cli.netbody` and
:mod:`tether.cli.runbody` and their requests, output and exit codes from
:mod:`tether.cli.actions`, the same code the click commands run. It answers ``None`` —
"let click do it" — for everything else: another verb, ``run`` without ``-d``,
``--help``, ``--``, an unknown flag, a missing value, a bad number or filter, a wrong
count of arguments. So usage errors and help keep click's exact texts, and the fast path
never has to imitate them. It decides before sending anything to the daemon.

The flag grammar is click's: ``-x VALUE``, ``-xVALUE``, ``--long VALUE``,
``--long=VALUE``, bundled short flags (``-aq``, ``-qf VALUE``), options anywhere among
the arguments (for ``run``, only before the image: what follows is the command, as
click's ``allow_interspersed_args=False``), the last value winning for a single-valued
option.
"""

from __future__ import annotations

import sys

# typing is not imported at run time (~2.5 ms of start-up); mypy reads the names below.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from tether.client import Client

    Values = dict[str, "bool | str | int | list[str]"]

# option kinds
FLAG, VALUE, MULTI, INT = "flag", "value", "multi", "int"

Spec = dict[str, tuple[str, str]]  # spelling -> (destination, kind)


def _spec(*entries: tuple[tuple[str, ...], str, str]) -> Spec:
    return {spelling: (dest, kind) for names, dest, kind in entries for spelling in names}


_FORMAT = (("--format",), "fmt", VALUE)
_FILTER = (("-f", "--filter"), "filters", MULTI)
_NO_TRUNC = (("--no-trunc",), "no_trunc", FLAG)
_QUIET = (("-q", "--quiet"), "quiet", FLAG)
_ALL = (("-a", "--all"), "all_", FLAG)

NETWORK_LS = _spec(_FILTER, _FORMAT, _NO_TRUNC, _QUIET)
NETWORK_INSPECT = _spec((("-f", "--format"), "fmt", VALUE), (("-v", "--verbose"), "verbose", FLAG))
PS = _spec(
    _ALL,
    _FILTER,
    _FORMAT,
    (("-n", "--last"), "last", INT),
    (("-l", "--latest"), "latest", FLAG),
    _NO_TRUNC,
    _QUIET,
    (("-s", "--size"), "size", FLAG),
)
IMAGES = _spec(_ALL, _FILTER, _FORMAT, _NO_TRUNC, _QUIET)
VERSION = _spec((("-f", "--format"), "fmt", VALUE))

DEFAULTS: Values = {
    "fmt": "",
    "filters": [],
    "no_trunc": False,
    "quiet": False,
    "all_": False,
    "verbose": False,
    "last": -1,
    "latest": False,
    "size": False,
}


def _defaults(spec: Spec, values: Values) -> Values:
    """``values`` plus False for each flag and [] for each repeatable option of ``spec``."""
    out: Values = {}
    for dest, kind in spec.values():
        if kind == FLAG:
            out[dest] = False
        elif kind == MULTI:
            out[dest] = []
    return {**out, **values}


NETWORK_CREATE = _spec(
    (("--attachable",), "attachable", FLAG),
    (("--aux-address",), "aux_address", MULTI),
    (("--config-from",), "config_from", VALUE),
    (("--config-only",), "config_only", FLAG),
    (("-d", "--driver"), "driver", VALUE),
    (("--gateway",), "gateway", MULTI),
    (("--ingress",), "ingress", FLAG),
    (("--internal",), "internal", FLAG),
    (("--ip-range",), "ip_range", MULTI),
    (("--ipam-driver",), "ipam_driver", VALUE),
    (("--ipam-opt",), "ipam_opt", MULTI),
    (("--ipv6",), "ipv6", FLAG),
    (("--label",), "label", MULTI),
    (("-o", "--opt"), "opt", MULTI),
    (("--scope",), "scope", VALUE),
    (("--subnet",), "subnet", MULTI),
)
NETWORK_CREATE_DEFAULTS = _defaults(
    NETWORK_CREATE, {"config_from": "", "driver": "bridge", "ipam_driver": "default", "scope": ""}
)
NETWORK_RM = _spec((("-f", "--force"), "force", FLAG))
NETWORK_RM_DEFAULTS = _defaults(NETWORK_RM, {})
RM = _spec(
    (("-f", "--force"), "force", FLAG),
    (("-l", "--link"), "link", FLAG),
    (("-v", "--volumes"), "volumes", FLAG),
)
RM_DEFAULTS = _defaults(RM, {})
# run's flags but -i, -t, -a, --cidfile, --env-file and --sig-proxy; destinations are the
# attributes of tether.cli.runbody.RunOptions (a value not given keeps its default there)
RUN = _spec(
    (("-d", "--detach"), "detach", FLAG),
    (("--add-host",), "add_host", MULTI),
    (("--cap-add",), "cap_add", MULTI),
    (("--cap-drop",), "cap_drop", MULTI),
    (("--dns",), "dns", MULTI),
    (("--dns-option",), "dns_option", MULTI),
    (("--dns-search",), "dns_search", MULTI),
    (("--domainname",), "domainname", VALUE),
    (("--entrypoint",), "entrypoint", VALUE),
    (("-e", "--env"), "env", MULTI),
    (("--expose",), "expose", MULTI),
    (("-h", "--hostname"), "hostname", VALUE),
    (("--init",), "init", FLAG),
    (("--ip",), "ip", VALUE),
    (("--ip6",), "ip6", VALUE),
    (("-l", "--label"), "label", MULTI),
    (("--link",), "link", MULTI),
    (("--mac-address",), "mac_address", VALUE),
    (("--name",), "name", VALUE),
    (("--network", "--net"), "network", VALUE),
    (("--network-alias", "--net-alias"), "network_alias", MULTI),
    (("--platform",), "platform", VALUE),
    (("--privileged",), "privileged", FLAG),
    (("-p", "--publish"), "publish", MULTI),
    (("-P", "--publish-all"), "publish_all", FLAG),
    (("--read-only",), "read_only", FLAG),
    (("--restart",), "restart", VALUE),
    (("--rm",), "rm", FLAG),
    (("--stop-signal",), "stop_signal", VALUE),
    (("--stop-timeout",), "stop_timeout", INT),
    (("--sysctl",), "sysctl", MULTI),
    (("-u", "--user"), "user", VALUE),
    (("-w", "--workdir"), "workdir", VALUE),
)
RUN_DEFAULTS = _defaults(RUN, {})


class Fallback(Exception):
    """Not a case for the fast path: hand argv to click."""


def parse_options(
    args: list[str], spec: Spec, defaults: Values | None = None, interspersed: bool = True
) -> tuple[Values, list[str]]:
    """Options and positional arguments of one verb, or :class:`Fallback`. Without
    ``interspersed``, the first positional argument ends the options."""
    base = DEFAULTS if defaults is None else defaults
    values: Values = {k: list(v) if isinstance(v, list) else v for k, v in base.items()}
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--" or arg == "-" or arg == "--help":
            raise Fallback
        if arg.startswith("--"):
            i = _long_option(arg, args, i, spec, values)
        elif arg.startswith("-"):
            i = _short_options(arg, args, i, spec, values)
        else:
            positional.append(arg)
            if not interspersed:
                rest = args[i:]
                if "--" in rest or "--help" in rest:
                    raise Fallback
                positional.extend(rest)
                break
    return values, positional


def _long_option(arg: str, args: list[str], i: int, spec: Spec, values: Values) -> int:
    """Store ``--name[=value]`` (its value may be ``args[i]``); the index after it."""
    name, eq, inline = arg.partition("=")
    if name not in spec:
        raise Fallback
    if spec[name][1] == FLAG:
        if eq:
            raise Fallback
        _store(spec, values, name, None)
        return i
    if eq:
        _store(spec, values, name, inline)
    else:
        _store(spec, values, name, args[i] if i < len(args) else None)
        i += 1
    return i


def _short_options(arg: str, args: list[str], i: int, spec: Spec, values: Values) -> int:
    """Store ``-abc`` / ``-nVALUE`` / ``-n VALUE`` (from ``args[i]``); the index after it."""
    for j in range(1, len(arg)):
        name = "-" + arg[j]
        if name not in spec:
            raise Fallback
        if spec[name][1] == FLAG:
            _store(spec, values, name, None)
            continue
        rest = arg[j + 1 :]
        if rest:
            _store(spec, values, name, rest)
        else:
            _store(spec, values, name, args[i] if i < len(args) else None)
            i += 1
        break
    return i


def _store(spec: Spec, values: Values, spelling: str, value: str | None) -> None:
    dest, kind = spec[spelling]
    if kind == FLAG:
        values[dest] = True
    elif value is None:
        raise Fallback
    elif kind == MULTI:
        lst = values[dest]
        assert isinstance(lst, list)
        lst.append(value)
    elif kind == INT:
        try:
            values[dest] = int(value)
        except ValueError:
            raise Fallback from None
    else:
        values[dest] = value


def _network_ls(c: Client, v: Values, args: list[str]) -> int:
    from tether.cli import views

    out = views.list_networks(c, _filters(v), _s(v["fmt"]), _b(v["quiet"]), _b(v["no_trunc"]))
    _emit(out)
    return 0


def _network_inspect(c: Client, v: Values, args: list[str]) -> int:
    from tether.cli import views
    from tether.cli.text import fail

    items, errors = views.inspect_networks(c, args, _s(v["fmt"]), _b(v["verbose"]))
    _emit(views.inspect_text(items, _s(v["fmt"])))
    if errors:
        fail("\n".join(errors))
    return 0


def _ps(c: Client, v: Values, args: list[str]) -> int:
    from tether.cli import views

    last = v["last"]
    assert isinstance(last, int)
    out = views.list_containers(
        c,
        _b(v["all_"]),
        _filters(v),
        _s(v["fmt"]),
        last,
        _b(v["latest"]),
        _b(v["no_trunc"]),
        _b(v["quiet"]),
        _b(v["size"]),
    )
    _emit(out)
    return 0


def _images(c: Client, v: Values, args: list[str]) -> int:
    from tether.cli import views

    flt = _filters(v, views.image_filters(_l(v["filters"]), args[0] if args else None))
    out = views.list_images(c, _b(v["all_"]), flt, _s(v["fmt"]), _b(v["no_trunc"]), _b(v["quiet"]))
    _emit(out)
    return 0


def _version(c: Client, v: Values, args: list[str]) -> int:
    from tether.cli import views
    from tether.cli.text import fail

    out, err = views.version_text(c, _s(v["fmt"]))
    _emit(out)
    if err is not None:
        fail(err)
    return 0


def _network_create(c: Client, v: Values, args: list[str]) -> int:
    from tether.cli import actions, netbody

    body = netbody.body_from_flags(
        args[0],
        attachable=_b(v["attachable"]),
        aux_address=_l(v["aux_address"]),
        config_from=_s(v["config_from"]),
        config_only=_b(v["config_only"]),
        driver=_s(v["driver"]),
        gateway=_l(v["gateway"]),
        ingress=_b(v["ingress"]),
        internal=_b(v["internal"]),
        ip_range=_l(v["ip_range"]),
        ipam_driver=_s(v["ipam_driver"]),
        ipam_opt=_l(v["ipam_opt"]),
        ipv6=_b(v["ipv6"]),
        label=_l(v["label"]),
        opt=_l(v["opt"]),
        scope=_s(v["scope"]),
        subnet=_l(v["subnet"]),
    )
    actions.create_network(c, body)
    return 0


def _network_rm(c: Client, v: Values, args: list[str]) -> int:
    from tether.cli import actions

    actions.remove_networks(c, args, _b(v["force"]))
    return 0


def _rm(c: Client, v: Values, args: list[str]) -> int:
    from tether.cli import actions

    actions.remove_containers(c, args, _b(v["force"]), _b(v["link"]), _b(v["volumes"]))
    return 0


def _run_detached(c: Client, v: Values, args: list[str]) -> int:
    from tether.cli import actions
    from tether.cli.runbody import RunOptions
    from tether.cli.text import UsageFailure
    from tether.client import APIError, ConnectionFailed

    o = RunOptions(args[0], args[1:])
    for dest, value in v.items():
        setattr(o, dest, list(value) if isinstance(value, list) else value)
    try:
        actions.run_detached(c, o)
    except (APIError, ConnectionFailed, UsageFailure) as e:
        actions.run_fail(e)
    return 0


def _detached(v: Values) -> bool:
    return v.get("detach") is True


class Verb:
    """How the fast path runs one verb."""

    __slots__ = ("defaults", "handler", "interspersed", "least", "most", "spec", "taken")

    def __init__(
        self,
        spec: Spec,
        least: int,
        most: int,
        handler: Callable[[Client, Values, list[str]], int],
        defaults: Values | None = None,
        interspersed: bool = True,
        taken: Callable[[Values], bool] | None = None,
    ) -> None:
        self.spec = spec
        self.least = least
        self.most = most
        self.handler = handler
        self.defaults = defaults
        self.interspersed = interspersed
        self.taken = taken  # None: every parse is the fast path's; else whether this one is


_NETWORK_CREATE = Verb(NETWORK_CREATE, 1, 1, _network_create, NETWORK_CREATE_DEFAULTS)
_NETWORK_RM = Verb(NETWORK_RM, 1, sys.maxsize, _network_rm, NETWORK_RM_DEFAULTS)
_RM = Verb(RM, 1, sys.maxsize, _rm, RM_DEFAULTS)
_RUN = Verb(RUN, 1, sys.maxsize, _run_detached, RUN_DEFAULTS, False, _detached)

# verb words -> how to run it
VERBS: dict[tuple[str, ...], Verb] = {
    ("network", "create"): _NETWORK_CREATE,
    ("network", "rm"): _NETWORK_RM,
    ("network", "remove"): _NETWORK_RM,
    ("rm",): _RM,
    ("container", "rm"): _RM,
    ("run",): _RUN,
    ("container", "run"): _RUN,
    ("network", "ls"): Verb(NETWORK_LS, 0, 0, _network_ls),
    ("network", "list"): Verb(NETWORK_LS, 0, 0, _network_ls),
    ("network", "inspect"): Verb(NETWORK_INSPECT, 1, sys.maxsize, _network_inspect),
    ("ps",): Verb(PS, 0, 0, _ps),
    ("container", "ls"): Verb(PS, 0, 0, _ps),
    ("container", "list"): Verb(PS, 0, 0, _ps),
    ("container", "ps"): Verb(PS, 0, 0, _ps),
    ("images",): Verb(IMAGES, 0, 1, _images),
    ("image", "ls"): Verb(IMAGES, 0, 1, _images),
    ("image", "list"): Verb(IMAGES, 0, 1, _images),
    ("version",): Verb(VERSION, 0, 0, _version),
}
GROUPS = frozenset(words[0] for words in VERBS if len(words) == 2)


def _s(v: object) -> str:
    assert isinstance(v, str)
    return v


def _b(v: object) -> bool:
    assert isinstance(v, bool)
    return v


def _l(v: object) -> list[str]:
    assert isinstance(v, list)
    return v


def _filters(v: Values, values: list[str] | None = None) -> str | None:
    from tether.cli.text import BadFilter, filters_query

    try:
        return filters_query(_l(v["filters"]) if values is None else values)
    except BadFilter:
        raise Fallback from None


def _emit(text: str) -> None:
    from tether.cli.text import emit

    emit(text)


def split_global(argv: list[str]) -> tuple[str | None, tuple[str, ...], list[str]]:
    """(``-H`` value, verb words, the verb's arguments), or :class:`Fallback`."""
    host: str | None = None
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        arg = argv[i]
        if arg in ("-H", "--host"):
            if i + 1 >= len(argv):
                raise Fallback
            host = argv[i + 1]
            i += 2
        elif arg.startswith("--host="):
            host = arg[len("--host=") :]
            i += 1
        elif arg.startswith("-H") and len(arg) > 2:
            host = arg[2:]
            i += 1
        else:
            raise Fallback
    if i >= len(argv):
        raise Fallback
    n = 2 if argv[i] in GROUPS else 1
    words = tuple(argv[i : i + n])
    if words not in VERBS:
        raise Fallback
    return host, words, argv[i + n :]


def run(argv: list[str]) -> int | None:
    """Run argv on the fast path and return the exit code, or ``None`` to use click."""
    try:
        host, words, rest = split_global(argv)
        verb = VERBS[words]
        values, positional = parse_options(rest, verb.spec, verb.defaults, verb.interspersed)
        if not verb.least <= len(positional) <= verb.most:
            raise Fallback
        if verb.taken is not None and not verb.taken(values):
            raise Fallback
        if verb.defaults is None:
            _filters(values)  # a bad -f is click's usage error
        from tether.client import Client, host_from_env

        try:
            c = Client(host_from_env(host))
        except ValueError:
            raise Fallback from None
    except Fallback:
        return None
    from tether.cli.text import UsageFailure
    from tether.client import APIError, ConnectionFailed

    try:
        try:
            return verb.handler(c, values, positional)
        except (APIError, ConnectionFailed, UsageFailure) as e:
            from tether.cli.text import fail

            fail(str(e))
    except SystemExit as e:
        if e.code is None:
            return 0
        return e.code if isinstance(e.code, int) else 1
    except BrokenPipeError:
        # like click: stop writing to the closed pipe, say nothing, exit 1
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
