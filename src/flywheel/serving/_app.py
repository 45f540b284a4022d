"""The Agent Server: the OpenAI Responses API (invoke and stream), health, auth, limits, chat page.

Every request is an MLflow trace carrying the request id and the version identity. Limits answer
instead of queueing forever: oversize bodies 413, a full queue 429 with Retry-After, no free slot
in time 503 with Retry-After, a request over its time budget 504; malformed input 400; nothing a
client sends produces a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError

from flywheel.agent import check_question
from flywheel.config import Settings
from flywheel.errors import InputError
from flywheel.llm import CANCEL
from flywheel.registry import LoadedAgent
from flywheel.serving._metrics import CONTENT_TYPE, ServerMetrics
from flywheel.serving._protocol import (
    RequestContext,
    ResponsesRequest,
    StreamWriter,
    message_item,
    new_id,
    request_context,
    response_object,
)
from flywheel.tracking import TraceLedger, active_spool

__all__ = ["ServerLimits", "build_app"]

log = logging.getLogger("flywheel.serving")
CHAT_PAGE = Path(__file__).with_name("chat.html")
STATIC = Path(__file__).with_name("static")
# the chat page's vendored renderer and sanitizer (static/README.md), served without a key like the page
STATIC_FILES = {"/static/marked.umd.js", "/static/purify.min.js"}
RETRY_AFTER_S = 2
READY_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class ServerLimits:
    max_concurrency: int = 4
    max_queue: int = 32
    queue_timeout: float = 30.0
    request_timeout: float = 180.0
    max_body_bytes: int = 64 * 1024

    @classmethod
    def from_settings(cls, s: Settings) -> ServerLimits:
        return cls(
            s.serve_max_concurrency,
            s.serve_max_queue,
            min(30.0, s.serve_timeout),
            s.serve_timeout,
            s.serve_max_body_bytes,
        )


class SearchRequest(BaseModel):
    query: str
    k: int | None = None


class Feedback(BaseModel):
    trace_id: str
    value: bool
    comment: str | None = None
    user: str | None = None


def _error(
    status: int,
    message: str,
    request_id: str,
    headers: dict[str, str] | None = None,
    code: str | None = None,
) -> JSONResponse:
    body = {
        "error": {
            "message": message,
            "type": "invalid_request_error" if status < 500 else "server_error",
            "code": code or _DEFAULT_CODES.get(status, "error"),
            "status": status,
            "request_id": request_id,
        }
    }
    return JSONResponse(body, status_code=status, headers={"X-Request-ID": request_id, **(headers or {})})


_DEFAULT_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    404: "not_found",
    408: "body_timeout",
    413: "request_too_large",
    431: "headers_too_large",
    429: "rate_limited",
    503: "unavailable",
    504: "timeout",
}


def classify_failure(exc: BaseException) -> tuple[int, str, str]:
    """(HTTP status, stable code, message) for an exception raised while answering: a dependency
    that failed is a 503 the client may retry, input the LLM rejected is a 400, anything else a 500."""
    from flywheel.errors import FlywheelError, InputError, ServiceError
    from flywheel.llm import Cancelled

    if isinstance(exc, Cancelled):
        return 499, "client_gone", "the client went away; its LLM request was cancelled"
    if isinstance(exc, InputError):
        return 400, "invalid_input", exc.parts("en")[0]
    if isinstance(exc, FlywheelError):
        what = exc.parts("en")[0]
        if exc.key == "llm_http_error":
            status = int(exc.params.get("status", 500))
            if status in (400, 413, 422):
                return 400, "llm_rejected_input", f"{what} {str(exc.params.get('detail', ''))[:200]}".strip()
            return 503, "llm_unavailable", what
        if exc.key == "llm_unreachable":
            return 503, "llm_unavailable", what
        if exc.key in ("index_unavailable", "index_empty"):
            return 503, exc.key, what
        if isinstance(exc, ServiceError):
            return 503, "dependency_unavailable", what
        return 500, "agent_error", what
    module = type(exc).__module__
    if module.startswith(("pymilvus", "grpc")):
        return 503, "index_unavailable", "the vector index is not usable; retry shortly"
    if module.startswith(("httpx", "httpcore")):
        return 503, "llm_unavailable", "the LLM is not reachable; retry shortly"
    return 500, "internal_error", "internal error; the server log has the details"


class _Failure(Exception):
    """A failure already classified: answered with its status, code and message, one log line."""

    def __init__(self, status: int, code: str, message: str, request_id: str) -> None:
        self.status, self.code, self.message, self.request_id = status, code, message, request_id


class _Slots:
    """A concurrency limit with a bounded queue."""

    def __init__(self, limits: ServerLimits) -> None:
        self.limits = limits
        self.sem = asyncio.Semaphore(limits.max_concurrency)
        self.waiting = 0
        self.in_use = 0

    async def acquire(self, request_id: str) -> None:
        """Take a slot, waiting in the bounded queue: 429 when the queue is full, 503 on timeout."""
        if self.sem.locked() and self.waiting >= self.limits.max_queue:
            raise _Reject(429, "too many requests are waiting; retry later", request_id)
        self.waiting += 1
        try:
            await asyncio.wait_for(self.sem.acquire(), timeout=self.limits.queue_timeout)
        except TimeoutError as exc:
            raise _Reject(503, "no free slot in time; retry later", request_id) from exc
        finally:
            self.waiting -= 1
        self.in_use += 1

    def release(self) -> None:
        self.in_use -= 1
        self.sem.release()

    @contextlib.asynccontextmanager
    async def slot(self, request_id: str) -> AsyncIterator[None]:
        await self.acquire(request_id)
        try:
            yield
        finally:
            self.release()


class _Reject(Exception):
    def __init__(self, status: int, message: str, request_id: str) -> None:
        self.status, self.message, self.request_id = status, message, request_id


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
MAX_HEADER_BYTES = 16 * 1024


class _Guard:
    """Pure ASGI middleware (Starlette's BaseHTTPMiddleware costs milliseconds per request): request
    ids (a client's id is kept when it is 1-128 safe characters, else replaced), the header size
    limit (431), the API-key check, the body-size limit from Content-Length, the status counter for
    /metrics, and the last resort for bugs: one log line with the traceback and a JSON 500 — not the
    second traceback Starlette's error middleware would add by re-raising."""

    def __init__(
        self, app: Any, api_key: str | None, open_paths: set[str], max_body: int, metrics: Any
    ) -> None:
        self.app, self.api_key, self.open_paths, self.max_body = app, api_key, open_paths, max_body
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_headers = scope.get("headers", [])
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw_headers}
        given_id = headers.get("x-request-id", "")
        request_id = given_id if _REQUEST_ID.fullmatch(given_id) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status: dict[str, int] = {"code": 0}

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                existing = list(message.get("headers", []))
                if not any(k.lower() == b"x-request-id" for k, _ in existing):
                    message["headers"] = [*existing, (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self._handle(scope, receive, send_with_id, headers, raw_headers, request_id)
        except Exception:
            log.exception("unhandled error (request %s)", request_id)
            if not status["code"]:
                await _error(500, "internal error; the server log has the details", request_id)(
                    scope, receive, send_with_id
                )
        finally:
            self.metrics.requests(scope["path"], status["code"] or 500)

    async def _handle(
        self, scope: dict, receive: Any, send: Any, headers: dict, raw: list, request_id: str
    ) -> None:
        if sum(len(k) + len(v) for k, v in raw) > MAX_HEADER_BYTES:
            resp = _error(431, f"request headers over {MAX_HEADER_BYTES} bytes", request_id)
            resp.headers["Connection"] = "close"
            await resp(scope, receive, send)
            return
        if self.api_key and scope["path"] not in self.open_paths:
            given = headers.get("authorization", "").removeprefix("Bearer ").strip() or headers.get(
                "x-api-key", ""
            )
            if not given or not hmac.compare_digest(given.encode(), self.api_key.encode()):
                resp = _error(
                    401,
                    "missing or wrong API key (send Authorization: Bearer <key>)",
                    request_id,
                    {"WWW-Authenticate": "Bearer"},
                )
                await resp(scope, receive, send)
                return
        length = headers.get("content-length", "")
        if scope["method"] == "POST" and length.isdigit() and int(length) > self.max_body:
            resp = _error(413, f"request body over {self.max_body} bytes", request_id)
            resp.headers["Connection"] = "close"
            await resp(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _ledger() -> TraceLedger:
    """The spool's ledger when traces are spooled (it also learns what was exported), else a new one."""
    spool = active_spool()
    return spool.ledger if spool is not None else TraceLedger()


def build_app(settings: Settings, loaded: LoadedAgent, limits: ServerLimits | None = None) -> FastAPI:
    limits = limits or ServerLimits.from_settings(settings)
    app = FastAPI(title="flywheel agent server", docs_url="/docs", redoc_url=None)
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    slots = _Slots(limits)
    open_paths = {"/health", "/ping", "/ready", "/metrics", "/", "/favicon.ico", *STATIC_FILES}
    last_checks: dict[str, bool] = {}
    ledger = _ledger()

    def _state() -> dict[str, Any]:
        spool = active_spool()
        return {
            "queue_depth": slots.waiting,
            "slots_in_use": slots.in_use,
            "slots_total": limits.max_concurrency,
            "dependencies": dict(last_checks),
            "spool": spool.stats() if spool else {},
        }

    metrics = ServerMetrics(_state)
    app.add_middleware(
        _Guard, api_key=api_key, open_paths=open_paths, max_body=limits.max_body_bytes, metrics=metrics
    )

    @app.exception_handler(_Reject)
    async def _reject(request: Request, exc: _Reject) -> JSONResponse:
        return _error(exc.status, exc.message, exc.request_id, {"Retry-After": str(RETRY_AFTER_S)})

    @app.exception_handler(_Failure)
    async def _failure(request: Request, exc: _Failure) -> JSONResponse:
        headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.status == 503 else {}
        if exc.status in (408, 413):  # the rest of the body may still be on its way: do not reuse
            headers["Connection"] = "close"
        return _error(exc.status, exc.message, exc.request_id, headers, exc.code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, f"invalid request: {exc.errors()[0].get('msg')}", request.state.request_id)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), getattr(request.state, "request_id", "-"))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        """The Amazon Bedrock AgentCore Runtime container contract (with POST /invocations)."""
        return {"status": "HealthyBusy" if slots.in_use else "Healthy"}

    async def _check() -> dict[str, Any]:
        """Probe what answering needs, at most READY_TIMEOUT_S each, in parallel."""
        agent = loaded.agent
        llm_base = getattr(agent.llm, "base_url", None)  # an HTTP chat model; None for in-process ones
        needs_llm = bool(llm_base) and (agent.config.policy != "grounded" or agent.config.lead_sentence)

        async def probe(fn: Any) -> bool:
            try:
                return bool(await asyncio.wait_for(asyncio.to_thread(fn), timeout=READY_TIMEOUT_S))
            except Exception:  # unreachable or slow: not ready, not an error
                return False

        from flywheel.stack import reachable
        from flywheel.tracking import tracking_reachable

        index, llm, tracking = await asyncio.gather(
            probe(agent.kb.index.ping),
            probe(lambda: reachable(str(llm_base).rstrip("/") + "/models", READY_TIMEOUT_S))
            if needs_llm
            else asyncio.sleep(0, result=True),
            probe(lambda: tracking_reachable(settings))
            if settings.serve_trace
            else asyncio.sleep(0, result=True),
        )
        last_checks.update(index=index, tracking=tracking)
        if needs_llm:
            last_checks["llm"] = llm
        return {
            "index": index,
            "llm": llm if needs_llm else "not needed",
            "tracking": tracking,
        }

    @app.get("/ready")
    async def ready() -> JSONResponse:
        """Readiness for a load balancer / Kubernetes readinessProbe: the index answers a real query,
        the LLM answers (when the policy needs it); the tracking server being down only degrades
        tracing (traces wait in the spool). /health stays a liveness check (the process is up)."""
        checks = await _check()
        ok = bool(checks["index"] and checks["llm"])
        spool = active_spool()
        stats = spool.stats() if spool else {}
        tracing = "ok" if checks["tracking"] and not stats.get("spool_batches") else "degraded"
        body = {"ready": ok, "checks": checks, "tracing": tracing, **loaded.identity}
        if spool:
            body["spool"] = stats
        headers = {} if ok else {"Retry-After": str(RETRY_AFTER_S)}
        return JSONResponse(body, status_code=200 if ok else 503, headers=headers)

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        """Prometheus text format: requests by path and status, queue depth, slots in use,
        dependency health (from a fresh check), trace spool size, dropped traces."""
        await _check()
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/agent/info")
    async def info() -> dict[str, Any]:
        return {
            "name": loaded.model_name,
            "agent_api": "responses",
            **loaded.identity,
            "config": loaded.agent.config.model_dump(exclude={"system_prompt"}),
        }

    @app.get("/", response_class=HTMLResponse)
    async def chat_page() -> HTMLResponse:
        return HTMLResponse(CHAT_PAGE.read_text(encoding="utf-8"))

    @app.get("/static/{name}")
    async def static(name: str) -> Response:
        if f"/static/{name}" not in STATIC_FILES:
            raise HTTPException(404, "not found")
        return Response(
            (STATIC / name).read_bytes(),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    async def _parse(request: Request) -> RequestContext:
        rid = request.state.request_id
        try:  # a client that sends less than its Content-Length must not hold the connection forever
            raw = await asyncio.wait_for(request.body(), timeout=settings.serve_body_timeout)
        except TimeoutError as exc:
            raise _Failure(
                408,
                "body_timeout",
                f"the request body did not arrive in {settings.serve_body_timeout:g} s",
                rid,
            ) from exc
        if len(raw) > limits.max_body_bytes:
            raise _Failure(413, "request_too_large", f"request body over {limits.max_body_bytes} bytes", rid)
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPException(400, f"invalid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise HTTPException(400, "the body must be a JSON object with an 'input' field")
        try:
            req = ResponsesRequest.model_validate(data)
            for key, value in (req.custom_inputs or {}).items():
                if key in ("thread_id", "user_id", "session_id") and not isinstance(value, str | None):
                    raise HTTPException(400, f"invalid request: custom_inputs.{key} must be a string")
            ctx = request_context(req)
            check_question(ctx.question, settings.max_question_chars)
        except InputError as exc:
            raise HTTPException(400, exc.parts("en")[0]) from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise HTTPException(400, f"invalid request: {where}: {first['msg']}") from exc
        except ValueError as exc:
            raise HTTPException(400, f"invalid request: {exc}") from exc
        return ctx

    def _kwargs(ctx: RequestContext, request_id: str) -> dict[str, Any]:
        thread = (
            ctx.thread_id
            or (
                loaded.agent.threads.thread_of(ctx.previous_response_id) if ctx.previous_response_id else None
            )
            or uuid.uuid4().hex
        )
        return ctx.agent_kwargs(thread, request_id=request_id)

    def _meta(answer: Any, request_id: str) -> dict[str, Any]:
        return {
            "trace_id": answer.trace_id or "",
            "request_id": request_id,
            "thread_id": answer.thread_id,
            **{k: v for k, v in loaded.identity.items() if v},
            **({"flywheel.identity": json.dumps(answer.identity)} if answer.identity else {}),
        }

    def _refused_upfront(ctx: RequestContext) -> bool:
        """A question the agent's guardrail refuses needs no slot: it never reaches the LLM. The
        agent decides (its policy, in one place); the server only asks."""
        agent = loaded.agent
        return bool(agent.config.guardrails) and not agent.screen_input(ctx.question, judge=False).allowed

    async def _invoke(ctx: RequestContext, request_id: str) -> dict[str, Any]:
        slot = contextlib.nullcontext() if _refused_upfront(ctx) else slots.slot(request_id)
        cancel = threading.Event()
        CANCEL.set(cancel)  # copied into the worker thread: the LLM request stops when it is set
        async with slot:
            try:
                answer = await asyncio.wait_for(
                    asyncio.to_thread(loaded.agent.ask, ctx.question, **_kwargs(ctx, request_id)),
                    timeout=limits.request_timeout,
                )
            except TimeoutError as exc:
                cancel.set()
                raise HTTPException(
                    504, f"the agent did not answer within {limits.request_timeout:.0f} s"
                ) from exc
            except asyncio.CancelledError:  # the client went away
                cancel.set()
                raise
            except Exception as exc:  # classified: a dependency outage is a 503, not a 500
                status, code, message = classify_failure(exc)
                if status >= 500 and code in ("internal_error", "agent_error"):
                    log.exception("agent failed (request %s)", request_id)
                else:
                    log.warning(
                        "request %s: %s (%s: %s)", request_id, code, type(exc).__name__, str(exc)[:300]
                    )
                raise _Failure(status, code, message, request_id) from exc
        resp_id = new_id("resp")
        await asyncio.to_thread(loaded.agent.threads.link, resp_id, answer.thread_id)  # may be a shared DB
        ledger.answered(answer.trace_id or "")
        return response_object(
            resp_id,
            loaded.model_name,
            int(time.time()),
            output=[message_item(new_id("msg"), answer.answer)],
            usage=answer.usage,
            metadata=_meta(answer, request_id),
            custom_outputs=answer.custom_outputs(),
        )

    async def _stream(ctx: RequestContext, request_id: str) -> AsyncIterator[str]:
        writer = StreamWriter(loaded.model_name)
        for event in writer.start():
            yield event
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | BaseException | None] = asyncio.Queue()
        cancelled = threading.Event()

        def produce() -> None:
            CANCEL.set(cancelled)  # a disconnected client closes the LLM request at its next token
            try:
                for event in loaded.agent.stream(ctx.question, **_kwargs(ctx, request_id)):
                    loop.call_soon_threadsafe(queue.put_nowait, event)
                    if cancelled.is_set():
                        break
            except BaseException as exc:  # reported to the client as response.failed
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        worker = loop.run_in_executor(None, produce)
        deadline = loop.time() + limits.request_timeout
        try:
            while True:
                item = await asyncio.wait_for(queue.get(), timeout=max(0.1, deadline - loop.time()))
                if item is None:
                    break
                if isinstance(item, BaseException):
                    _, code, message = classify_failure(item)
                    log.warning(
                        "request %s: %s (%s: %s)", request_id, code, type(item).__name__, str(item)[:300]
                    )
                    yield writer.fail(message, code)
                    return
                if item["type"] == "delta":
                    yield writer.delta(item["text"])
                else:
                    answer = item["answer"]
                    await asyncio.to_thread(loaded.agent.threads.link, writer.resp_id, answer.thread_id)
                    ledger.answered(answer.trace_id or "")
                    for event in writer.finish(
                        answer.usage, _meta(answer, request_id), answer.custom_outputs()
                    ):
                        yield event
        except TimeoutError:
            cancelled.set()
            yield writer.fail(f"the agent did not finish within {limits.request_timeout:.0f} s")
        finally:
            cancelled.set()  # the worker thread stops at its next event
            slots.release()
            del worker

    async def responses(request: Request) -> Any:
        ctx = await _parse(request)
        request_id = request.state.request_id
        if not ctx.stream:
            return JSONResponse(await _invoke(ctx, request_id), headers={"X-Request-ID": request_id})
        # take the slot before answering 200, so a full server answers 429/503 and not a broken stream;
        # the stream releases it when it ends
        await slots.acquire(request_id)
        return StreamingResponse(
            _stream(ctx, request_id),
            media_type="text/event-stream",
            headers={"X-Request-ID": request_id, "Cache-Control": "no-cache"},
        )

    for path in ("/responses", "/v1/responses", "/invocations"):
        app.add_api_route(path, responses, methods=["POST"])

    @app.post("/search")
    async def search(body: SearchRequest, request: Request) -> JSONResponse:
        """What the agent's doc_search finds, without an answer (a trace all the same)."""
        request_id = request.state.request_id
        async with slots.slot(request_id):
            try:
                hits = await asyncio.to_thread(loaded.agent.search, body.query, body.k)
            except Exception as exc:
                status, code, message = classify_failure(exc)
                raise _Failure(status, code, message, request_id) from exc
        return JSONResponse({"query": body.query, "hits": hits}, headers={"X-Request-ID": request_id})

    def _log_feedback(item: dict[str, Any]) -> str:
        """Store one feedback item as a HUMAN assessment; ConnectionError when the server is down."""
        from flywheel.tracking import log_feedback, tracking_reachable

        if not tracking_reachable(settings):
            raise ConnectionError("the tracking server is not reachable")
        return log_feedback(
            item["trace_id"],
            "user_feedback",
            item["value"],
            source_id=item.get("user") or "chat-page",
            human=True,
            rationale=item.get("comment"),
        )

    spool = active_spool()
    if spool is not None:
        spool.start(_log_feedback)

    @app.post("/feedback", response_model=None)
    async def feedback(fb: Feedback, request: Request) -> Any:
        """Thumbs up/down (+ comment) from a person, stored as a HUMAN assessment on the trace.

        Answers within about a second: 200 once stored; 202 (queued, stored when it can be) for a
        trace of this server that has not reached the tracking server yet or while the tracking
        server is down; 404 at once for a trace id nobody knows."""
        rid = request.state.request_id
        item = fb.model_dump()
        state = ledger.state(fb.trace_id)
        queue = active_spool()

        def queued() -> JSONResponse:
            assert queue is not None
            queue.queue_feedback(item)
            return JSONResponse({"ok": True, "queued": True, "trace_id": fb.trace_id}, status_code=202)

        if state in ("pending", "spooled") and queue is not None:
            return queued()
        try:
            assessment_id = await asyncio.wait_for(asyncio.to_thread(_log_feedback, item), timeout=3.0)
        except (ConnectionError, TimeoutError) as exc:
            if state == "exported" and queue is not None:
                return queued()
            raise _Failure(
                503, "tracking_unavailable", "the tracking server is not reachable; retry shortly", rid
            ) from exc
        except Exception as exc:
            if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
                raise _Failure(404, "unknown_trace", f"no trace with id {fb.trace_id}", rid) from exc
            log.warning("feedback on %s failed: %s", fb.trace_id, str(exc)[:300])
            raise _Failure(400, "feedback_rejected", f"feedback not recorded: {str(exc)[:200]}", rid) from exc
        return {"ok": True, "assessment_id": assessment_id}

    return app
