"""``HostConfig.LogConfig``: the ``json-file`` driver's options, checked and applied.

Tether's log writer is conmon (its ``k8s-file`` log, read back as Docker's ``json-file``).
Applied: ``max-size`` (conmon's ``--log-size-max``: past it the file starts again empty,
which is Docker's rotation with ``max-file`` 1), ``max-file`` 1 (or any count while no
``max-size`` is set: nothing rotates then), ``compress`` false, ``mode`` blocking. Refused
with a 400 naming them: ``max-file`` above 1 with a ``max-size`` (conmon keeps no rotated
files), ``mode=non-blocking``, and the options that only add attributes to each log entry
(``labels``, ``labels-regex``, ``env``, ``env-regex``, ``tag``). Docker's own texts for the
rest: an unknown option, a bad size, count or flag.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tether.errors import BadRequest

OPTIONS = ("max-file", "max-size", "compress", "labels", "labels-regex", "env", "env-regex", "tag")
REFUSED = ("labels", "labels-regex", "env", "env-regex", "tag")
_SIZE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def human_size(text: str) -> int:
    """Docker's units.FromHumanSize (decimal: ``10m`` is 10,000,000 bytes)."""
    m = _SIZE.match(text)
    if m is None:
        raise BadRequest(f"invalid size: '{text}'")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])


def _atoi(text: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", text):
        raise BadRequest(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def _bool(text: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadRequest(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def _mode(cfg: Mapping[str, Any]) -> None:
    """Docker's ValidateLogOpts: the log mode and its buffer size."""
    mode = cfg.get("mode") or ""
    if mode not in ("", "blocking", "non-blocking"):
        raise BadRequest(f'logger: logger log mode not recognized: "{mode}"')
    if cfg.get("max-buffer-size") and mode != "non-blocking":
        raise BadRequest(
            "logger: max-buffer-size option is only supported with 'mode=non-blocking'"
        )
    if mode == "non-blocking":
        raise BadRequest("tether does not support HostConfig.LogConfig.Config.mode non-blocking")


def check(cfg: Mapping[str, Any]) -> None:
    """A ``json-file`` LogConfig.Config: Docker's checks, then the options tether refuses."""
    _mode(cfg)
    for key in cfg:
        if key not in (*OPTIONS, "mode", "max-buffer-size"):
            raise BadRequest(f"unknown log opt '{key}' for json-file log driver")
    size = -1
    if "max-size" in cfg:
        size = human_size(str(cfg["max-size"]))
        if size <= 0:
            raise BadRequest("max-size must be a positive number")
    files = 1
    if "max-file" in cfg:
        files = _atoi(str(cfg["max-file"]))
        if files < 1:
            raise BadRequest("max-file cannot be less than 1")
    if "compress" in cfg and _bool(str(cfg["compress"])) and (files == 1 or size == -1):
        raise BadRequest(
            "compress cannot be true when max-file is less than 2 or max-size is not set"
        )
    if size > 0 and files > 1:
        raise BadRequest(
            f"tether does not support HostConfig.LogConfig.Config.max-file {files} "
            "(conmon keeps one log file)"
        )
    for key in REFUSED:
        if key in cfg:
            raise BadRequest(f"tether does not support HostConfig.LogConfig.Config.{key}")


NONE_DRIVER_SIZE = 4096


def is_none_driver(host_config: Mapping[str, Any]) -> bool:
    """``--log-driver none``: nothing is kept, ``docker logs`` answers 501."""
    log = host_config.get("LogConfig")
    return isinstance(log, dict) and log.get("Type") == "none"


def size_max(host_config: Mapping[str, Any]) -> int | None:
    """conmon's ``--log-size-max`` for a container (None: no limit). The ``none`` driver
    keeps nothing readable: conmon's file stays within one small size."""
    log = host_config.get("LogConfig")
    if is_none_driver(host_config):
        return NONE_DRIVER_SIZE
    cfg = log.get("Config") if isinstance(log, dict) else None
    if not isinstance(cfg, dict) or not cfg.get("max-size"):
        return None
    return human_size(str(cfg["max-size"]))
