"""open_url's SSRF guard: private, loopback, link-local and metadata addresses are refused, also via DNS and redirects."""

from __future__ import annotations

import httpx
import pytest

from flywheel.errors import SecurityError
from flywheel.web import FetchOptions, check_url, safe_get

PUBLIC = "93.184.216.34"


def resolver(mapping: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> list[str]:
        if host not in mapping:
            raise OSError("unknown host")
        return mapping[host]

    return resolve


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.1.2.3:8080/admin",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "file:///etc/passwd",
        "http://[fec0::1]/",  # site-local
        "gopher://example.com/",
        "http://user:pass@example.com/",
    ],
)
def test_refused(url: str) -> None:
    with pytest.raises(SecurityError):
        check_url(url, resolver=resolver({"example.com": [PUBLIC]}))


def test_a_name_resolving_to_loopback_is_refused() -> None:
    with pytest.raises(SecurityError) as info:
        check_url("http://innocent.example/", resolver=resolver({"innocent.example": [PUBLIC, "127.0.0.1"]}))
    assert "127.0.0.1" in info.value.render("en")


def test_localhost_by_name_is_refused_with_the_real_resolver() -> None:
    with pytest.raises(SecurityError):
        check_url("http://localhost:5000/")


def test_public_and_allowlisted_hosts_pass() -> None:
    assert check_url("https://docs.example/x", resolver=resolver({"docs.example": [PUBLIC]})) == [PUBLIC]
    assert check_url("http://wiki.internal/", ["wiki.internal"], resolver=resolver({})) == []


def test_a_redirect_to_loopback_is_refused_before_it_is_followed() -> None:
    requested: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requested.append(f"{request.url.scheme}://{request.headers['host']}{request.url.path}")
        return httpx.Response(
            302, headers={"location": "http://127.0.0.1:5000/api/2.0/mlflow/experiments/search"}
        )

    with pytest.raises(SecurityError):
        safe_get(
            "https://docs.example/page",
            resolver=resolver({"docs.example": [PUBLIC]}),
            transport=httpx.MockTransport(handler),
        )
    assert requested == ["https://docs.example/page"]  # the loopback URL was never requested


def test_size_limit_truncates() -> None:
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, text="x" * 5000, headers={"content-type": "text/plain"})
    )
    res = safe_get(
        "https://docs.example/big",
        FetchOptions(max_bytes=1000),
        resolver=resolver({"docs.example": [PUBLIC]}),
        transport=transport,
    )
    assert res.truncated and len(res.text) == 1000


class Rebinding:
    """A resolver that answers a public address first and loopback afterwards (DNS rebinding)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        return [PUBLIC] if self.calls == 1 else ["127.0.0.1"]


def test_dns_rebinding_connects_to_the_checked_address_only() -> None:
    seen: list[tuple[str, str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers["host"], request.extensions.get("sni_hostname")))
        return httpx.Response(200, text="public page", headers={"content-type": "text/plain"})

    res = safe_get(
        "https://rebind.example/secret", resolver=Rebinding(), transport=httpx.MockTransport(handler)
    )
    assert res.text == "public page" and res.url == "https://rebind.example/secret"
    # the connection went to the address the guard checked, with the real name for Host and TLS
    assert seen == [(PUBLIC, "rebind.example", "rebind.example")]


def test_environment_proxies_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    transport = httpx.MockTransport(lambda r: httpx.Response(200, text="ok"))
    res = safe_get(
        "https://docs.example/", resolver=resolver({"docs.example": [PUBLIC]}), transport=transport
    )
    assert res.text == "ok"
    with httpx.Client(trust_env=False) as c:  # what safe_get builds: no proxy mounts from the env
        assert not c._mounts


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1/",
        "http://example.com:99999/",
        "http://example.com:80:80/",
        "http://exa\tmple.com/",
        "http:\\\\example.com\\",
        "http://exa mple.com/",
        "http://",
        "",
    ],
)
def test_malformed_urls_are_the_guards_refusal(url: str) -> None:
    with pytest.raises(SecurityError):
        check_url(url, resolver=resolver({"example.com": [PUBLIC]}))


def test_a_malformed_redirect_is_refused_not_raised() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(302, headers={"location": "http:\\\\evil\\x"}))
    with pytest.raises(SecurityError):
        safe_get("https://docs.example/", resolver=resolver({"docs.example": [PUBLIC]}), transport=transport)


def test_open_url_tool_never_raises_on_a_bad_url(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from flywheel.agent import AgentConfig
    from flywheel.agent._tools import ToolContext, build_tools
    from flywheel.config import load_settings

    ctx = ToolContext(load_settings(data_dir=tmp_path), None, AgentConfig(tools=["open_url"]))  # type: ignore[arg-type]
    (tool,) = build_tools(ctx)
    for url in ["http://[::1/", "http://example.com:99999/", "http://127.0.0.1:5000/", "gopher://x"]:
        out = tool.invoke({"url": url})
        assert out.startswith("Could not open"), out
