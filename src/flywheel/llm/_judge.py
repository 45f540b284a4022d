"""The LLM judge: any OpenAI-compatible endpoint, with its own rate limit and retries."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from flywheel.config import Settings

__all__ = ["judge_identity", "make_judge"]


def judge_identity(settings: Settings) -> str | None:
    """The judge as it identifies an evaluation (model@endpoint), or None without a judge."""
    return f"{settings.judge_model}@{settings.judge_base_url}" if settings.judge_base_url else None


def make_judge(settings: Settings) -> Callable[[str], str] | None:
    """A prompt → completion function, or None when no judge is configured (local scorers are used)."""
    if not settings.judge_base_url:
        return None
    from openai import OpenAI

    key = settings.judge_api_key or settings.openai_api_key
    client = OpenAI(
        base_url=settings.judge_base_url, api_key=key.get_secret_value() if key else "none", max_retries=0
    )
    interval = 1.0 / settings.judge_rps
    lock = threading.Lock()
    last = [0.0]

    import openai
    from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

    transient = (
        openai.APIConnectionError,  # includes timeouts
        openai.RateLimitError,
        openai.InternalServerError,
    )

    @retry(  # transient provider errors: back off and retry; a 4xx is the caller's to see at once
        retry=retry_if_exception_type(transient),
        stop=stop_after_attempt(4),
        wait=wait_exponential_jitter(multiplier=0.5, max=8),
        reraise=True,
    )
    def judge(prompt: str) -> str:
        with lock:  # a simple rate limit shared by all evaluation threads
            wait = last[0] + interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            last[0] = time.monotonic()
        reply = client.chat.completions.create(
            model=settings.judge_model,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=8,
            temperature=0,
        )
        return reply.choices[0].message.content or ""

    return judge
