"""Parse the Dockerfile-like ``changes`` of ``docker import -c`` / ``docker commit -c``.

Supported instructions (as Docker's import): CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL,
USER, VOLUME, WORKDIR, STOPSIGNAL, ONBUILD. JSON ("exec") and shell forms are accepted.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Iterable
from typing import Any

from tether.errors import BadRequest

ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD", "STOPSIGNAL",
           "USER", "VOLUME", "WORKDIR")  # fmt: skip

_PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?$", re.IGNORECASE)


def apply_changes(changes: Iterable[str], config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return a copy of the image ``config`` (Docker's "Config" object) with ``changes`` applied.

    Raises ``BadRequest`` for an unknown instruction or a malformed argument.
    """
    cfg: dict[str, Any] = json.loads(json.dumps(config or {}))
    for change in changes:
        # ``docker import -c`` may pass several instructions in one string, one per line.
        for line in _logical_lines(change):
            _apply_one(cfg, line)
    return cfg


def _logical_lines(text: str) -> list[str]:
    joined = re.sub(r"\\\r?\n", " ", text)
    return [
        ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]


def _apply_one(cfg: dict[str, Any], line: str) -> None:
    parts = line.split(None, 1)
    instr = parts[0].upper()
    rest = parts[1].strip() if len(parts) > 1 else ""
    if instr not in ALLOWED:
        raise BadRequest(f"{parts[0].lower()} is not a valid change command")
    if not rest:
        raise BadRequest(f"{instr} requires at least one argument")
    if instr in ("CMD", "ENTRYPOINT"):
        key = "Cmd" if instr == "CMD" else "Entrypoint"
        cfg[key] = _exec_or_shell(rest, cfg)
    elif instr == "ENV":
        env: list[str] = list(cfg.get("Env") or [])
        for key, value in _pairs(rest, "ENV"):
            env = [e for e in env if e.split("=", 1)[0] != key]
            env.append(f"{key}={value}")
        cfg["Env"] = env
    elif instr == "LABEL":
        labels: dict[str, str] = dict(cfg.get("Labels") or {})
        for key, value in _pairs(rest, "LABEL"):
            labels[key] = value
        cfg["Labels"] = labels
    elif instr == "EXPOSE":
        ports: dict[str, dict[str, Any]] = dict(cfg.get("ExposedPorts") or {})
        for word in _words(rest):
            ports.update({p: {} for p in parse_port_spec(word)})
        cfg["ExposedPorts"] = ports
    elif instr == "WORKDIR":
        value = _unquote(rest)
        base = cfg.get("WorkingDir") or "/"
        cfg["WorkingDir"] = posixpath.normpath(posixpath.join(base, value))
    elif instr == "USER":
        cfg["User"] = _unquote(rest)
    elif instr == "STOPSIGNAL":
        cfg["StopSignal"] = _unquote(rest)
    elif instr == "VOLUME":
        vols: dict[str, dict[str, Any]] = dict(cfg.get("Volumes") or {})
        paths = _json_list(rest)
        for path in paths if paths is not None else _words(rest):
            vols[path] = {}
        cfg["Volumes"] = vols
    elif instr == "ONBUILD":
        cfg["OnBuild"] = [*list(cfg.get("OnBuild") or []), rest]
    elif instr == "HEALTHCHECK":
        cfg["Healthcheck"] = parse_healthcheck(rest)


# ---- HEALTHCHECK (Docker's parseHealthcheck: flags, then NONE or CMD) -------------------------
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
            "h": 3600 * 10**9}  # fmt: skip
_HC_FLAGS = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod"}


def go_duration_ns(text: str) -> int:
    """Go's time.ParseDuration (``30s``, ``1m30s``, ``1.5h``, ``500ms``) in nanoseconds."""
    sign, body = (-1, text[1:]) if text.startswith("-") else (1, text.lstrip("+"))
    if body == "0":
        return 0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(body):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if not body or pos != len(body):
        raise BadRequest(f"time: invalid duration {json.dumps(text)}")
    return sign * int(total)


def parse_healthcheck(rest: str) -> dict[str, Any]:
    """``[--interval=D] [--timeout=D] [--start-period=D] [--retries=N] CMD ...`` or ``NONE``."""
    hc: dict[str, Any] = {}
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        rest = rest.strip()
        name, eq, value = flag[2:].partition("=")
        if not eq:
            raise BadRequest(f"Unknown flag: {name}")
        if name == "retries":
            retries = int(value) if re.fullmatch(r"-?\d+", value) else None
            if retries is None:
                raise BadRequest(f'strconv.ParseInt: parsing "{value}": invalid syntax')
            if retries < 0:
                raise BadRequest(f"--retries cannot be negative ({retries})")
            hc["Retries"] = retries
        elif name in _HC_FLAGS:
            d = go_duration_ns(value)
            if d != 0 and d < 10**6:
                raise BadRequest(f'Interval "{name}" cannot be less than 1ms')
            hc[_HC_FLAGS[name]] = d
        else:
            raise BadRequest(f"Unknown flag: {name}")
    kind, _, args = rest.partition(" ")
    args = args.strip()
    if kind.upper() == "NONE":
        if args:
            raise BadRequest("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if kind.upper() != "CMD":
        raise BadRequest(f'Unknown type "{kind.upper()}" in HEALTHCHECK (try CMD)')
    if not args:
        raise BadRequest("Missing command after HEALTHCHECK CMD")
    exec_form = _json_list(args)
    test = ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", args]
    return {"Test": test, **{k: v for k, v in hc.items() if v}}


def parse_port_spec(word: str) -> list[str]:
    """ "80" -> ["80/tcp"]; "53/udp"; "8000-8002" -> three ports."""
    m = _PORT.match(word)
    if not m:
        raise BadRequest(f"Invalid containerPort: {word}")
    start = int(m.group(1))
    end = int(m.group(2) or start)
    proto = (m.group(3) or "tcp").lower()
    if not 0 < start <= end <= 65535:
        raise BadRequest(f"Invalid containerPort: {word}")
    return [f"{p}/{proto}" for p in range(start, end + 1)]


def _json_list(text: str) -> list[str] | None:
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _exec_or_shell(text: str, cfg: dict[str, Any]) -> list[str]:
    exec_form = _json_list(text)
    if exec_form is not None:
        return exec_form
    shell = cfg.get("Shell") or ["/bin/sh", "-c"]
    return [*shell, text]


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise BadRequest(f"failed to parse {text!r}: {exc}") from None


def _unquote(text: str) -> str:
    words = _words(text)
    return " ".join(words) if words else ""


def _pairs(text: str, instr: str) -> list[tuple[str, str]]:
    words = _words(text)
    if not words:
        raise BadRequest(f"{instr} requires at least one argument")
    if "=" not in words[0]:
        # Legacy form: ``ENV KEY value with spaces``.
        key, _, value = text.partition(" ")
        value = value.strip()
        if not value:
            raise BadRequest(f"{instr} names can not be blank" if not key else
                             f"{instr} must have two arguments")  # fmt: skip
        return [(key, _unquote(value) if value[:1] in "\"'" else value)]
    out: list[tuple[str, str]] = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise BadRequest(
                f"Syntax error - can't find = in {word!r}. Must be of the form: name=value"
            )
        out.append((key, value))
    return out
