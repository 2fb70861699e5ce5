"""``python -m tether``: the tether CLI.

``python -m tether daemon ...`` (how ``tether lab`` and the bench start daemons) is parsed
here by hand when it uses only the daemon's own options, so the daemon never imports click
(~1 MB of resident memory and ~20 ms of start for a process that lives for days). Anything
else — ``--help``, an unknown or malformed option — goes to the click command in
:mod:`tether.daemon_cli`, which keeps its texts; :func:`daemon_kwargs` gives the same
arguments as that command (a unit test holds the two together).
"""

from __future__ import annotations

import sys

# typing is not imported at run time; mypy reads the names below.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from tether.cli.fast import Spec

# destination -> (spellings, default); None default with a flag means False
DAEMON_OPTIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "host": (("-H", "--host"), "unix:///run/tether/tether.sock"),
    "data_root": (("--data-root",), "/var/lib/tether"),
    "exec_root": (("--exec-root",), "/run/tether"),
    "config_file": (("--config-file",), "/etc/tether/daemon.json"),
    "cluster_store": (("--cluster-store",), None),
    "cluster_advertise": (("--cluster-advertise",), None),
    "web_addr": (("--web-addr", "--metrics-addr"), None),
    "host_gateway_ip": (("--host-gateway-ip",), None),
}


def daemon_kwargs(argv: list[str]) -> dict[str, Any] | None:
    """``run_daemon``'s arguments from the words after ``daemon``, or None: let click parse."""
    from tether.cli.fast import FLAG, VALUE, Fallback, parse_options

    spec: Spec = {"-D": ("debug", FLAG), "--debug": ("debug", FLAG)}
    for dest, (names, _) in DAEMON_OPTIONS.items():
        spec.update({name: (dest, VALUE) for name in names})
    try:
        values, positional = parse_options(argv, spec)
    except Fallback:
        return None
    if positional:
        return None
    # --cluster-store-opt (repeatable) is not in the spec: a daemon given one is parsed by click
    out: dict[str, Any] = {"debug": bool(values.get("debug", False)), "cluster_store_opts": ()}
    for dest, (_, default) in DAEMON_OPTIONS.items():
        got = values.get(dest)
        out[dest] = got if isinstance(got, str) else default
    return out


def asyncio_without_ssl() -> None:
    """Import asyncio with ``import ssl`` failing for it (it then runs without TLS support),
    then make ``ssl`` a deferred module for everyone else (loaded at the first use of a name
    in it: :func:`tether.linux.lazypkg.deferred_module`). The daemon serves a unix socket
    and never speaks TLS through asyncio (etcd's TLS is grpc's own), and ``ssl`` is ~4 MB
    of resident memory (issue 20). ``TETHER_LOOP=uvloop`` (measurement only) loads it."""
    if "asyncio" in sys.modules or "ssl" in sys.modules:
        return
    sys.modules["ssl"] = None  # type: ignore[assignment]
    try:
        import asyncio  # noqa: F401
    finally:
        del sys.modules["ssl"]
    from tether.linux.lazypkg import deferred_module

    deferred_module("ssl")


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["daemon"]:
        asyncio_without_ssl()
        kwargs = daemon_kwargs(argv[1:])
        if kwargs is not None:
            from tether.daemon import run_daemon

            run_daemon(**kwargs)
            sys.exit(0)
    from tether.cli.main import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
