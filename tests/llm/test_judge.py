"""The judge client's retry policy against a real socket: a provider's 500s and 429s are retried
with backoff, a 400 (the request is wrong) is raised at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.llm.conftest import Script, completion


def test_transient_errors_are_retried_and_a_bad_request_is_not(
    llm_server: tuple[str, Script], tmp_path: Path
) -> None:
    import openai

    from flywheel.config import load_settings
    from flywheel.llm import make_judge

    url, script = llm_server
    settings = load_settings(data_dir=tmp_path, mlflow_port=1, judge_base_url=url, judge_rps=1000)
    judge = make_judge(settings)
    assert judge is not None
    error = {"error": {"message": "nope", "type": "x"}}
    script.replies += [(500, error), (429, error), (200, completion("7"))]
    assert judge("grade this") == "7"
    assert len(script.requests) == 3
    script.replies.append((400, error))
    with pytest.raises(openai.BadRequestError):
        judge("grade this")
    assert len(script.requests) == 4  # not retried
