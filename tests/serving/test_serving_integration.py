"""Chapter 7 end to end on the real stack: prompts → log → register → alias → verify → serve → OpenAI SDK
→ traces carry model and prompt versions; the chat page in a real browser records thumbs-down."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from flywheel.agent import AgentConfig
from flywheel.config import Settings
from flywheel.stack import Stack

pytestmark = pytest.mark.integration
NAME = "it-docs-qa-agent"


@pytest.fixture(scope="module")
def served(stack: Settings) -> Iterator[tuple[Settings, dict]]:
    from flywheel.registry import log_agent, push_default_prompts, verify

    pushed = dict(push_default_prompts(stack))
    logged = log_agent(stack, AgentConfig(max_tokens=48), name=NAME, alias="challenger")
    report = verify(stack, f"models:/{NAME}@challenger")
    settings = stack.model_copy(update={"serve_model": f"models:/{NAME}@challenger"})
    Stack(settings).up(["agent"])
    try:
        yield settings, {"pushed": pushed, "logged": logged, "verify": report}
    finally:
        Stack(settings).down(["agent"])


def _exported(trace_id: str, timeout: float = 30.0) -> Any:
    """The server exports traces in batches (OTLP): wait until this one has arrived whole."""
    import time

    import mlflow

    deadline = time.monotonic() + timeout
    while True:
        trace = mlflow.get_trace(trace_id)
        if trace is not None and "prompt.version" in trace.info.tags:
            return trace
        if time.monotonic() > deadline:
            return trace
        time.sleep(0.5)


def test_registered_version_is_verified_in_a_fresh_process(served: tuple[Settings, dict]) -> None:
    _, info = served
    assert info["logged"].version >= 1 and info["logged"].aliases == ["challenger"]
    assert info["verify"]["answer"].strip() and info["verify"]["trace_id"]
    assert info["verify"]["prompt"] == f"docs-qa-system@{info['pushed']['docs-qa-system']}"


def test_openai_sdk_against_the_served_alias_and_traces_carry_versions(served: tuple[Settings, dict]) -> None:
    import mlflow
    from openai import OpenAI

    settings, info = served
    client = OpenAI(base_url=f"http://{settings.host}:{settings.agent_port}", api_key="unused")
    created = client.responses.create(model=NAME, input="Which addresses does open_url refuse to fetch?")
    assert created.output_text.strip()
    assert created.metadata["registered_model.version"] == str(info["logged"].version)
    with client.responses.stream(model=NAME, input="How do I start the embedded stack?") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas and "".join(deltas) == final.output_text

    mlflow.set_tracking_uri(settings.tracking_uri)
    for trace_id in (created.metadata["trace_id"], final.metadata["trace_id"]):
        trace = _exported(trace_id)
        assert trace is not None, f"trace {trace_id} never reached the tracking server"
        tags = trace.info.tags
        # the whole trace came through the OTLP path: every span, the session and the user
        names = {sp.name for sp in trace.data.spans}
        assert names >= {"docs_qa_agent", "guardrail", "doc_search", "llm"}, (names, tags, trace.info)
        assert trace.info.state.value == "OK"
        assert trace.info.trace_metadata.get("mlflow.trace.user") == "anonymous"
        assert trace.info.trace_metadata.get("mlflow.trace.session")
        assert tags["agent.config_digest"] and tags["agent.policy"] == "retrieve_first"
        assert tags["registered_model.name"] == NAME
        assert tags["registered_model.version"] == str(info["logged"].version)
        assert tags["registered_model.alias"] == "challenger"
        assert tags["prompt.name"] == "docs-qa-system"
        assert tags["prompt.version"] == str(info["pushed"]["docs-qa-system"])
        assert tags["request_id"]
    experiment = mlflow.get_experiment_by_name(settings.experiment)
    found = mlflow.search_traces(
        locations=[experiment.experiment_id],
        return_type="list",
        filter_string=f"tags.`registered_model.name` = '{NAME}'",
    )
    assert len(found) >= 2


def test_missing_prompt_falls_back_to_builtin_and_says_so(
    stack: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from flywheel.agent import DocsAgent
    from flywheel.registry import prompt_loader

    agent = DocsAgent(
        stack, AgentConfig(max_tokens=32), prompt_loader=prompt_loader(stack, base="no-such-prompt")
    )
    with caplog.at_level(logging.WARNING, logger="flywheel.prompts"):
        result = agent.ask("How do I start the embedded stack?")
    assert result.answer.strip() and result.prompt == "builtin@builtin"
    assert any("built-in system prompt" in r.message for r in caplog.records)


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="Debian's chromium is not installed (make test installs it as root)",
)
def test_chat_page_in_a_real_browser(served: tuple[Settings, dict]) -> None:
    import mlflow
    from playwright.sync_api import sync_playwright

    settings, _ = served
    url = f"http://{settings.host}:{settings.agent_port}/"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=shutil.which("chromium"),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page()
        page.goto(url)
        page.fill("#question", "Which addresses does open_url refuse to fetch?")
        page.click("button[type=submit]")
        answer = page.locator("[data-testid=answer]").first
        page.wait_for_function(
            "() => document.querySelector('[data-testid=answer]')?.textContent.length > 0", timeout=60_000
        )
        page.wait_for_selector("[data-testid=sources] li", timeout=120_000)
        assert answer.text_content().strip()
        assert "security.md" in page.locator("[data-testid=sources]").first.text_content()
        trace_id = page.locator(".meta").first.text_content().split("trace ")[1].split(" ")[0]
        page.fill("[data-testid=comment]", "cites the right page but rambles")
        page.click("[data-testid=thumbs-down]")
        page.wait_for_function(
            "() => document.querySelector('[data-testid=feedback-status]')?.textContent.includes('recorded')",
            timeout=30_000,
        )
        page.screenshot(path=str(settings.data_path / "chat-page.png"))
        browser.close()

    mlflow.set_tracking_uri(settings.tracking_uri)
    _exported(trace_id)
    # feedback given before the trace reached the tracking server is queued and stored right after
    deadline = time.monotonic() + 30
    while True:
        assessments = mlflow.get_trace(trace_id).info.assessments
        human = [a for a in assessments if a.name == "user_feedback"]
        if human or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert human and human[0].feedback.value is False
    assert human[0].source.source_type == "HUMAN" and human[0].rationale == "cites the right page but rambles"


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="Debian's chromium is not installed (make test installs it as root)",
)
def test_chat_page_renders_markdown_safely(served: tuple[Settings, dict]) -> None:
    """The page's own renderer (vendored marked + DOMPurify) in Chromium: code blocks become
    <pre><code> with no literal fence, citations become links outside code only, and HTML quoted
    from a document is inert."""
    from playwright.sync_api import sync_playwright

    settings, _ = served
    answer = (
        "Start it with `flywheel up` [1].\n\n```bash\nflywheel up\nprint(x[1])\n```\n\n[1]\n\n"
        "| key | default |\n|---|---|\n| port | 5005 [2] |\n\n"
        "A quoted page: <script>window.__pwned = 1</script>"
        '<img src="x" onerror="window.__pwned = 2"> <a href="javascript:window.__pwned=3">link</a> [2]'
    )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        page.goto(f"http://{settings.host}:{settings.agent_port}/")
        page.wait_for_function("() => typeof marked !== 'undefined' && typeof DOMPurify !== 'undefined'")
        page.evaluate(
            "md => { const d = document.createElement('div'); d.id = 'probe'; document.body.appendChild(d);"
            " render(d, md, 7); }",
            answer,
        )
        probe = page.locator("#probe")
        assert probe.locator("pre code").count() == 1
        assert "```" not in probe.text_content()
        assert "print(x[1])" in probe.locator("pre code").text_content()  # code untouched
        assert probe.locator("pre a.cite").count() == 0
        cites = probe.locator("a.cite")
        assert cites.count() >= 3 and cites.first.get_attribute("href") == "#src-7-1"
        assert probe.locator("table td").count() == 2
        assert probe.locator("script").count() == 0
        assert probe.locator("[onerror]").count() == 0
        assert probe.locator("a[href^=javascript]").count() == 0
        page.click("#probe a:text('link')")
        page.wait_for_timeout(300)  # an error handler or link would have run by now
        assert page.evaluate("() => window.__pwned") is None
        browser.close()
