"""Reaching the web safely: the SSRF guard, a size- and time-limited fetch, HTML to text."""

from flywheel.web._fetch import FetchOptions, FetchResult, safe_get
from flywheel.web._guard import Resolver, check_url, is_public_address
from flywheel.web._html import html_title, html_to_markdown

__all__ = [
    "FetchOptions",
    "FetchResult",
    "Resolver",
    "check_url",
    "html_title",
    "html_to_markdown",
    "is_public_address",
    "safe_get",
]
