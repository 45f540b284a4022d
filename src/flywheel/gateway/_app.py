"""The gateway's server: OpenAI-compatible ``/v1/chat/completions`` (streaming and not),
``/v1/embeddings``, ``/v1/models``, ``/health``, ``/stats`` and ``/metrics`` (Prometheus).

A raw ASGI application rather than a framework: the hot path — read the body, pick the route and
arm, check the limits, one pooled upstream request, pass the answer back — is a few dozen
microseconds of Python, and a framework's routing, validation and middleware would cost more than
that (bench/gateway.py measures it against a minimal proxy, LiteLLM and MLflow's gateway).

Per request: client key check; route lookup (route name, endpoint name, ``gateway.default_route``,
then an endpoint serving that model name); the route's and the endpoint's rate limits (token buckets per replica,
or one moving window in a shared store such as Redis for all replicas → 429 with Retry-After); the A/B arm (weighted; sticky per session or user by hash); destinations in order
— the arm, then the route's ``fallbacks`` — each with ``retries`` and backoff, skipping destinations
cooling down after a failure. The arm and the endpoint that answered are returned in
``x-flywheel-arm`` and ``x-flywheel-endpoint`` (the agent records them on its trace). A stream that
breaks after its first byte ends with an SSE error event, never a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import random
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.gateway._config import (
    EndpointConfig,
    GatewayConfig,
    Limit,
    RouteConfig,
    resolve_client_keys,
    secrets_of,
)
from flywheel.gateway._providers import Provider, Reply, Retryable, StreamBroken, make_provider

__all__ = ["Gateway"]

log = logging.getLogger("flywheel.gateway")

MAX_BODY = 4 * 1024 * 1024


class _Bucket:
    """A token bucket: ``calls`` per period, bursts up to ``calls``."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, limit: Limit) -> None:
        self.capacity = float(limit.calls)
        self.rate = limit.per_second
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0 when allowed, else the seconds until a call is allowed."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class _SharedLimits:
    """Rate limits counted in a shared store through the `limits` library (a moving window per route
    or endpoint, keyed by name), so every replica of the gateway draws from the same allowance.

    The in-memory default stays a token bucket of our own (``_Bucket``): it costs nothing on the hot
    path; a shared store costs one round trip per request (~0.2 ms to a local Redis). When the store
    cannot be reached the request is admitted (the limit protects a provider's quota; refusing all
    traffic because Redis blinked would be worse) and ``/stats`` counts it."""

    def __init__(self, uri: str, limits: dict[str, Limit]) -> None:
        from limits import (
            RateLimitItemPerDay,
            RateLimitItemPerHour,
            RateLimitItemPerMinute,
            RateLimitItemPerSecond,
        )
        from limits.aio.strategies import MovingWindowRateLimiter
        from limits.storage import storage_from_string

        kinds = {
            "second": RateLimitItemPerSecond,
            "minute": RateLimitItemPerMinute,
            "hour": RateLimitItemPerHour,
            "day": RateLimitItemPerDay,
        }
        scheme = uri if uri.startswith("async+") else "async+" + uri
        options = {"implementation": "redispy"} if "redis" in scheme else {}
        self.storage = storage_from_string(scheme, key_prefix="flywheel-gateway", **options)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.items = {key: kinds[lim.renewal_period](lim.calls) for key, lim in limits.items()}
        self.errors = 0

    async def take(self, key: str) -> float:
        item = self.items.get(key)
        if item is None:
            return 0.0
        try:
            if await self.limiter.hit(item, key):
                return 0.0
            stats = await self.limiter.get_window_stats(item, key)
        except Exception as exc:  # the store is away: admit, count, say so once in a while
            self.errors += 1
            if self.errors in (1, 10, 100) or self.errors % 1000 == 0:
                log.warning("shared rate-limit store unreachable (%s); admitting", str(exc)[:200])
            return 0.0
        return max(0.05, stats.reset_time - time.time())


@dataclass
class _ArmStats:
    requests: int = 0
    errors: int = 0
    fallbacks: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=4096))

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def q(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(len(lat) * p))] * 1000, 2) if lat else None

        return {
            "requests": self.requests,
            "errors": self.errors,
            "fallbacks": self.fallbacks,
            "latency_p50_ms": q(0.5),
            "latency_p95_ms": q(0.95),
        }


