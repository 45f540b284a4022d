"""SSRF guard: decide whether a URL may be fetched, after resolving its host to addresses.

Refused: non-http(s) schemes, and any address that is private, loopback, link-local (including
169.254.169.254 cloud metadata), multicast, reserved, unspecified, or IPv4-mapped/NAT64 forms of
those — for IPv4 and IPv6. A host in the allowlist skips the address check.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from flywheel.errors import SecurityError

__all__ = ["Resolver", "check_url", "is_public_address"]

Resolver = Callable[[str, int], list[str]]

_METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal"}


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def is_public_address(addr: str) -> bool:
    """True only for globally routable unicast addresses."""
    ip = ipaddress.ip_address(addr.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public_address(str(ip.ipv4_mapped))
        if ip.sixtofour is not None:
            return is_public_address(str(ip.sixtofour))
        if ip in ipaddress.ip_network("64:ff9b::/96"):  # NAT64 embeds an IPv4 address
            return is_public_address(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
    if (
        isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local
    ):  # fec0::/10, deprecated but routable inside
        return False
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def _blocked(url: str, reason: str) -> SecurityError:
    return SecurityError("url_blocked", url=url, reason=reason)


def check_url(url: str, allow_hosts: list[str] | None = None, resolver: Resolver | None = None) -> list[str]:
    """Raise SecurityError unless ``url`` is http(s) to public addresses; return those addresses.
    Every malformed URL is refused here, as a SecurityError, never a ValueError."""
    if not isinstance(url, str) or any(c in url for c in "\t\r\n\\") or any(ord(c) < 32 for c in url):
        raise _blocked(str(url)[:200], "it is not a valid URL (control characters or backslashes)")
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".").lower()
        explicit_port = parts.port
    except ValueError as exc:  # "http://[::1/", ":99999", ":80:80"
        raise _blocked(url[:200], f"it is not a valid URL ({exc})") from exc
    if parts.scheme not in ("http", "https"):
        raise _blocked(url, f"scheme {parts.scheme or '(none)'!r} is not http or https")
    if not host or any(c.isspace() for c in host):
        raise _blocked(url, "it has no valid host")
    if parts.username or parts.password:
        raise _blocked(url, "credentials in URLs are not allowed")
    if host in {h.lower() for h in (allow_hosts or [])}:
        return []
    if host in _METADATA_HOSTS:
        raise _blocked(url, f"{host} is a cloud metadata endpoint")
    port = explicit_port or (443 if parts.scheme == "https" else 80)
    try:
        addrs = [str(ipaddress.ip_address(host))]  # a literal address
    except ValueError:
        try:
            addrs = (resolver or _system_resolver)(host, port)
        except (OSError, UnicodeError) as exc:
            raise _blocked(url, f"its host {host} could not be resolved ({exc})") from exc
    if not addrs:
        raise _blocked(url, f"its host {host} resolved to no address")
    for addr in addrs:
        if not is_public_address(addr):
            raise _blocked(url, f"{host} resolves to {addr}, a non-public address")
    return addrs
