"""Where webhooks may go. URLs that resolve to loopback, private, link-local (cloud metadata lives
there), multicast, reserved or unspecified addresses are refused — at subscription time and again at
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


def _check_address(address: str, host: str) -> None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    kinds = [
        ("loopback", ip.is_loopback), ("link-local (cloud metadata)", ip.is_link_local), ("private", ip.is_private),
        ("multicast", ip.is_multicast), ("reserved", ip.is_reserved), ("unspecified", ip.is_unspecified),
        ("shared address space", ip in ipaddress.ip_network("100.64.0.0/10")),
    ]
    for kind, hit in kinds:
        if hit:
            raise RefusedUrl(
                f"{host} resolves to {ip}, a {kind} address; webhooks may only go to public addresses "
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
