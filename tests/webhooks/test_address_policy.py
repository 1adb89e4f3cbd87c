"""Where webhooks may go: a table of every blocked range, IPv4 and IPv6, and public addresses that pass.
Pure: literal addresses need no DNS."""

from __future__ import annotations

import pytest

from pressrun.webhooks.policy import BLOCKED_NETWORKS, RefusedUrl, blocked_kind, check_url

BLOCKED = [
    ("0.0.0.0", "unspecified"), ("0.1.2.3", "unspecified"),
    ("10.0.0.1", "private"), ("172.16.0.1", "private"), ("172.31.255.254", "private"), ("192.168.1.1", "private"),
    ("100.64.0.1", "carrier-grade NAT"), ("100.127.255.254", "carrier-grade NAT"),
    ("127.0.0.1", "loopback"), ("127.255.255.254", "loopback"),
    ("169.254.169.254", "cloud metadata"),
    ("192.0.0.192", "IETF protocol"), ("192.0.0.8", "IETF protocol"),
    ("192.0.2.1", "documentation"), ("198.51.100.7", "documentation"), ("203.0.113.9", "documentation"),
    ("192.88.99.1", "6to4 relay"), ("198.18.0.1", "benchmarking"), ("198.19.255.1", "benchmarking"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("::", "unspecified"), ("::1", "loopback"), ("::127.0.0.1", "IPv4-compatible"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "cloud metadata"), ("::ffff:10.1.2.3", "private"),
    ("64:ff9b::7f00:1", "NAT64"), ("64:ff9b:1::1", "NAT64"),
    ("100::1", "discard"),
    ("2001::1", "Teredo"), ("2001:db8::1", "documentation"),
    ("2002:7f00:1::", "6to4"), ("2002:a9fe:a9fe::1", "6to4"),
    ("fc00::1", "unique local"), ("fd12:3456::1", "unique local"),
    ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"), ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "100.63.255.255", "100.128.0.0", "172.32.0.1", "192.0.1.1",
          "2606:4700:4700::1111", "2a00:1450:4001:81b::200e", "::ffff:8.8.8.8"]


@pytest.mark.parametrize(("address", "kind"), BLOCKED)
def test_every_blocked_range_is_refused_and_named(address, kind):
    assert kind in (blocked_kind(address) or "")


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    assert blocked_kind(address) is None


def test_every_blocked_network_has_a_case_in_the_table():
    import ipaddress

    covered = {network for network, _ in BLOCKED_NETWORKS
               if any(ipaddress.ip_address(a.split("%")[0]) in ipaddress.ip_network(network) for a, _ in BLOCKED)}
    assert covered == {network for network, _ in BLOCKED_NETWORKS}


@pytest.mark.parametrize("url", ["http://192.0.0.192/hook", "http://[2002:7f00:1::]/hook", "https://[::ffff:127.0.0.1]:8443/",
                                 "http://100.64.1.1/", "http://169.254.169.254/latest/meta-data/"])
async def test_check_url_refuses_them_with_the_setting_named(url):
    with pytest.raises(RefusedUrl, match="PRESSRUN_WEBHOOKS__ALLOW_PRIVATE_NETWORKS"):
        await check_url(url, allow_private=False)


async def test_the_operator_can_allow_private_networks():
    assert await check_url("http://10.0.0.5/hook", allow_private=True) == []
