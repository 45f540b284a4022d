"""``python -m flywheel.knowledge.export_onnx``: export the shipped MiniLM weights to ONNX once, at
install time (scripts/bootstrap.sh, the Dockerfile), so no process exports or imports torch later."""

from __future__ import annotations

import sys

from flywheel.knowledge._minilm import export_onnx, onnx_path


def main() -> int:
    path = onnx_path()
    if path is None or "--force" in sys.argv:
        path = export_onnx()
        print(f"exported all-MiniLM-L6-v2 to {path}")
    else:
        print(f"all-MiniLM-L6-v2 ONNX export present: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
