"""The annotation queue in a real browser: a thumbs-down answer shows up in its queue; a reviewer
labels it, corrects the answer and adds it to a dataset; the new dataset version holds it."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import pytest

from flywheel.config import Settings
from tests.serving.conftest import running

pytestmark = pytest.mark.integration
CORRECTED = "The agent server listens on port 5005. Its chat page is at the root URL."


def _wait_feedback(trace_id: str) -> None:
    import mlflow

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        trace = mlflow.get_trace(trace_id)
        if trace is not None and any(a.name == "user_feedback" for a in trace.info.assessments):
            return
        time.sleep(0.5)
    raise AssertionError("the thumbs-down never reached the trace")


def test_review_label_correct_and_add_to_dataset(served_local: Settings, tmp_path: Path) -> None:
    import mlflow
    from playwright.sync_api import sync_playwright

    from flywheel.monitoring._review import build_review_app

    settings = served_local
    mlflow.set_tracking_uri(settings.tracking_uri)
    url = f"http://{settings.host}:{settings.agent_port}"
    answer = httpx.post(
        url + "/responses", json={"input": "Which port does the agent server use?"}, timeout=120
    )
    trace_id = answer.json()["metadata"]["trace_id"]
    fb = httpx.post(url + "/feedback", json={"trace_id": trace_id, "value": False, "comment": "too vague"})
    assert fb.status_code in (200, 202), fb.text
    _wait_feedback(trace_id)

    dataset = tmp_path / "prod.json"
    with running(build_review_app(settings, dataset)) as review_url, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        page.goto(review_url + "/")
        page.click("[data-queue=thumbs-down]")
        page.click(f"[data-trace='{trace_id}']")
        page.wait_for_function(
            "() => document.querySelector('[data-testid=answer]')?.textContent.length > 0", timeout=30_000
        )
        page.select_option("#l-correct", "false")
        page.fill("#l-helpfulness", "2")
        page.select_option("#l-issue", "incomplete")
        page.fill("[data-testid=comment]", "does not give the port")
        page.fill("[data-testid=corrected]", CORRECTED)
        page.click("[data-testid=save]")
        page.wait_for_function(
            "() => document.querySelector('[data-testid=status]')?.textContent === 'saved'", timeout=30_000
        )
        page.keyboard.press("a")  # the keyboard shortcut for "Add to dataset"
        page.wait_for_function(
            "() => document.querySelector('[data-testid=status]')?.textContent.includes('version')",
            timeout=60_000,
        )
        status = page.text_content("[data-testid=status]") or ""
        page.screenshot(path=str(settings.data_path / "review-page.png"))
        browser.close()
        unknown = httpx.get(f"{review_url}/api/traces/tr-{'0' * 32}", timeout=30)
        assert unknown.status_code == 404, unknown.text

    trace = mlflow.get_trace(trace_id)
    labels = {a.name: a for a in trace.info.assessments}
    assert labels["review/correct"].feedback.value is False
    assert labels["review/correct"].source.source_type == "HUMAN"
    assert labels["review/helpfulness"].feedback.value == 2
    assert labels["expected_response"].expectation.value == CORRECTED

    items = json.loads(dataset.read_text())
    assert len(items) == 1
    item = items[0]
    assert item["metadata"]["source_trace"] == trace_id and item["metadata"]["corrected"] is True
    assert item["expected_output"]["response_facts"] == [
        "The agent server listens on port 5005.",
        "Its chat page is at the root URL.",
    ]
    version = status.split("version ")[1].split(" ")[0]
    from mlflow.genai.datasets import search_datasets

    assert search_datasets(filter_string=f"name = '{version}'", max_results=1), version
