"""Two gateway processes share one rate limit through a real Redis (`gateway.limits_storage`):
together they admit the configured number of calls, not twice it; without the shared store each
admits its own allowance. /metrics exposes the counters for Prometheus to add up."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import yaml

from tests.engines import gateway_replica, limited_gateway_config, redis_missing, redis_server
from tests.gateway.stubs import OpenAIStub
from tests.serving.conftest import serve

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _replica(config: Path):  # type: ignore[no-untyped-def]
    return gateway_replica(config, ROOT)


def _config(tmp_path: Path, upstream: str, storage: str | None) -> Path:
    config = limited_gateway_config(upstream, 10, "minute", storage)
    path = tmp_path / f"gw-{'shared' if storage else 'local'}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _admitted(urls: list[str], n: int) -> tuple[int, int]:
    codes = []
    with httpx.Client(timeout=10) as client:
        for i in range(n):
            r = client.post(
                urls[i % len(urls)] + "/v1/chat/completions",
                json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
            )
            codes.append(r.status_code)
    return codes.count(200), codes.count(429)


def test_two_replicas_share_a_limit_through_redis(tmp_path: Path) -> None:
    missing = redis_missing()
    if missing:
        pytest.skip(missing)
    with serve(OpenAIStub("a")) as (upstream, _), redis_server() as redis, ExitStack() as stack:
        shared = _config(tmp_path, upstream, redis)
        urls = [stack.enter_context(_replica(shared)) for _ in range(2)]
        assert _admitted(urls, 16) == (10, 6)  # one allowance for both
        stats = [httpx.get(u + "/stats").json() for u in urls]
        assert {s["limits"] for s in stats} == {"shared"} and sum(s["limit_store_errors"] for s in stats) == 0
        metrics = [httpx.get(u + "/metrics").text for u in urls]
        limited = sum(
            float(line.split()[-1])
            for text in metrics
            for line in text.splitlines()
            if line.startswith('flywheel_gateway_rate_limited_total{limit="route:chat"}')
        )
        assert limited == 6
        assert all('flywheel_gateway_requests_total{arm="a",route="chat"}' in m for m in metrics)

        local = _config(tmp_path, upstream, None)
        urls = [stack.enter_context(_replica(local)) for _ in range(2)]
        assert _admitted(urls, 24) == (20, 4)  # per replica: each admits its own 10
