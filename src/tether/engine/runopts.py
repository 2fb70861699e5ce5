"""Identity, privileges and networking run options (issue 16): Docker's checks and texts.

``check_create`` runs at create, before anything is made, so a refused value leaves nothing
behind: ``CapAdd``/``CapDrop`` (Docker's validateCapabilities), ``SecurityOpt`` (Docker's
parseSecurityOpt, then what tether can apply), ``ExtraHosts`` (ValidateExtraHost),
``MacAddress`` (Go's ``net.ParseMAC``), ``StopSignal`` (ParseSignal), ``Sysctls`` (runc's
validator: Docker itself leaves it to runc at start) and ``Privileged``/``ReadonlyRootfs``.
``User`` and ``GroupAdd`` are resolved against the image's /etc/passwd and /etc/group at each
start (by the runtime, as Docker does), so an unknown user fails the start with runc's text.

The rest turns the stored settings into what the bundle and the sandbox files take:
``security`` (no-new-privileges), ``host_lines`` (``--add-host``, ``host-gateway``),
``hosts_names`` (the container's own hosts line with ``--domainname``) and ``mac_of``.
"""

from __future__ import annotations

import ipaddress
import re
import signal as _signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tether.contracts.runtime import ALL_CAPABILITIES
from tether.errors import BadRequest

HOST_GATEWAY = "host-gateway"
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_HEX2 = "[0-9A-Fa-f]{2}"
_MAC_RE = re.compile(rf"^{_HEX2}([:-]){_HEX2}(\1{_HEX2}){{4}}$")
_MAC_DOT_RE = re.compile(r"^[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}$")
# runc's validator: sysctls namespaced by the IPC namespace
IPC_SYSCTLS = frozenset(
    {
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    }
)


@dataclass(frozen=True)
class Security:
    """What ``SecurityOpt`` asks for, once accepted."""

    no_new_privileges: bool = False
    apparmor: str = ""  # "unconfined" or ""
    seccomp: str = ""  # "unconfined" or ""
    label_disable: bool = False


# ---- capabilities ------------------------------------------------------------------------


def normalize_caps(caps: Sequence[str] | None, field: str) -> list[str]:
    """Docker's NormalizeLegacyCapabilities: upper case, ``CAP_`` prefixed, ``ALL`` kept;
    an unknown name is refused (``invalid CapAdd: unknown capability: "CAP_NOPE"``)."""
    out: list[str] = []
    for raw in caps or []:
        c = raw.upper()
        if c != "ALL" and not c.startswith("CAP_"):
            c = "CAP_" + c
        if c != "ALL" and c not in ALL_CAPABILITIES:
            raise BadRequest(f'invalid {field}: unknown capability: "{c}"')
        out.append(c)
    return out


# ---- security options --------------------------------------------------------------------


def _go_bool(text: str) -> bool | None:
    return True if text in _GO_TRUE else False if text in _GO_FALSE else None


def parse_security_opt(opts: Sequence[str] | None) -> Security:
    """Docker's parseSecurityOpt (its texts), then what tether applies: no seccomp, AppArmor
    or SELinux profile on any container, so only ``=unconfined``/``label=disable`` are true."""
    nnp, apparmor, seccomp, label_disable = False, "", "", False
    for opt in opts or []:
        if opt == "no-new-privileges":
            nnp = True
            continue
        if opt == "disable":
            label_disable = True
            continue
        sep = "=" if "=" in opt else ":" if ":" in opt else ""
        if not sep:
            raise BadRequest(f'invalid --security-opt 1: "{opt}"')
        key, value = opt.split(sep, 1)
        if key == "no-new-privileges":
            parsed = _go_bool(value)
            if parsed is None:
                raise BadRequest(f'invalid --security-opt 2: "{opt}"')
            nnp = parsed
        elif key == "label":
            if value != "disable":
                raise BadRequest(
                    f"tether does not support HostConfig.SecurityOpt label={value}: "
                    "tether applies no SELinux labels (only label=disable)"
                )
            label_disable = True
        elif key in ("apparmor", "seccomp"):
            if value != "unconfined":
                what = "AppArmor" if key == "apparmor" else "seccomp"
                shown = value if key == "apparmor" else "<profile>"
                raise BadRequest(
                    f"tether does not support HostConfig.SecurityOpt {key}={shown}: "
                    f"tether applies no {what} profile (only {key}=unconfined)"
                )
            apparmor, seccomp = (value, seccomp) if key == "apparmor" else (apparmor, value)
        else:
            raise BadRequest(f'invalid --security-opt 2: "{opt}"')
    return Security(nnp, apparmor, seccomp, label_disable)


# ---- networking options ------------------------------------------------------------------


