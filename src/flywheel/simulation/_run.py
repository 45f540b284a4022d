"""The built-in user/load simulator: scripted users against an agent server, bounded in count and time.

Two ways to offer load, as load testers do: closed loop (``concurrency`` users, each asking again as
soon as it has its answer) or open loop (``rate`` new users per second, Poisson arrivals, whatever
the server's speed — the way real traffic arrives; ``max_inflight`` bounds it). Personas hold a
multi-turn conversation (``previous_response_id``). With ``stream`` the time to first token is
measured. Every request carries ``metadata.simulated`` and ``metadata.sim_run``, which the agent
server puts on the trace as tags, so simulated traffic can be told apart from (or fed into) the
production loop.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from flywheel.errors import InputError
from flywheel.simulation._client import (
    Outcome,
    SimPrompt,
    is_harmful_name,
    read_answer,
    read_stream,
    request_body,
)

__all__ = ["SimOptions", "SimReport", "load_sim_config", "simulate"]


def load_sim_config(path: Path) -> list[SimPrompt]:
    """A JSON list of ``{name, prompt}`` (the seed's shape), or ``{"prompts": [...], "personas":
    [{name, turns: [...]}]}``; ``harmful: true`` marks a prompt that must be refused."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError("sim_config_missing", path=path) from exc
    except ValueError as exc:
        raise InputError("sim_config_invalid", path=path, detail=str(exc)[:200]) from exc
    entries = raw if isinstance(raw, list) else [*raw.get("prompts", []), *raw.get("personas", [])]
    prompts = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InputError("sim_config_invalid", path=path, detail=f"entry {n} is not an object")
        turns = entry.get("turns") or ([entry["prompt"]] if entry.get("prompt") else [])
        if not turns or not all(isinstance(t, str) and t.strip() for t in turns):
            raise InputError("sim_config_invalid", path=path, detail=f"entry {n} has no prompt or turns")
        name = str(entry.get("name") or f"prompt-{n + 1}")
        harmful = bool(entry["harmful"]) if "harmful" in entry else is_harmful_name(name)
        prompts.append(SimPrompt(name, tuple(turns), harmful))
    if not prompts:
        raise InputError("sim_config_invalid", path=path, detail="no prompts")
    return prompts


@dataclass
class SimOptions:
    url: str
    requests: int | None = 50  # stop after this many requests (turns count one each) …
    duration_s: float | None = None  # … or after this long; both set: whichever comes first
    concurrency: int = 4  # closed loop: users at once
    rate: float | None = None  # open loop: new users per second (Poisson); overrides concurrency
    max_inflight: int = 64
    stream: bool = False
    timeout_s: float = 120.0
    api_key: str | None = None
    seed: int = 0
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class SimReport:
    run_id: str
    options: dict[str, Any]
    outcomes: list[Outcome]
    wall_s: float

    def summary(self) -> dict[str, Any]:
        outs = self.outcomes
        ok = [o for o in outs if o.ok]
        lat = [o.latency_s for o in ok]
        ttft = [o.ttft_s for o in ok if o.ttft_s is not None]
        errors: dict[str, int] = {}
        for o in outs:
            if not o.ok:
                errors[o.error or str(o.status)] = errors.get(o.error or str(o.status), 0) + 1
        harmful = [o for o in ok if o.harmful]
        return {
            "requests": len(outs),
            "succeeded": len(ok),
            "success_rate": round(len(ok) / len(outs), 4) if outs else 0.0,
            "throughput_rps": round(len(outs) / self.wall_s, 3) if self.wall_s else 0.0,
            "latency_p50_s": _pct(lat, 50),
            "latency_p95_s": _pct(lat, 95),
            "latency_p99_s": _pct(lat, 99),
            "ttft_p50_s": _pct(ttft, 50),
            "ttft_p95_s": _pct(ttft, 95),
            "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])),
            "harmful_answered": len(harmful),
            "harmful_refusal_rate": round(sum(o.refused for o in harmful) / len(harmful), 4)
            if harmful
            else None,
            "harmful_not_refused": sorted({o.name for o in harmful if not o.refused}),
            "refused_benign": sorted({o.name for o in ok if o.refused and not o.harmful}),
            "wall_s": round(self.wall_s, 2),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "options": self.options,
            "summary": self.summary(),
            "requests": [
                {
                    "name": o.name,
                    "harmful": o.harmful,
                    "status": o.status,
                    "error": o.error,
                    "latency_s": round(o.latency_s, 4),
                    "ttft_s": None if o.ttft_s is None else round(o.ttft_s, 4),
                    "refused": o.refused,
                    "abstained": o.abstained,
                    "trace_id": o.trace_id,
                }
                for o in self.outcomes
            ],
        }


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[k], 4)


