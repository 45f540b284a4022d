"""The gateway on real sockets against provider stubs: the A/B split, stickiness, fallback with the
primary killed mid-run, rate limits, keys, streaming through the OpenAI SDK, a stream that breaks,
Anthropic and Bedrock translated both ways, and config mistakes that name file, key and fix."""

from __future__ import annotations

import concurrent.futures as cf
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openai import OpenAI

from flywheel.errors import ConfigError
from flywheel.gateway import build_gateway, load_gateway_config
from tests.gateway.stubs import AnthropicStub, BedrockStub, OpenAIStub
from tests.serving.conftest import serve

ROOT = Path(__file__).resolve().parents[2]


def _gateway(tmp_path: Path, config: dict[str, Any]) -> Any:
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(config))
    return build_gateway(str(path))


def _endpoint(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "endpoint_type": "llm/v1/chat",
        "model": {
            "provider": "openai",
            "name": f"model-{name}",
            "config": {"openai_api_key": "none", "openai_api_base": url + "/v1"},
        },
        **extra,
    }


def _chat(client: httpx.Client, url: str, **extra: Any) -> httpx.Response:
    return client.post(
        url + "/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}], **extra},
    )


def test_a_70_30_split_lands_within_5_percent_and_sessions_stick(tmp_path: Path) -> None:
    with serve(OpenAIStub("a")) as (a, _), serve(OpenAIStub("b")) as (b, _):
        gw = _gateway(
            tmp_path,
            {
                "endpoints": [_endpoint("a", a), _endpoint("b", b)],
                "routes": [
                    {
                        "name": "chat",
                        "destinations": [
                            {"name": "a", "traffic_percentage": 70},
                            {"name": "b", "traffic_percentage": 30},
                        ],
                    }
                ],
            },
        )
        with serve(gw) as (url, _), httpx.Client() as client:
            arms = Counter(_chat(client, url).headers["x-flywheel-arm"] for _ in range(1000))
            assert abs(arms["a"] / 1000 - 0.70) <= 0.05 and abs(arms["b"] / 1000 - 0.30) <= 0.05, arms
            # sticky: every request of one session lands on one arm; sessions spread over both
            per_session = {}
            for s in range(40):
                seen = {
                    _chat(client, url, user=f"u{s}", metadata={"session_id": f"s{s}"}).headers[
                        "x-flywheel-arm"
                    ]
                    for _ in range(5)
                }
                assert len(seen) == 1
                per_session[s] = seen.pop()
            assert set(per_session.values()) == {"a", "b"}
            stats = client.get(url + "/stats").json()
            assert {r["arm"] for r in stats["arms"]} == {"a", "b"} and sum(
                r["requests"] for r in stats["arms"]
            ) == 1200
            # the answering endpoint saw the endpoint's model name, not the route's
            assert _chat(client, url).json()["model"] in ("model-a", "model-b")


def test_killing_the_primary_mid_run_fails_no_request(tmp_path: Path) -> None:
    with serve(OpenAIStub("primary")) as (p, primary), serve(OpenAIStub("backup")) as (b, _):
        gw = _gateway(
            tmp_path,
            {
                "endpoints": [_endpoint("primary", p, timeout_s=5), _endpoint("backup", b)],
                "routes": [
                    {
                        "name": "chat",
                        "destinations": [{"name": "primary", "traffic_percentage": 100}],
                        "fallbacks": ["backup"],
                    }
                ],
                "gateway": {"cooldown_s": 30},
            },
        )
        with serve(gw) as (url, _):
            statuses: list[int] = []
            answered_by: Counter[str] = Counter()

            def one(i: int) -> None:
                with httpx.Client(timeout=30) as c:
                    r = _chat(c, url)
                    statuses.append(r.status_code)
                    answered_by[r.headers.get("x-flywheel-endpoint", "?")] += 1

            with cf.ThreadPoolExecutor(8) as pool:
                futures = [pool.submit(one, i) for i in range(100)]
                time.sleep(0.3)
                primary.should_exit = True  # the primary goes away while requests flow
                futures += [pool.submit(one, i) for i in range(100, 300)]
                for f in futures:
                    f.result()
            assert statuses.count(200) == 300, Counter(statuses)
            assert answered_by["backup"] > 0 and answered_by["primary"] > 0
            ep = {e["endpoint"]: e for e in httpx.get(url + "/stats").json()["endpoints"]}
            assert ep["primary"]["cooling_down_s"] > 0  # skipped while it cools down


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    with serve(OpenAIStub("a")) as (a, _):
        gw = _gateway(
            tmp_path,
            {
                "endpoints": [_endpoint("a", a)],
                "routes": [
                    {
                        "name": "chat",
                        "destinations": [{"name": "a", "traffic_percentage": 100}],
                        "limit": {"calls": 5, "renewal_period": "minute"},
                    }
                ],
            },
        )
        with serve(gw) as (url, _), httpx.Client() as client:
            codes = [_chat(client, url).status_code for _ in range(7)]
            assert codes == [200] * 5 + [429] * 2
            r = _chat(client, url)
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["type"] == "rate_limit_error"


