"""The A/B router: champion and challenger agent servers behind one port, a sticky split per user.

``flywheel serve --challenger URI --share 0.1`` starts both versions as runtimes (two agent
servers, each its own process, as in Kubernetes two Deployments behind a router) and this router
on the agent port. A Responses request goes to one arm:

- **Sticky**: by its user (``user``, ``metadata.user_id`` …), else session, else conversation
  thread, hashed with the experiment's name — the same person always meets the same version, and a
  second router replica makes the same choice; a follow-up (``previous_response_id``) goes where
  its conversation lives. A request with none of these is assigned at random.
- **Traced**: the router adds ``metadata.arm``, so every trace carries ``client.arm`` (the
  dashboard's and ``flywheel monitor ab``'s arm), and answers with the header ``X-Flywheel-Arm``.
- **Following the decision**: the experiment's state (``data/ab/<name>.json``) is re-read every
  two seconds; after ``promote`` every user goes to the challenger's arm, after ``rollback`` to
  the champion's.

Everything else (chat page, feedback, health, metrics, search) is passed to the champion's arm.
Streams are passed through as they arrive (httpx).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from flywheel.config import Settings
from flywheel.serving._protocol import request_context

__all__ = ["ABExperiment", "ab_dir", "arm_for", "build_ab_app", "load_experiment", "save_experiment"]

RESPONSE_PATHS = ("/v1/responses", "/responses", "/invocations")
HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive", "accept-encoding"}


@dataclass
class ABExperiment:
    name: str
    champion: str  # models:/NAME@champion (or a URI)
    challenger: str
    share: float  # of users sent to the challenger
    started_ms: int = 0
    status: str = "running"  # running | promoted | rolled_back
    alpha: float = 0.05
    tau: float = 0.1
    min_n: int = 30
    guard_margin: float = 0.02  # error / refusal rate the challenger may add before a guard trips
    latency_ratio: float = 1.5
    champion_version: str | None = None
    challenger_version: str | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def path_name(self) -> str:
        return "".join(c if c.isalnum() or c in "-_" else "-" for c in self.name)


def ab_dir(settings: Settings) -> Path:
    return settings.data_path / "ab"


def save_experiment(settings: Settings, exp: ABExperiment) -> Path:
    path = ab_dir(settings) / f"{exp.path_name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(exp), indent=2), encoding="utf-8")
    tmp.replace(path)  # the router never reads half a file
    return path


def load_experiment(settings: Settings, name: str = "default") -> ABExperiment | None:
    path = ab_dir(settings) / f"{name}.json"
    try:
        return ABExperiment(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def arm_for(exp: ABExperiment | None, key: str | None) -> str:
    """``champion`` or ``challenger`` for a user/session key (None: at random)."""
    if exp is None or exp.status == "rolled_back" or exp.share <= 0:
        return "champion"
    if exp.status == "promoted" or exp.share >= 1:
        return "challenger"
    key = key or uuid.uuid4().hex
    h = int(hashlib.sha256(f"{exp.name}:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "challenger" if h < exp.share else "champion"


def build_ab_app(
    settings: Settings,
    urls: dict[str, str],
    experiment: str = "default",
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The router for the arms at ``urls`` (``champion``, ``challenger``); ``transport`` for tests."""
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.serve_timeout + 30, connect=5.0), transport=transport
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = FastAPI(title="flywheel A/B router", docs_url=None, redoc_url=None, lifespan=lifespan)
    cache: dict[str, Any] = {"at": 0.0, "exp": None}
    conversations: OrderedDict[str, str] = OrderedDict()  # response id → arm (the last 50,000)

    def current() -> ABExperiment | None:
        if time.monotonic() - cache["at"] > 2.0:
            cache["exp"], cache["at"] = load_experiment(settings, experiment), time.monotonic()
        return cache["exp"]

    def remember(resp_id: str | None, arm: str) -> None:
        if resp_id:
            conversations[resp_id] = arm
            while len(conversations) > 50_000:
                conversations.popitem(last=False)

    def headers_of(request: Request) -> dict[str, str]:
        return {k: v for k, v in request.headers.items() if k.lower() not in HOP}

    @app.get("/ab")
    async def status() -> dict[str, Any]:
        exp = current()
        return {
            "experiment": experiment,
            "status": exp.status if exp else "none",
            "share": exp.share if exp else 0.0,
            "arms": urls,
        }

    async def responses(request: Request, path: str) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):  # the arm says what is wrong with it
            return await passthrough(request, path, "champion")
        prev = body.get("previous_response_id")
        arm = conversations.get(prev) if isinstance(prev, str) else None
        if arm is None:
            try:
                ctx = request_context(body)
                key = ctx.user_id or ctx.session_id or ctx.thread_id
            except Exception:  # invalid: the arm answers 400 with the reason
                key = None
            arm = arm_for(current(), key)
        raw = body.get("metadata")
        meta: dict[str, Any] = raw if isinstance(raw, dict) else {}
        # first: the agent server keeps a request's first 8 metadata keys as trace tags
        body["metadata"] = {"arm": arm, **{k: v for k, v in meta.items() if k != "arm"}}
        url = f"{urls[arm]}{path}"
        headers = {**headers_of(request), "content-type": "application/json"}
        if body.get("stream"):
            req = client.build_request("POST", url, json=body, headers=headers)
            upstream = await client.send(req, stream=True)

            async def relay() -> AsyncIterator[bytes]:
                seen = False
                try:
                    async for chunk in upstream.aiter_raw():
                        if not seen and b'"resp_' in chunk:
                            start = chunk.index(b'"resp_') + 1
                            remember(chunk[start : chunk.index(b'"', start)].decode(errors="ignore"), arm)
                            seen = True
                        yield chunk
                finally:
                    await upstream.aclose()

            out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP}
            return StreamingResponse(
                relay(), status_code=upstream.status_code, headers={**out_headers, "X-Flywheel-Arm": arm}
            )
        r = await client.post(url, json=body, headers=headers)
        try:
            data = r.json()
            remember(data.get("id") if isinstance(data, dict) else None, arm)
        except ValueError:
            data = None
        out_headers = {k: v for k, v in r.headers.items() if k.lower() not in HOP}
        if data is None:
            return Response(
                r.content, status_code=r.status_code, headers={**out_headers, "X-Flywheel-Arm": arm}
            )
        return JSONResponse(data, status_code=r.status_code, headers={**out_headers, "X-Flywheel-Arm": arm})

    async def passthrough(request: Request, path: str, arm: str) -> Response:
        r = await client.request(
            request.method,
            f"{urls[arm]}{path}",
            params=request.query_params,
            content=await request.body(),
            headers=headers_of(request),
        )
        out_headers = {k: v for k, v in r.headers.items() if k.lower() not in HOP}
        return Response(r.content, status_code=r.status_code, headers=out_headers)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE"])
    async def route(request: Request, path: str) -> Response:
        path = "/" + path
        if request.method == "POST" and path in RESPONSE_PATHS:
            return await responses(request, path)
        return await passthrough(request, path, "champion")

    return app
