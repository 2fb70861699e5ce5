"""How the etcd store reaches one etcd member: TLS, user/password, and errors named.

``EtcdSecurity.from_options(opts)`` reads Docker's ``--cluster-store-opt`` keys:

- ``kv.cacertfile``: the CA that signed etcd's certificate (TLS on);
- ``kv.certfile`` + ``kv.keyfile``: this daemon's client certificate (TLS on; both or none);
- ``kv.username`` + ``kv.password``: etcd user authentication (both or none).

Any of the three files turns TLS on (without ``kv.cacertfile`` the system's CAs are
trusted). Files are read once, at start: a missing, unreadable or non-PEM file is a
``BadRequest`` naming the option, before anything starts. Unknown ``kv.*`` keys are refused.

``EtcdConnection`` is what the store calls a client (one per endpoint): the gRPC channel
(``secure_channel`` with the CA/cert/key, else ``insecure_channel``), the stubs, and the
``metadata`` sent with every call: the auth token (after ``Authenticate``, done on
``connect``) and ``hasleader=true``, which makes a member that has lost its leader answer
"no leader" at once (so the store moves on to another member) instead of holding the call
until the deadline or keeping a watch silent. aetcd's own client has no TLS, so only its
generated stubs are used.

``explain(error, ...)`` turns a gRPC failure that is about TLS or authentication into a
sentence naming the problem and the option to fix (gRPC's own text is
"failed to connect to all addresses; ... Unwrap failed (TSI_DATA_CORRUPTED)" when etcd
refused the client certificate), or returns None for everything else.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tether.errors import BadRequest, Unavailable
from tether.store.base import Op

#: The ``--cluster-store-opt`` keys understood (Docker's spellings for the files).
KNOWN_OPTIONS = ("kv.cacertfile", "kv.certfile", "kv.keyfile", "kv.username", "kv.password")

# a token that etcd no longer knows (it restarted: simple tokens live in memory)
_STALE_TOKEN = "invalid auth token"


class StoreAccessRefused(Unavailable):
    """etcd refused this daemon: TLS or authentication (a configuration problem: each
    member is tried once, with no back-off, and the message names the problem)."""


@dataclass(frozen=True)
class EtcdSecurity:
    """TLS material (PEM bytes) and credentials for every endpoint of one store."""

    tls: bool = False
    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_options(cls, opts: Mapping[str, str]) -> EtcdSecurity:
        unknown = sorted(k for k in opts if k not in KNOWN_OPTIONS)
        if unknown:
            raise BadRequest(
                f"unknown cluster-store-opt {', '.join(unknown)}: "
                f"known options are {', '.join(KNOWN_OPTIONS)}"
            )
        if bool(opts.get("kv.certfile")) != bool(opts.get("kv.keyfile")):
            raise BadRequest("cluster-store-opt kv.certfile and kv.keyfile go together")
        if bool(opts.get("kv.username")) != bool(opts.get("kv.password")):
            raise BadRequest("cluster-store-opt kv.username and kv.password go together")
        ca, cert, key = (_read_pem(opts, k) for k in ("kv.cacertfile", "kv.certfile", "kv.keyfile"))
        return cls(
            tls=any(x is not None for x in (ca, cert, key)),
            ca=ca,
            cert=cert,
            key=key,
            username=opts.get("kv.username") or None,
            password=opts.get("kv.password") or None,
        )

    def describe(self) -> str:
        """``tls, client certificate, user NAME`` (for logs; never the password)."""
        parts = ["TLS" if self.tls else "plain text"]
        if self.cert:
            parts.append("client certificate")
        if self.username:
            parts.append(f"user {self.username}")
        return ", ".join(parts)


def _read_pem(opts: Mapping[str, str], option: str) -> bytes | None:
    path = opts.get(option)
    if not path:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BadRequest(f"cluster-store-opt {option}={path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise BadRequest(f"cluster-store-opt {option}={path}: not a PEM file")
    return data


DEFAULT_PORT = 2379


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"etcd://{host}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    """``etcd://h:p``, ``http://h:p``, ``h:p``, ``h`` or ``[v6]:p``."""
    rest = text.strip()
    for scheme in ("etcd://", "http://"):
        if rest.startswith(scheme):
            rest = rest[len(scheme) :]
    rest = rest.rstrip("/")
    if not rest:
        raise ValueError(f"invalid etcd endpoint {text!r}")
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else ""
    elif rest.count(":") == 1:
        host, _, port = rest.partition(":")
    else:
        host, port = rest, ""
    try:
        number = int(port) if port else DEFAULT_PORT
    except ValueError:
        raise ValueError(f"invalid etcd endpoint {text!r}") from None
    if not host or not 0 < number < 65536:
        raise ValueError(f"invalid etcd endpoint {text!r}")
    return Endpoint(host, number)


