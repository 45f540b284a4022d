"""Run in a fresh process by `flywheel log-model`: load a registered agent and answer one question."""

from __future__ import annotations

import json
import sys


def main() -> None:
    import mlflow

    from flywheel.config import load_settings
    from flywheel.tracking import load_pyfunc

    uri, question = sys.argv[1], sys.argv[2]
    settings = load_settings()
    model = load_pyfunc(settings, uri)
    out = model.predict(
        {"input": [{"role": "user", "content": question}], "custom_inputs": {"user_id": "log-model-verify"}}
    )
    text = "".join(
        part.get("text", "")
        for item in out["output"]
        if item.get("type") == "message"
        for part in item["content"]
    )
    custom = out.get("custom_outputs") or {}
    mlflow.flush_trace_async_logging()
    print(
        json.dumps(
            {
                "model_uri": uri,
                "answer": text,
                "trace_id": custom.get("trace_id"),
                "sources": [s["source"] for s in custom.get("sources", [])],
                "prompt": custom.get("prompt"),
            }
        )
    )


if __name__ == "__main__":
    main()
