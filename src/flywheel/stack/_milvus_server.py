"""Entry point of the embedded Milvus service: Milvus Lite's gRPC server, tolerant of client keepalives.

``milvus-lite server`` builds its gRPC server with default HTTP/2 ping policy, so clients that send
keepalive pings (pymilvus does, every 10 s) get GOAWAY "too many pings" and lose their connection.
This starts the same servicer with a ping policy that accepts them.
"""

from __future__ import annotations

import argparse
import signal
import threading
from concurrent import futures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=19530)
    parser.add_argument("--max-workers", type=int, default=10)
    args = parser.parse_args(argv)

    import grpc
    from milvus_lite.adapter.grpc import server as lite

    db = lite.MilvusLite(args.data_dir)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.max_workers),
        options=[
            ("grpc.max_receive_message_length", 256 * 1024 * 1024),
            ("grpc.max_send_message_length", 256 * 1024 * 1024),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
            ("grpc.http2.max_ping_strikes", 0),
        ],
    )
    lite.milvus_pb2_grpc.add_MilvusServiceServicer_to_server(lite.MilvusServicer(db), server)
    server.add_insecure_port(f"{args.host}:{args.port}")
    server.start()
    print(f"flywheel milvus: Milvus Lite on {args.host}:{args.port} (data {args.data_dir})", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=3).wait()
    db.close()


if __name__ == "__main__":
    main()
