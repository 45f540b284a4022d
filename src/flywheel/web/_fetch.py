"""Fetch a URL safely: SSRF guard on every hop (redirects followed by hand), size and time limits."""

from __future__ import annotations

from dataclasses import dataclass
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
        follow_redirects=False, timeout=opts.timeout, transport=transport, headers={"User-Agent": USER_AGENT}
    ) as client:
        for _ in range(opts.max_redirects + 1):
            check_url(current, list(opts.allow_hosts), resolver)
            try:
                with client.stream("GET", current) as resp:
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
            except httpx.HTTPError as exc:
                raise InputError(
                    detail=f"could not fetch {current}: {exc.__class__.__name__}: {exc}",
                    why="The server did not answer in time, refused the connection, or the name is unknown.",
                    fix="Check the URL and your network; raise FLYWHEEL_OPEN_URL_TIMEOUT for slow sites.",
                ) from exc
    raise SecurityError(
        detail=f"{url} redirected more than {opts.max_redirects} times",
        why="Long redirect chains are refused.",
        fix="Use the final URL directly.",
    )