def _valid_ip(text: str) -> bool:
    text = text.strip()
    if "%" in text:
        return False  # Go's net.ParseIP takes no zone
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_extra_host(entry: str) -> tuple[str, str]:
    """Docker's ValidateExtraHost: ``name:ip`` (split on the first ``:``, so IPv6 works) or
    ``name:host-gateway``."""
    name, sep, ip = entry.partition(":")
    if not sep or not name:
        raise BadRequest(f'bad format for add-host: "{entry}"')
    if ip != HOST_GATEWAY and not _valid_ip(ip):
        raise BadRequest(f'invalid IP address in add-host: "{ip}"')
    return name, ip


def host_lines(extra_hosts: Sequence[str] | None, gateway: str | None) -> list[str]:
    """The ``--add-host`` lines of the hosts file (``IP\\tNAME``), ``host-gateway`` replaced
    by ``gateway`` (Docker: the default bridge's address, daemon option host-gateway-ip)."""
    out: list[str] = []
    for entry in extra_hosts or []:
        name, ip = check_extra_host(entry)
        if ip == HOST_GATEWAY:
            if not gateway:
                raise BadRequest("unable to derive the IP value for host-gateway")
            ip = gateway
        out.append(f"{ip}\t{name}")
    return out


def hosts_names(hostname: str, domainname: str) -> str:
    """The names of the container's own hosts line, as libnetwork's etchosts.Build writes
    them: the FQDN and, when it has a dot, the bare host name."""
    fqdn = f"{hostname}.{domainname}" if domainname else hostname
    head, dot, _ = fqdn.partition(".")
    return f"{fqdn} {head}" if dot else fqdn


def parse_mac(text: str) -> str:
    """Go's ``net.ParseMAC`` for a 48-bit address (``02:42:..``, ``02-42-..``, ``0242.ac11.
    0002``), as ``aa:bb:cc:dd:ee:ff``; its text for anything else."""
    if _MAC_RE.match(text):
        digits = re.sub(r"[:-]", "", text)
    elif _MAC_DOT_RE.match(text):
        digits = text.replace(".", "")
    else:
        raise BadRequest(f"address {text}: invalid MAC address")
    digits = digits.lower()
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def mac_of(epcfg: Mapping[str, Any]) -> str:
    """The MAC address an endpoint's settings ask for ("" when none)."""
    mac = epcfg.get("MacAddress")
    return parse_mac(mac) if isinstance(mac, str) and mac else ""


# ---- stop signal and sysctls -------------------------------------------------------------


def check_stop_signal(text: str) -> None:
    """Docker's ParseSignal: a number other than 0, or a name with or without ``SIG``."""
    name = text.strip()
    if name.lstrip("+-").isdigit():
        if int(name) == 0:
            raise BadRequest(f"Invalid signal: {text}")
        return
    upper = name.upper()
    upper = upper[3:] if upper.startswith("SIG") else upper
    if re.fullmatch(r"RTMIN\+([1-9]|1[0-5])|RTMAX-([1-9]|1[0-4])", upper):
        return
    if upper in ("UNUSED",) or (upper and isinstance(getattr(_signal, "SIG" + upper, None), int)):
        return
    raise BadRequest(f"Invalid signal: {text}")


def check_sysctls(sysctls: Mapping[str, str] | None, hc: Mapping[str, Any], kind: str) -> None:
    """runc's validator, at create (Docker leaves it to the start): ``net.*`` needs a network
    namespace of the container's own, the IPC ones an IPC namespace, ``kernel.domainname`` a
    UTS one; nothing else is namespaced."""
    for key in sysctls or {}:
        if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if hc.get("IpcMode") == "host":
                raise BadRequest(f'sysctl "{key}" is not allowed in the hosts ipc namespace')
            continue
        if key.startswith("net."):
            if kind == "host":
                raise BadRequest(f'sysctl "{key}" not allowed in host network namespace')
            continue
        uts_private = kind != "host" and hc.get("UTSMode") != "host"
        if uts_private and key == "kernel.domainname":
            continue
        if uts_private and key == "kernel.hostname":
            raise BadRequest(
                f'sysctl "{key}" is not allowed as it conflicts with the OCI "hostname" field'
            )
        raise BadRequest(f'sysctl "{key}" is not in a separate kernel namespace')


# ---- the whole request ---------------------------------------------------------------------


def check_create(
    cfg: Mapping[str, Any], hc: Mapping[str, Any], endpoints: Mapping[str, Any], kind: str
) -> None:
    """Every P1 field of a create request, with Docker's texts (see the module notes)."""
    if cfg.get("StopSignal"):
        check_stop_signal(str(cfg["StopSignal"]))
    normalize_caps(hc.get("CapAdd"), "CapAdd")
    normalize_caps(hc.get("CapDrop"), "CapDrop")
    parse_security_opt(hc.get("SecurityOpt"))
    for entry in hc.get("ExtraHosts") or []:
        check_extra_host(entry)
    if cfg.get("MacAddress"):
        parse_mac(str(cfg["MacAddress"]))
    for settings in endpoints.values():
        if isinstance(settings, dict):
            mac_of(settings)
    check_sysctls(hc.get("Sysctls"), hc, kind)
