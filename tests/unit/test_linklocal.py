"""``IPAMConfig.LinkLocalIPs``: checked at create, applied as extra interface addresses."""

from __future__ import annotations

import pytest

from tether.api import bodycheck
from tether.contracts.model import Endpoint
from tether.errors import BadRequest


def _ep(ipam: dict[str, object] | None) -> Endpoint:
    return Endpoint(
        id="e", network_id="n", network_name="net", container_id="c", container_name="x",
        ipam_config=ipam,
    )  # fmt: skip


def test_link_local_addresses_take_libnetworks_prefixes() -> None:
    ep = _ep({"LinkLocalIPs": ["169.254.1.5", "fe80::5", ""]})
    assert ep.link_local() == ("169.254.1.5/16", "fe80::5/64")
    assert _ep(None).link_local() == ()
    assert _ep({"IPv4Address": "10.0.0.2"}).link_local() == ()


def test_a_bad_link_local_address_is_refused_with_dockers_text() -> None:
    bodycheck.check_endpoint_addresses({"IPAMConfig": {"LinkLocalIPs": ["169.254.1.5", ""]}})
    with pytest.raises(BadRequest, match=r"^Invalid link-local IP address: \[169\.254\.1\.5 x\]$"):
        bodycheck.check_endpoint_addresses({"IPAMConfig": {"LinkLocalIPs": ["169.254.1.5", "x"]}})
