"""Fetch a URL safely: SSRF guard on every hop (redirects followed by hand), size and time limits.

DNS rebinding: the guard resolves the host and checks the addresses; the request then connects to
exactly the address that was checked (the URL's host is replaced by it, the Host header and the TLS
server name — SNI and certificate check — keep the real name), so a second, different DNS answer is
never used. Proxy variables from the environment are ignored (``trust_env=False``): a proxy would
connect on our behalf to whatever it resolves.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import httpx

from flywheel.errors import InputError, SecurityError
from flywheel.web._guard import Resolver, check_url

__all__ = ["FetchOptions", "FetchResult", "safe_get"]

DEFAULT_MAX_BYTES = 2_000_000
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_REDIRECTS = 5
USER_AGENT = "flywheel/0.1 (+documentation QA agent)"


@dataclass(frozen=True)
class FetchOptions:
    allow_hosts: tuple[str, ...] = ()
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout: float = DEFAULT_TIMEOUT
    max_redirects: int = DEFAULT_MAX_REDIRECTS

    @classmethod
    def from_settings(cls, settings: Any) -> FetchOptions:
        """The limits ``open_url`` and URL ingestion share (FLYWHEEL_OPEN_URL_*)."""
        return cls(
            tuple(settings.open_url_allow_hosts), settings.open_url_max_bytes, settings.open_url_timeout
        )


@dataclass
class FetchResult:
    url: str  # the final URL after redirects
    status: int
    content_type: str
    text: str
    truncated: bool


def safe_get(
    url: str,
    options: FetchOptions | None = None,
    *,
    resolver: Resolver | None = None,
    transport: httpx.BaseTransport | None = None,
) -> FetchResult:
    """GET ``url``; every redirect target is checked again before it is requested."""
    opts = options or FetchOptions()
    current = url
    with httpx.Client(
        follow_redirects=False,
        timeout=opts.timeout,
        transport=transport,
        headers={"User-Agent": USER_AGENT},
        trust_env=False,
    ) as client:
        for _ in range(opts.max_redirects + 1):
            addrs = check_url(current, list(opts.allow_hosts), resolver)
            try:
                request = _pinned_request(client, current, addrs)
                resp = client.send(request, stream=True)
                with contextlib.closing(resp):
                    if resp.is_redirect and "location" in resp.headers:
                        current = urljoin(current, resp.headers["location"])
                        continue
                    body = bytearray()
                    truncated = False
                    for chunk in resp.iter_bytes():
                        body.extend(chunk)
                        if len(body) > opts.max_bytes:
                            truncated = True
                            del body[opts.max_bytes :]
                            break
                    ctype = resp.headers.get("content-type", "")
                    enc = resp.encoding or "utf-8"
                    return FetchResult(
                        current, resp.status_code, ctype, body.decode(enc, "replace"), truncated
                    )
            except (httpx.InvalidURL, ValueError) as exc:
                raise SecurityError(
                    "url_blocked", url=current[:200], reason=f"it is not a valid URL ({exc})"
                ) from exc
            except httpx.HTTPError as exc:
                raise InputError(
                    "fetch_failed", url=current, detail=f"{exc.__class__.__name__}: {exc}"
                ) from exc
    raise SecurityError("too_many_redirects", url=url, n=opts.max_redirects)


def _pinned_request(client: httpx.Client, url: str, addrs: list[str]) -> httpx.Request:
    """A GET for ``url`` that connects to ``addrs[0]`` (the checked address) with the real Host and
    TLS server name; an allow-listed host (no addresses) is requested as is."""
    parsed = httpx.URL(url)
    if not addrs:
        return client.build_request("GET", parsed)
    addr = addrs[0]
    ip_host = f"[{addr}]" if ":" in addr else addr
    host_header = parsed.host if parsed.port is None else f"{parsed.host}:{parsed.port}"
    return client.build_request(
        "GET",
        parsed.copy_with(host=ip_host.strip("[]")),
        headers={"Host": host_header},
        extensions={"sni_hostname": parsed.host},
    )