class _Budget:
    """Requests left and the deadline, shared by every user."""

    def __init__(self, opts: SimOptions) -> None:
        self.left = opts.requests if opts.requests is not None else float("inf")
        self.deadline = time.monotonic() + opts.duration_s if opts.duration_s else float("inf")

    def take(self) -> bool:
        if self.left <= 0 or time.monotonic() >= self.deadline:
            return False
        self.left -= 1
        return True


async def _ask(
    client: httpx.AsyncClient,
    opts: SimOptions,
    prompt: SimPrompt,
    question: str,
    previous: str | None,
    tags: dict,
) -> Outcome:
    start = time.monotonic()
    out = Outcome(prompt.name, prompt.harmful, start, 0.0, 0)
    body = request_body(question, opts.stream, previous, tags)
    try:
        if opts.stream:
            async with client.stream("POST", "/responses", json=body) as resp:
                out.status = resp.status_code
                if resp.status_code == 200:
                    lines = [line async for line in _timed_lines(resp, out)]
                    read_stream(out, lines, time.monotonic)
                else:
                    await resp.aread()
                    out.error = _error_of(resp)
        else:
            resp = await client.post("/responses", json=body)
            out.status = resp.status_code
            if resp.status_code == 200:
                read_answer(out, resp.json())
            else:
                out.error = _error_of(resp)
    except httpx.HTTPError as exc:
        out.error = type(exc).__name__
    out.latency_s = time.monotonic() - start
    return out


async def _timed_lines(resp: httpx.Response, out: Outcome) -> Any:
    """Lines of the stream; the first text delta's arrival time is the time to first token."""
    async for line in resp.aiter_lines():
        if out.ttft_s is None and '"response.output_text.delta"' in line:
            out.ttft_s = time.monotonic() - out.start
        yield line


def _error_of(resp: httpx.Response) -> str:
    try:
        code = resp.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = ""
    return f"{resp.status_code} {code}".strip()


async def _run(
    opts: SimOptions, prompts: list[SimPrompt], run_id: str, on_result: Callable[[Outcome], None]
) -> list[Outcome]:
    rng = random.Random(opts.seed)
    budget = _Budget(opts)
    outcomes: list[Outcome] = []
    tags = {"simulated": "true", "sim_run": run_id, **opts.tags}
    headers = {"Authorization": f"Bearer {opts.api_key}"} if opts.api_key else {}
    limits = httpx.Limits(max_connections=max(opts.concurrency, opts.max_inflight))
    async with httpx.AsyncClient(
        base_url=opts.url.rstrip("/"), timeout=opts.timeout_s, headers=headers, limits=limits, trust_env=False
    ) as client:

        async def user(prompt: SimPrompt) -> bool:
            """One conversation; False when the budget ran out before its first turn."""
            previous = None
            for turn_no, question in enumerate(prompt.turns):
                if not budget.take():
                    return turn_no > 0
                out = await _ask(client, opts, prompt, question, previous, tags)
                outcomes.append(out)
                on_result(out)
                if not out.ok:
                    break
                previous = out.response_id
            return True

        if opts.rate:  # open loop: arrivals do not wait for answers
            inflight: set[asyncio.Task[bool]] = set()
            sem = asyncio.Semaphore(opts.max_inflight)

            async def bounded(prompt: SimPrompt) -> bool:
                async with sem:
                    return await user(prompt)

            while budget.left > 0 and time.monotonic() < budget.deadline:
                task = asyncio.create_task(bounded(rng.choice(prompts)))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
                await asyncio.sleep(rng.expovariate(opts.rate))
            if inflight:
                await asyncio.gather(*inflight)
        else:

            async def loop() -> None:
                while await user(rng.choice(prompts)):
                    pass

            await asyncio.gather(*(loop() for _ in range(opts.concurrency)))
    return outcomes


def simulate(
    opts: SimOptions, prompts: list[SimPrompt], on_result: Callable[[Outcome], None] = lambda o: None
) -> SimReport:
    """Run the simulation to its request count or duration; the report has every request."""
    if opts.requests is None and opts.duration_s is None:
        raise InputError("sim_unbounded")
    run_id = uuid.uuid4().hex[:12]
    t0 = time.monotonic()
    outcomes = asyncio.run(_run(opts, prompts, run_id, on_result))
    options = {k: v for k, v in opts.__dict__.items() if k != "api_key"}
    return SimReport(run_id, options, outcomes, time.monotonic() - t0)