class EtcdConnection:
    """One member's channel and stubs (the attributes the store uses of a client)."""

    def __init__(
        self,
        host: str,
        port: int,
        security: EtcdSecurity,
        options: Mapping[str, Any],
        timeout: float,
    ) -> None:
        self.target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.security = security
        self.options = dict(options)
        self.timeout = timeout
        self.channel: Any = None
        self.kvstub: Any = None
        self.leasestub: Any = None
        self.metadata: tuple[tuple[str, str], ...] = (("hasleader", "true"),)
        self._token: str | None = None
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        """Open the channel (once) and authenticate (again after ``forget_token``)."""
        if self.channel is not None and (self._token is not None or not self.security.username):
            return
        async with self._lock:
            from aetcd import rpc

            if self.channel is None:
                self.channel = self._open_channel()
                self.kvstub = rpc.KVStub(self.channel)
                self.leasestub = rpc.LeaseStub(self.channel)
            if self.security.username and self._token is None:
                await self._authenticate()

    def _open_channel(self) -> Any:
        grpc = importlib.import_module("grpc")  # loaded by aetcd already; no stubs for mypy
        options = list(self.options.items())
        sec = self.security
        if not sec.tls:
            return grpc.aio.insecure_channel(self.target, options=options)
        creds = grpc.ssl_channel_credentials(sec.ca, sec.key, sec.cert)
        return grpc.aio.secure_channel(self.target, creds, options=options)

    async def _authenticate(self) -> None:
        from aetcd import rpc

        stub = rpc.AuthStub(self.channel)
        request = rpc.AuthenticateRequest(
            name=self.security.username, password=self.security.password
        )
        try:
            response = await stub.Authenticate(request, timeout=self.timeout)
        except rpc.AioRpcError as error:
            if error.code() == rpc.StatusCode.FAILED_PRECONDITION:  # auth is not enabled
                self._token = ""  # as etcd's own client: go on without a token
                return
            raise
        self._token = str(response.token)
        self.metadata = (("token", self._token), ("hasleader", "true"))

    def forget_token(self) -> None:
        """etcd no longer knows the token (it restarted): authenticate on the next call."""
        self._token = None
        self.metadata = (("hasleader", "true"),)

    async def close(self) -> None:
        channel, self.channel = self.channel, None
        if channel is not None:
            await channel.close()


def stale_token(detail: str) -> bool:
    return _STALE_TOKEN in detail


def explain(error: BaseException, security: EtcdSecurity, where: str) -> str | None:
    """A sentence for a TLS or authentication failure talking to ``where``, else None."""
    from aetcd import rpc

    if not isinstance(error, rpc.AioRpcError):
        return None
    code, detail = error.code(), error.details() or ""
    if code == rpc.StatusCode.UNAVAILABLE:
        return _explain_tls(detail, security, where)
    user = security.username
    if "authentication failed" in detail:
        return (
            f"cluster store {where} refused user {user!r}: wrong user name or password "
            "(cluster-store-opt kv.username, kv.password)"
        )
    if "user name is empty" in detail or (code == rpc.StatusCode.UNAUTHENTICATED and not user):
        return (
            f"cluster store {where} requires authentication: set cluster-store-opt "
            "kv.username and kv.password (or a client certificate etcd maps to a user)"
        )
    if code == rpc.StatusCode.PERMISSION_DENIED:
        who = f"user {user!r}" if user else "this daemon's etcd user"
        return f"cluster store {where}: permission denied to {who} on the tether prefix"
    return None


def _explain_tls(detail: str, security: EtcdSecurity, where: str) -> str | None:
    if "TSI_DATA_CORRUPTED" in detail or "BAD_CERTIFICATE" in detail:
        which = "its" if security.cert else "no"
        return (
            f"TLS: cluster store {where} refused this daemon's client certificate (it sent "
            f"{which} certificate; set cluster-store-opt kv.certfile and kv.keyfile to one "
            "signed by a CA etcd trusts)"
        )
    if "not in peer certificate" in detail:
        return f"TLS: the certificate of cluster store {where} does not name that address"
    if "handshake failed" in detail.lower():
        reason = detail.rsplit("OPENSSL_internal:", 1)[-1].removesuffix(": OK").strip()
        hint = (
            "etcd's certificate is not signed by the CA in cluster-store-opt kv.cacertfile"
            if "CERTIFICATE_VERIFY_FAILED" in detail
            else "does etcd speak TLS on this port?"
        )
        return f"TLS handshake with cluster store {where} failed: {reason} ({hint})"
    if not security.tls and "failed to connect" in detail and "Socket closed" in detail:
        return (
            f"cluster store {where} closed the connection at once: does it require TLS? "
            "(set cluster-store-opt kv.cacertfile, kv.certfile, kv.keyfile)"
        )
    return None


