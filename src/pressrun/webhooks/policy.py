"""Where webhooks may go. URLs that resolve to an address in :data:`BLOCKED_NETWORKS` (loopback,
private, link-local where cloud metadata lives, carrier-grade NAT, multicast, reserved, documentation,
NAT64 and 6to4 forms of IPv4, …) are refused — at subscription time and again at
every delivery, since DNS can change in between (rebinding) — unless the operator allows private
networks (``PRESSRUN_WEBHOOKS__ALLOW_PRIVATE_NETWORKS=true``)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data"}


class RefusedUrl(Exception):
    """The URL may not receive webhooks; the message says why."""


class UnresolvedUrl(RefusedUrl):
    """The host does not resolve right now: refused when subscribing, retried when delivering."""


# Every network a webhook may not reach, named: an explicit list (IANA's special-purpose registries),
# not Python's is_private tables, which miss some (192.0.0.192, the 6to4 form of loopback).
BLOCKED_NETWORKS: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "'this network' (unspecified)"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/8", "reserved (unspecified, loopback, IPv4-compatible)"),
    ("64:ff9b::/96", "NAT64 (reaches IPv4 behind the gateway)"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("2001::/23", "IETF protocol assignments (Teredo, …)"),
    ("2001:db8::/32", "documentation"),
    ("2002::/16", "6to4 (an IPv4 address inside IPv6)"),
    ("fc00::/7", "unique local (private)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
_BLOCKED = tuple((ipaddress.ip_network(network), kind) for network, kind in BLOCKED_NETWORKS)


def blocked_kind(address: str) -> str | None:
    """What kind of non-public address ``address`` is (an IPv4-mapped IPv6 address as its IPv4), or
    None when a webhook may go there."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    hits = [(network.prefixlen, kind) for network, kind in _BLOCKED if ip.version == network.version and ip in network]
    return max(hits)[1] if hits else None  # the most specific range names it (64:ff9b::/96 inside ::/8)


def _check_address(address: str, host: str) -> None:
    kind = blocked_kind(address)
    if kind is not None:
        shown = ipaddress.ip_address(address.split("%", 1)[0])
        raise RefusedUrl(
            f"{host} resolves to {shown}, a {kind} address; webhooks may only go to public addresses "
            "(setting PRESSRUN_WEBHOOKS__ALLOW_PRIVATE_NETWORKS)"
        )


def check_syntax(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RefusedUrl(f"{url!r}: the scheme must be http or https")
    if not parts.hostname:
        raise RefusedUrl(f"{url!r} has no host")
    if parts.username or parts.password:
        raise RefusedUrl(f"{url!r}: credentials in the URL are not allowed; use the signing secret")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise RefusedUrl(f"{url!r}: {exc}") from None
    return parts.hostname.lower().rstrip("."), port


async def check_url(url: str, *, allow_private: bool) -> list[str]:
    """Raise :class:`RefusedUrl` unless ``url`` may receive webhooks now. Returns the addresses that
    were checked (empty when private networks are allowed), for :func:`pinned` to connect to."""
    host, port = check_syntax(url)
    if allow_private:
        return []
    if host in METADATA_HOSTS:
        raise RefusedUrl(f"{host} is a cloud metadata host")
    try:
        ipaddress.ip_address(host)
        addresses = [host]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise UnresolvedUrl(f"{host} does not resolve ({exc.strerror})") from None
        addresses = sorted({info[4][0] for info in infos})
    for address in addresses:
        _check_address(address, host)
    return addresses


def pinned(url: str, addresses: list[str]) -> tuple[str, dict[str, str], dict[str, str]]:
    """The request to send so that it goes to an address that was checked, not to whatever the name
    resolves to a moment later (DNS rebinding): (url with the IP, extra headers, httpx extensions).
    TLS still verifies the certificate against the original host name (SNI)."""
    if not addresses:
        return url, {}, {}
    parts = urlsplit(url)
    hostname = parts.hostname or ""
    try:
        ipaddress.ip_address(hostname)
        return url, {}, {}  # already an address
    except ValueError:
        pass
    ip = addresses[0]
    netloc = f"[{ip}]" if ":" in ip else ip
    if parts.port:
        netloc += f":{parts.port}"
    host_header = hostname + (f":{parts.port}" if parts.port else "")
    extensions = {"sni_hostname": hostname} if parts.scheme == "https" else {}
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), {"Host": host_header}, extensions
