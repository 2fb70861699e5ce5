"""Cluster-store options (TLS files, user/password) and how TLS/auth failures are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.config import load_config
from tether.daemon import open_cluster_store
from tether.errors import BadRequest
from tether.store.etcdconn import EtcdSecurity, explain

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _pem(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_bytes(PEM)
    return str(path)


def test_options_turn_tls_on_and_read_files(tmp_path: Path) -> None:
    sec = EtcdSecurity.from_options(
        {
            "kv.cacertfile": _pem(tmp_path, "ca.pem"),
            "kv.certfile": _pem(tmp_path, "c.pem"),
            "kv.keyfile": _pem(tmp_path, "k.pem"),
            "kv.username": "tether",
            "kv.password": "s3cret",
        }
    )
    assert sec.tls and sec.ca == PEM and sec.cert == PEM and sec.key == PEM
    assert sec.describe() == "TLS, client certificate, user tether"
    assert "s3cret" not in repr(sec.describe())
    assert not EtcdSecurity.from_options({}).tls


@pytest.mark.parametrize(
    ("opts", "words"),
    [
        ({"kv.certfile": "X"}, "kv.certfile and kv.keyfile go together"),
        ({"kv.username": "u"}, "kv.username and kv.password go together"),
        ({"kv.cacertfile": "/nonexistent/ca.pem"}, "No such file"),
        ({"kv.path": "/x"}, "unknown cluster-store-opt kv.path"),
    ],
)
def test_bad_options_are_refused(opts: dict[str, str], words: str) -> None:
    with pytest.raises(BadRequest, match=words):
        EtcdSecurity.from_options(opts)


def test_a_file_that_is_not_pem_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("hello")
    with pytest.raises(BadRequest, match=r"kv\.cacertfile=.*not a PEM file"):
        EtcdSecurity.from_options({"kv.cacertfile": str(tmp_path / "ca.pem")})


def test_flags_and_daemon_json_merge_key_by_key(tmp_path: Path) -> None:
    conf = tmp_path / "daemon.json"
    conf.write_text('{"cluster-store-opts": {"kv.username": "a", "kv.password": "file"}}')
    cfg = load_config(
        None, None, None, str(conf), "etcd://h:2379", "1.2.3.4",
        cluster_store_opts=["kv.password=flag", "kv.cacertfile=/x=y"],
    )  # fmt: skip
    assert cfg.cluster_store_opts == {
        "kv.username": "a",
        "kv.password": "flag",
        "kv.cacertfile": "/x=y",
    }
    with pytest.raises(BadRequest, match="want KEY=VALUE"):
        load_config(None, None, None, None, None, None, cluster_store_opts=["kv.username"])
    conf.write_text('{"cluster-store-opts": ["kv.username=a"]}')
    with pytest.raises(BadRequest, match="must map option names to strings"):
        load_config(None, None, None, str(conf), None, None)


def test_store_url_with_several_endpoints_and_no_credentials() -> None:
    store = open_cluster_store("etcd://h1:2379,h2,10.0.0.3:2381")
    assert store.name == "etcd://h1:2379,etcd://h2:2379,etcd://10.0.0.3:2381"
    with pytest.raises(BadRequest, match=r"use cluster-store-opts kv\.username"):
        open_cluster_store("etcd://me:pw@h1:2379")
    with pytest.raises(BadRequest, match="only etcd://"):
        open_cluster_store("consul://h1:8500")
    with pytest.raises(BadRequest, match="invalid etcd endpoint"):
        open_cluster_store("etcd://h1:2379,h2:port")


def _rpc_error(code_name: str, details: str) -> BaseException:
    from aetcd import rpc

    code = getattr(rpc.StatusCode, code_name)
    return rpc.AioRpcError(code, None, None, details=details)  # type: ignore[arg-type]


TLS = EtcdSecurity(tls=True, ca=PEM)
WHERE = "etcd://198.18.0.2:2379"


@pytest.mark.parametrize(
    ("code", "details", "sec", "words"),
    [
        (
            "UNAVAILABLE",
            "failed to connect to all addresses; last error: UNAVAILABLE: "
            "ipv4:198.18.0.2:2379: Unwrap failed (TSI_DATA_CORRUPTED)",
            TLS,
            "TLS: cluster store etcd://198.18.0.2:2379 refused this daemon's client certificate "
            "(it sent no certificate",
        ),
        (
            "UNAVAILABLE",
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:198.18.0.2:2379: "
            "Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL "
            "routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable to get local issuer "
            "certificate: OK",
            TLS,
            "TLS handshake with cluster store etcd://198.18.0.2:2379 failed: "
            "CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate (etcd's",
        ),
        (
            "UNAVAILABLE",
            "failed to connect to all addresses; last error: UNAVAILABLE: "
            "ipv4:198.18.0.2:2379: Socket closed",
            EtcdSecurity(),
            "closed the connection at once: does it require TLS?",
        ),
        (
            "INVALID_ARGUMENT",
            "etcdserver: authentication failed, invalid user ID or password",
            EtcdSecurity(username="tether", password="x"),
            "refused user 'tether': wrong user name or password",
        ),
        (
            "INVALID_ARGUMENT",
            "etcdserver: user name is empty",
            EtcdSecurity(),
            "requires authentication: set cluster-store-opt kv.username and kv.password",
        ),
    ],
)
def test_tls_and_auth_failures_are_named(
    code: str, details: str, sec: EtcdSecurity, words: str
) -> None:
    text = explain(_rpc_error(code, details), sec, WHERE)
    assert text is not None and words in text


def test_other_failures_are_left_alone() -> None:
    refused = _rpc_error(
        "UNAVAILABLE",
        "failed to connect to all addresses; last error: UNAVAILABLE: "
        "ipv4:198.18.0.2:2379: Connection refused",
    )
    assert explain(refused, TLS, WHERE) is None
    assert explain(TimeoutError(), TLS, WHERE) is None
