"""The lab's own certificate authority, for an etcd cluster that speaks TLS only.

``make_pki(folder, server_ips)`` writes, all PEM, keys 0600 (EC P-256: quick to make):

- ``ca.pem`` / ``ca-key.pem``: a CA valid for a year, made fresh for each lab;
- ``server.pem`` / ``server-key.pem``: one certificate for every etcd member (server and
  client use, the members authenticate each other with it on the peer port too), with
  the members' IP addresses as subject alternative names;
- ``client.pem`` / ``client-key.pem``: the daemons' client certificate (CN ``tether``);
- ``other-ca.pem``: a second, unrelated CA (tests: a daemon trusting the wrong CA).

Nothing here is secret beyond the lab: the folder lives under the lab's directory and
goes with ``tether lab down``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CA_NAME = "ca.pem"
SERVER_NAME = "server.pem"
CLIENT_NAME = "client.pem"
OTHER_CA_NAME = "other-ca.pem"


@dataclass(frozen=True)
class LabPki:
    """Paths of the lab's certificates and keys."""

    folder: Path

    @property
    def ca(self) -> str:
        return str(self.folder / CA_NAME)

    @property
    def other_ca(self) -> str:
        return str(self.folder / OTHER_CA_NAME)

    @property
    def server_cert(self) -> str:
        return str(self.folder / SERVER_NAME)

    @property
    def server_key(self) -> str:
        return str(self.folder / "server-key.pem")

    @property
    def client_cert(self) -> str:
        return str(self.folder / CLIENT_NAME)

    @property
    def client_key(self) -> str:
        return str(self.folder / "client-key.pem")

    def store_opts(self) -> dict[str, str]:
        """Docker's ``--cluster-store-opt`` spellings for a daemon of this lab."""
        return {
            "kv.cacertfile": self.ca,
            "kv.certfile": self.client_cert,
            "kv.keyfile": self.client_key,
        }


def make_pki(folder: str | Path, server_ips: Sequence[str]) -> LabPki:
    """Create the CA, the members' certificate and the client certificate in ``folder``."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    pki = LabPki(Path(folder))
    pki.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("tether lab CA", ca_key, ca_key, None, ca=True)
    _write(pki.ca, pki.folder / "ca-key.pem", ca_cert, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _certificate(
        "etcd",
        server_key,
        ca_key,
        ca_cert,
        ips=server_ips,
        usages=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    _write(pki.server_cert, pki.server_key, server_cert, server_key)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _certificate(
        "tether", client_key, ca_key, ca_cert, usages=[ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    _write(pki.client_cert, pki.client_key, client_cert, client_key)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = _certificate("another CA", other_key, other_key, None, ca=True)
    _write(pki.other_ca, None, other, None)
    return pki


def _certificate(
    name: str,
    key: Any,
    signer: Any,
    issuer: Any,
    *,
    ca: bool = False,
    ips: Sequence[str] = (),
    usages: Sequence[Any] = (),
) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    if ips:
        alt = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _write(cert_path: str | Path, key_path: str | Path | None, cert: Any, key: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    Path(cert_path).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key_path is None:
        return
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