def test_client_keys_and_streaming_through_the_openai_sdk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GW_CLIENT_KEY", "client-secret-123")
    with serve(OpenAIStub("a")) as (a, _):
        gw = _gateway(
            tmp_path,
            {
                "endpoints": [_endpoint("a", a)],
                "routes": [{"name": "chat", "destinations": [{"name": "a", "traffic_percentage": 100}]}],
                "gateway": {"api_keys": ["$GW_CLIENT_KEY"]},
            },
        )
        with serve(gw) as (url, _):
            assert httpx.post(url + "/v1/chat/completions", json={"model": "chat"}).status_code == 401
            assert httpx.get(url + "/health").status_code == 200  # probes need no key
            sdk = OpenAI(base_url=url + "/v1", api_key="client-secret-123")
            text = "".join(
                c.choices[0].delta.content or ""
                for c in sdk.chat.completions.create(
                    model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
                )
                if c.choices
            )
            assert text == "Hello from a"
            reply = sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
            assert reply.choices[0].message.content == "hi from a"
            assert [m.id for m in sdk.models.list().data] == ["chat", "a"]
            assert len(sdk.embeddings.create(model="a", input="x").data[0].embedding) == 2


def test_a_stream_that_breaks_after_its_first_byte_ends_with_an_error_event(tmp_path: Path) -> None:
    with serve(OpenAIStub("a", mode="break")) as (a, _):
        gw = _gateway(
            tmp_path,
            {
                "endpoints": [_endpoint("a", a)],
                "routes": [{"name": "chat", "destinations": [{"name": "a", "traffic_percentage": 100}]}],
            },
        )
        with serve(gw) as (url, _):
            t0 = time.monotonic()
            with httpx.stream(
                "POST", url + "/v1/chat/completions", json={"model": "chat", "stream": True}, timeout=20
            ) as r:
                body = r.read().decode()
            assert time.monotonic() - t0 < 10  # never a hang
            assert '"Hello"' in body and '"type": "upstream_error"' in body


def test_anthropic_is_translated_both_ways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_KEY_FOR_TEST", "sk-ant-test")
    stub = AnthropicStub("sk-ant-test")
    with serve(stub) as (a, _):
        gw = _gateway(
            tmp_path,
            {
                "endpoints": [
                    {
                        "name": "claude",
                        "endpoint_type": "llm/v1/chat",
                        "model": {
                            "provider": "anthropic",
                            "name": "claude-sonnet-4-5",
                            "config": {
                                "anthropic_api_key": "$ANTHROPIC_KEY_FOR_TEST",
                                "anthropic_api_base": a,
                            },
                        },
                    }
                ]
            },
        )
        with serve(gw) as (url, _):
            sdk = OpenAI(base_url=url + "/v1", api_key="unused")
            msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Salut"}]
            reply = sdk.chat.completions.create(model="claude", messages=msgs, max_tokens=50, stop=["END"])  # type: ignore[arg-type]
            assert (
                reply.choices[0].message.content == "Bonjour !" and reply.choices[0].finish_reason == "length"
            )
            assert reply.usage and reply.usage.prompt_tokens == 7
            assert stub.last == {
                "model": "claude-sonnet-4-5",
                "messages": [{"role": "user", "content": "Salut"}],
                "max_tokens": 50,
                "system": "Be brief.",
                "stop_sequences": ["END"],
            }
            assert stub.headers["x-api-key"] == "sk-ant-test" and stub.headers["anthropic-version"]
            chunks = list(sdk.chat.completions.create(model="claude", messages=msgs, stream=True))  # type: ignore[arg-type]
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Bonjour !"
            assert chunks[-1].choices[0].finish_reason == "stop"