class Gateway:
    """The ASGI app. ``Gateway(config, path)`` resolves keys now; providers start on lifespan."""

    def __init__(self, config: GatewayConfig, path: Path, limits_storage: str | None = None) -> None:
        self.config = config
        secrets = secrets_of(config, path)
        self.client_keys = [k.encode() for k in resolve_client_keys(config, path)]
        self.providers: dict[str, Provider] = {
            e.name: make_provider(e, secrets[e.name]) for e in config.endpoints
        }
        self.endpoints: dict[str, EndpointConfig] = {e.name: e for e in config.endpoints}
        self.routes: dict[str, RouteConfig] = {r.name: r for r in config.routes}
        self.by_model: dict[str, str] = {}
        for e in config.endpoints:
            self.by_model.setdefault(e.model.name, e.name)
        limits = {"endpoint:" + e.name: e.limit for e in config.endpoints if e.limit}
        limits |= {"route:" + r.name: r.limit for r in config.routes if r.limit}
        self.buckets: dict[str, _Bucket] = {}
        self.shared: _SharedLimits | None = None
        shared_uri = limits_storage or config.gateway.limits_storage
        if shared_uri and limits:
            self.shared = _SharedLimits(shared_uri, limits)
        else:
            self.buckets = {key: _Bucket(lim) for key, lim in limits.items()}
        self.rejected: dict[str, int] = {}
        self.cooldown_until: dict[str, float] = {}
        self.arm_stats: dict[tuple[str, str], _ArmStats] = {}
        self.endpoint_stats: dict[str, _ArmStats] = {e.name: _ArmStats() for e in config.endpoints}
        self.inflight = 0
        self.started = time.time()

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                pools: dict[str, Any] = {}
                for p in self.providers.values():
                    await p.start(pools)
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                for p in self.providers.values():
                    with contextlib.suppress(Exception):
                        await p.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path, method = scope["path"], scope["method"]
        if path == "/health":
            await _json(send, 200, {"status": "OK"})
            return
        if self.client_keys and not self._authorized(scope):
            await _json(
                send, 401, _err("missing or wrong API key (Authorization: Bearer …)", "authentication_error")
            )
            return
        if method == "POST" and path in ("/v1/chat/completions", "/chat/completions"):
            await self._serve(scope, receive, send, "llm/v1/chat")
        elif method == "POST" and path in ("/v1/embeddings", "/embeddings"):
            await self._serve(scope, receive, send, "llm/v1/embeddings")
        elif method == "GET" and path in ("/v1/models", "/models"):
            await _json(send, 200, self._models())
        elif method == "GET" and path == "/stats":
            await _json(send, 200, self.stats())
        elif method == "GET" and path == "/metrics":
            body = self.metrics()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")],
                }
            )
            await send({"type": "http.response.body", "body": body})
        else:
            await _json(send, 404, _err(f"no such path: {method} {path}", "not_found"))

    def _authorized(self, scope: dict[str, Any]) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                given = value[7:] if value[:7].lower() == b"bearer " else value
                return any(hmac.compare_digest(given, k) for k in self.client_keys)
        return False

    # ------------------------------------------------------------------ the hot path
    async def _serve(self, scope: dict[str, Any], receive: Any, send: Any, task: str) -> None:
        t0 = time.perf_counter()
        raw = b""
        more = True
        while more:
            msg = await receive()
            raw += msg.get("body", b"")
            more = msg.get("more_body", False)
            if len(raw) > MAX_BODY:
                await _json(send, 413, _err(f"request body over {MAX_BODY} bytes", "invalid_request_error"))
                return
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            await _json(send, 400, _err(f"the body is not a JSON object: {exc}", "invalid_request_error"))
            return
        route, endpoints, arm = self._plan(body, scope, task)
        if not endpoints:
            await _json(
                send, 404, _err(f"no route or endpoint serves model {body.get('model')!r}", "model_not_found")
            )
            return
        wait = await self._limited(route, endpoints[0])
        if wait:
            await _json(
                send,
                429,
                _err(
                    f"rate limit of {route or endpoints[0]} reached; retry in {wait:.1f} s",
                    "rate_limit_error",
                ),
                [(b"retry-after", str(math.ceil(wait)).encode())],
            )
            return
        if self.inflight >= self.config.gateway.max_inflight:
            await _json(
                send,
                503,
                _err("the gateway is at capacity; retry shortly", "overloaded"),
                [(b"retry-after", b"1")],
            )
            return
        self.inflight += 1
        try:
            await self._forward(send, body, task, route, arm, endpoints, t0)
        finally:
            self.inflight -= 1

    def _plan(self, body: dict[str, Any], scope: dict[str, Any], task: str) -> tuple[str, list[str], str]:
        """(route name or "", destinations in order, the A/B arm)."""
        model = body.get("model") or ""
        route = self.routes.get(model)
        if route is None and model not in self.endpoints:
            # a model name nothing is called: the default route, else an endpoint serving that
            # model, else the only route of this kind
            default = self.config.gateway.default_route
            route = self.routes.get(default) if default else None
            if route is None and model not in self.by_model:
                same = [r for r in self.routes.values() if r.task_type == task]
                route = same[0] if len(same) == 1 else None
        if route is None:
            name = model if model in self.endpoints else self.by_model.get(model)
            return "", ([name] if name else []), name or ""
        arm = self._arm(route, body, scope)
        order = [arm, *[f for f in route.fallbacks if f != arm]]
        now = time.monotonic()
        ready = [e for e in order if self.cooldown_until.get(e, 0) <= now]
        return route.name, ready or order, arm

    def _arm(self, route: RouteConfig, body: dict[str, Any], scope: dict[str, Any]) -> str:
        dests = route.destinations
        if len(dests) == 1:
            return dests[0].name
        key = None
        if route.sticky != "none":
            key = _sticky_key(route.sticky, body, scope)
        point = (zlib.crc32(f"{route.name}:{key}".encode()) % 10000) / 100 if key else random.random() * 100
        acc = 0.0
        for d in dests:
            acc += d.traffic_percentage
            if point < acc:
                return d.name
        return dests[-1].name

    async def _limited(self, route: str, endpoint: str) -> float:
        for key in (f"route:{route}", f"endpoint:{endpoint}"):
            if self.shared is not None:
                wait = await self.shared.take(key)
            else:
                bucket = self.buckets.get(key)
                wait = bucket.take() if bucket is not None else 0.0
            if wait:
                self.rejected[key] = self.rejected.get(key, 0) + 1
                return wait
        return 0.0

    async def _forward(
        self,
        send: Any,
        body: dict[str, Any],
        task: str,
        route: str,
        arm: str,
        endpoints: list[str],
        t0: float,
    ) -> None:
        stream = bool(body.get("stream")) and task == "llm/v1/chat"
        last: Retryable | None = None
        stats = self.arm_stats.get((route, arm))
        if stats is None:
            stats = self.arm_stats[(route, arm)] = _ArmStats()
        stats.requests += 1
        backoff = self.config.gateway.retry_backoff_s
        for n, name in enumerate(endpoints):
            ep, provider = self.endpoints[name], self.providers[name]
            for attempt in range(ep.retries + 1):
                self.endpoint_stats[name].requests += 1
                try:
                    reply = await (
                        provider.chat(body, stream) if task == "llm/v1/chat" else provider.embeddings(body)
                    )
                except Retryable as exc:
                    last = exc
                    self.endpoint_stats[name].errors += 1
                    if attempt < ep.retries:
                        await asyncio.sleep(backoff * (2**attempt))
                        continue
                    self.cooldown_until[name] = time.monotonic() + self.config.gateway.cooldown_s
                    break
                if n:
                    stats.fallbacks += 1
                headers = [
                    (b"content-type", reply.content_type.encode()),
                    (b"x-flywheel-route", route.encode()),
                    (b"x-flywheel-arm", arm.encode()),
                    (b"x-flywheel-endpoint", name.encode()),
                ]
                ok = await self._reply(send, reply, headers, name)
                if not ok or reply.status >= 400:
                    stats.errors += 1
                stats.latencies.append(time.perf_counter() - t0)
                return
        stats.errors += 1
        status = last.status if last and last.status == 429 else 502
        extra = (
            [(b"retry-after", str(math.ceil(last.retry_after)).encode())] if last and last.retry_after else []
        )
        await _json(
            send,
            status,
            _err(
                f"every destination failed ({', '.join(endpoints)}); last: {last.message if last else '?'}",
                "upstream_error",
            ),
            [(b"x-flywheel-route", route.encode()), (b"x-flywheel-arm", arm.encode()), *extra],
        )

    async def _reply(self, send: Any, reply: Reply, headers: list[tuple[bytes, bytes]], name: str) -> bool:
        if reply.stream is None:
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            await send({"type": "http.response.body", "body": reply.body or b""})
            return True
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [*headers, (b"cache-control", b"no-cache")],
            }
        )
        try:
            async for chunk in reply.stream:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except StreamBroken as exc:  # after the first byte: tell the client, close cleanly
            self.endpoint_stats[name].errors += 1
            self.cooldown_until[name] = time.monotonic() + self.config.gateway.cooldown_s
            event = json.dumps(
                {"error": {"message": f"the upstream stream broke: {exc}", "type": "upstream_error"}}
            )
            await send(
                {"type": "http.response.body", "body": f"data: {event}\n\n".encode(), "more_body": False}
            )
            return False
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return True

    # ------------------------------------------------------------------ info
    def _models(self) -> dict[str, Any]:
        now = int(self.started)
        data = [
            {"id": r, "object": "model", "created": now, "owned_by": "flywheel-route"} for r in self.routes
        ]
        data += [
            {"id": e.name, "object": "model", "created": now, "owned_by": e.model.provider}
            for e in self.endpoints.values()
        ]
        return {"object": "list", "data": data}

    def metrics(self) -> bytes:
        """This replica's counters in Prometheus' text format: with N replicas, Prometheus sums them
        (``sum by (route, arm) (rate(flywheel_gateway_requests_total[5m]))``)."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        gateway = self

        class _Collector:
            def collect(self) -> Any:
                kinds = ("requests", "errors", "fallbacks")
                arm = {
                    k: CounterMetricFamily(
                        f"flywheel_gateway_{k}", f"{k} per route and arm", labels=["route", "arm"]
                    )
                    for k in kinds
                }
                for (r, a), s in gateway.arm_stats.items():
                    for k in kinds:
                        arm[k].add_metric([r or "(direct)", a], getattr(s, k))
                ep = CounterMetricFamily(
                    "flywheel_gateway_endpoint_requests", "requests per endpoint", labels=["endpoint"]
                )
                ep_err = CounterMetricFamily(
                    "flywheel_gateway_endpoint_errors", "errors per endpoint", labels=["endpoint"]
                )
                for name, s in gateway.endpoint_stats.items():
                    ep.add_metric([name], s.requests)
                    ep_err.add_metric([name], s.errors)
                limited = CounterMetricFamily(
                    "flywheel_gateway_rate_limited", "requests answered 429", labels=["limit"]
                )
                for key, n in gateway.rejected.items():
                    limited.add_metric([key], n)
                inflight = GaugeMetricFamily("flywheel_gateway_inflight", "requests in flight")
                inflight.add_metric([], gateway.inflight)
                yield from (*arm.values(), ep, ep_err, limited, inflight)

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector())  # type: ignore[arg-type]
        return generate_latest(registry)

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "uptime_s": round(time.time() - self.started, 1),
            "inflight": self.inflight,
            "rate_limited": dict(self.rejected),
            "limits": "shared" if self.shared is not None else "per replica",
            "limit_store_errors": self.shared.errors if self.shared is not None else 0,
            "arms": [
                {"route": r or "(direct)", "arm": a, **s.summary()}
                for (r, a), s in sorted(self.arm_stats.items())
            ],
            "endpoints": [
                {
                    "endpoint": name,
                    **s.summary(),
                    "cooling_down_s": round(max(0.0, self.cooldown_until.get(name, 0) - now), 1),
                }
                for name, s in self.endpoint_stats.items()
            ],
        }


def _sticky_key(kind: str, body: dict[str, Any], scope: dict[str, Any]) -> str | None:
    headers = dict(scope["headers"])
    if kind == "session":
        for h in (b"x-session-id", b"x-flywheel-session"):
            if h in headers:
                return headers[h].decode(errors="replace")
        meta = body.get("metadata")
        if isinstance(meta, dict) and meta.get("session_id"):
            return str(meta["session_id"])
    user = body.get("user") or headers.get(b"x-user-id", b"").decode(errors="replace")
    return str(user) if user else None


def _err(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind}}


async def _json(
    send: Any, status: int, payload: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *(extra or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})