# ---------------------------------------------------------------------------- failover

#: How long after a member was seen gone a timeout is taken for failover (a request
#: forwarded to a dead leader hangs until the election is over), not for overload.
LOSS_WINDOW = 10.0
_FIRST_BACKOFF = 0.05


class StaleToken(ConnectionError):
    """A watch cancelled by etcd because it no longer knows the auth token."""


def details(error: BaseException | None) -> str:
    """gRPC's details of an error ("" for anything else)."""
    if isinstance(error, StaleToken):
        return str(error)
    get = getattr(error, "details", None)
    return str(get() or "") if callable(get) else ""


def not_sent(error: BaseException | None) -> bool:
    """The call is known not to have reached etcd's state machine."""
    detail = details(error)
    return "failed to connect" in detail or "no leader" in detail or stale_token(detail)


#: A call failed with one of these may or may not have been applied: its connection broke
#: (its member died), or etcd dropped it because the leader changed under it.
_BROKEN = (
    "Stream removed",
    "Connection reset",
    "Socket closed",
    "leader changed",
    "due to previous leader failure",
    "due to connection lost",
)


def broken(error: BaseException | None) -> bool:
    """The call broke in flight (see ``_BROKEN``): it may have been applied."""
    detail = details(error)
    return any(w in detail for w in _BROKEN)


def timed_out(error: BaseException | None) -> bool:
    if isinstance(error, TimeoutError):
        return True
    code = getattr(error, "code", None)
    return callable(code) and getattr(code(), "name", "") == "DEADLINE_EXCEEDED"


def member_lost(error: BaseException | None) -> bool:
    """The error shows a member gone (refused, reset) or without its leader."""
    detail = details(error).lower()
    return broken(error) or "connection refused" in detail or "no leader" in detail


def ambiguous(error: BaseException | None, since_loss: float) -> bool:
    """A write that failed this way may have been applied (see ``EtcdStore.txn``)."""
    return broken(error) or (timed_out(error) and since_loss < LOSS_WINDOW)


class Failover:
    """When ``EtcdStore._call`` tries a failed call again (``next``: a delay or None).

    Calls that never reached etcd, and with ``in_flight`` calls whose connection broke,
    are tried on the next endpoint at once, and after each round of all endpoints after a
    back-off (50 ms, doubling), until the deadline (``timeout`` after the start). A
    timeout gives one more ``timeout`` only while a member was lost less than
    ``LOSS_WINDOW`` seconds ago; otherwise it is final (retrying a timeout under overload
    would add load where there is too much)."""

    def __init__(self, now: float, timeout: float, endpoints: int, member_lost: float) -> None:
        self.deadline = now + timeout
        self.timeout = timeout
        self.endpoints = endpoints
        self.member_lost = member_lost
        self.failures = 0
        self.backoff = _FIRST_BACKOFF
        self.extended = False
        self.reasons: dict[str, str] = {}

    def note(self, message: str) -> None:
        """Remember why a member failed (``cluster store etcd://H:P is unreachable: ...``)."""
        head, sep, reason = message.partition(" is unreachable: ")
        if sep and head.startswith("cluster store "):
            self.reasons[head.removeprefix("cluster store ")] = reason

    def summary(self, name: str) -> str | None:
        """When several members failed: one message naming each, else None."""
        if len(self.reasons) < 2:
            return None
        each = "; ".join(f"{where}: {why}" for where, why in sorted(self.reasons.items()))
        return f"cluster store {name} is unreachable: no member could serve the request ({each})"

    def next(self, error: BaseException | None, now: float, in_flight: bool) -> float | None:
        if member_lost(error):
            self.member_lost = now
        if timed_out(error):
            if not in_flight or self.extended or now - self.member_lost >= LOSS_WINDOW:
                return None
            self.extended = True
            self.deadline = now + self.timeout
            return 0.0
        if not (not_sent(error) or (in_flight and broken(error))):
            return None
        self.failures += 1
        delay = 0.0
        if self.failures % max(self.endpoints, 1) == 0:
            delay, self.backoff = self.backoff, self.backoff * 2
        return delay if now + delay < self.deadline else None


def landed(ops: Sequence[Op], encoded: Sequence[str | None], key: str, kvs: Any) -> bool:
    """After a Txn that broke in flight was sent again and failed on ``key``: True when
    ``key`` holds what the transaction writes there (or is gone, for a delete), i.e. the
    first attempt was applied. Values name their owner (container, host), so another
    writer leaving the very same value is not a practical case."""
    for op, text in zip(ops, encoded, strict=True):
        if op.key != key or op.kind == "check":
            continue
        if op.kind == "delete":
            return not kvs
        return bool(kvs) and kvs[0].value.decode() == text
    return False