def test_bedrock_converse_and_converse_stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    stub = BedrockStub()
    with serve(stub) as (b, _):
        gw = _gateway(
            tmp_path,
            {
                "endpoints": [
                    {
                        "name": "nova",
                        "endpoint_type": "llm/v1/chat",
                        "model": {
                            "provider": "bedrock",
                            "name": "amazon.nova-lite-v1:0",
                            "config": {"aws_config": {"aws_region": "us-east-1", "aws_endpoint_url": b}},
                        },
                    }
                ]
            },
        )
        with serve(gw) as (url, _):
            sdk = OpenAI(base_url=url + "/v1", api_key="unused")
            msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hola"}]
            reply = sdk.chat.completions.create(model="nova", messages=msgs, max_tokens=20, temperature=0.2)  # type: ignore[arg-type]
            assert reply.choices[0].message.content == "Hola amigo"
            assert stub.path == "/model/amazon.nova-lite-v1:0/converse"  # (the stub sees the decoded path)
            assert stub.last["system"] == [{"text": "Be brief."}]
            assert stub.last["messages"] == [{"role": "user", "content": [{"text": "Hola"}]}]
            assert stub.last["inferenceConfig"] == {"maxTokens": 20, "temperature": 0.2}
            chunks = list(sdk.chat.completions.create(model="nova", messages=msgs, stream=True))  # type: ignore[arg-type]
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hola amigo"
            assert stub.path.endswith("/converse-stream")


@pytest.mark.parametrize(
    "mutate,field,words",
    [
        (
            lambda c: c["routes"][0]["destinations"][0].update(traffic_percentage=60),
            "routes[chat]",
            "add up to 100",
        ),
        (lambda c: c["routes"][0]["destinations"][0].update(name="nope"), "routes", "not defined"),
        (
            lambda c: c["endpoints"][0]["model"]["config"].update(openai_api_key="sk-live-1234"),
            "openai_api_key",
            "written in the file",
        ),
        (
            lambda c: c["endpoints"][0]["model"]["config"].update(openai_api_key="$NOT_SET_ANYWHERE"),
            "openai_api_key",
            "NOT_SET_ANYWHERE",
        ),
        (lambda c: c["endpoints"][0].update(timeout=3), "endpoints[local-chat].timeout", "no such key"),
        (lambda c: c.pop("endpoints"), "endpoints", "required"),
    ],
)
def test_a_malformed_config_names_the_file_the_key_and_what_is_expected(
    tmp_path: Path, mutate: Any, field: str, words: str
) -> None:
    config = yaml.safe_load((ROOT / "gateway" / "gateway_config.yaml").read_text())
    mutate(config)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as err:
        build_gateway(str(path))
    text = err.value.render("en")
    assert str(path) in text and field in text and words in text, text


def test_the_shipped_files_load_here_and_in_mlflows_gateway_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.gateway.config import _load_gateway_config

    monkeypatch.setitem(os.environ, "MLFLOW_GATEWAY_RESOLVE_API_KEY_FROM_ENV", "true")
    for name in ("gateway_config.yaml", "gateway_ab_test.yaml"):
        ours = load_gateway_config(ROOT / "gateway" / name)
        theirs = _load_gateway_config(ROOT / "gateway" / name)
        assert [e.name for e in ours.endpoints] == [e.name for e in theirs.endpoints]
        assert [[d.traffic_percentage for d in r.destinations] for r in ours.routes] == [
            [d.traffic_percentage for d in r.destinations] for r in theirs.routes or []
        ]
