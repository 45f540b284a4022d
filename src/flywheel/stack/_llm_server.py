"""Entry point of the embedded LLM service: llama.cpp's OpenAI-compatible server via xllamacpp.

xllamacpp runs llama.cpp's own C++ HTTP server (continuous batching, parallel slots) in-process;
this module only configures it and keeps the process alive until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="path of the .gguf file")
    parser.add_argument("--alias", default="local", help="model name reported by /v1/models")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--parallel", type=int, default=4, help="concurrent request slots")
    parser.add_argument("--ctx-per-slot", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--cache-ram-mb",
        type=int,
        default=128,
        help="RAM for llama.cpp's prompt cache (0: off; its default is 8192)",
    )
    args = parser.parse_args(argv)

    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = args.model
    params.model_alias = args.alias
    params.hostnames = [args.host]
    params.port = args.port
    params.n_parallel = args.parallel
    params.n_ctx = args.ctx_per_slot * args.parallel  # the context is shared across slots
    params.cont_batching = True
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.endpoint_metrics = True
    params.cache_ram_mib = args.cache_ram_mb  # bounds the server's memory growth under load

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = xlc.Server(params)
    print(f"flywheel llm: listening on {server.listening_address}", flush=True)
    stop.wait()
    # llama.cpp's server threads are not daemon-safe to join; leave at once.
    os._exit(0)


if __name__ == "__main__":
    main()
