"""A local stand-in for Langfuse's public HTTP API (the parts flywheel uses), on a real socket.

It checks what a real server would: Basic auth with the project's key pair on every request, the
request bodies' shape (camelCase fields, 32-hex trace ids on scores, OTLP protobuf on the OTel
endpoint), and answers in the shapes the official SDK parses. No real Langfuse server is reachable
from these machines; this is what the Langfuse paths are tested against.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, HTTPException, Request

PUBLIC, SECRET = "pk-lf-test", "sk-lf-test"


class LangfuseStub:
    def __init__(self) -> None:
        self.datasets: dict[str, dict[str, Any]] = {}
        self.items: dict[str, dict[str, Any]] = {}
        self.scores: list[dict[str, Any]] = []
        self.spans: list[Any] = []
        self.otel_headers: list[dict[str, str]] = []
        self.rejected_auth = 0
        self.app = self._build()

    def _auth(self, request: Request) -> None:
        expected = "Basic " + base64.b64encode(f"{PUBLIC}:{SECRET}".encode()).decode()
        if request.headers.get("authorization") != expected:
            self.rejected_auth += 1
            raise HTTPException(401, "Invalid credentials")

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.get("/health")
        async def health() -> dict:
            return {"status": "ok"}

        now = lambda: datetime.now(UTC).isoformat()  # noqa: E731

        @app.post("/api/public/v2/datasets")
        async def create_dataset(request: Request) -> dict:
            self._auth(request)
            body = await request.json()
            assert isinstance(body.get("name"), str) and body["name"], body
            ds = {
                "id": f"ds-{len(self.datasets)}",
                "name": body["name"],
                "description": body.get("description"),
                "metadata": body.get("metadata"),
                "projectId": "proj",
                "createdAt": now(),
                "updatedAt": now(),
            }
            self.datasets[body["name"]] = ds
            return ds

        @app.get("/api/public/v2/datasets/{name:path}")
        async def get_dataset(name: str, request: Request) -> dict:
            self._auth(request)
            if name not in self.datasets:
                raise HTTPException(404, "Dataset not found")
            return self.datasets[name]

        @app.post("/api/public/dataset-items")
        async def create_item(request: Request) -> dict:
            self._auth(request)
            body = await request.json()
            assert body["datasetName"] in self.datasets, body
            assert isinstance(body.get("input"), dict) and body["input"].get("question"), body
            item = {
                "id": body.get("id") or f"it-{len(self.items)}",
                "status": "ACTIVE",
                "input": body.get("input"),
                "expectedOutput": body.get("expectedOutput"),
                "metadata": body.get("metadata"),
                "sourceTraceId": None,
                "sourceObservationId": None,
                "datasetId": self.datasets[body["datasetName"]]["id"],
                "datasetName": body["datasetName"],
                "createdAt": now(),
                "updatedAt": now(),
                "mediaReferences": [],
            }
            self.items[item["id"]] = item  # an upsert, as Langfuse does for a given id
            return item

        @app.get("/api/public/dataset-items")
        async def list_items(request: Request, datasetName: str, page: int = 1, limit: int = 50) -> dict:
            self._auth(request)
            rows = [i for i in self.items.values() if i["datasetName"] == datasetName]
            pages = max(1, -(-len(rows) // limit))
            chunk = rows[(page - 1) * limit : page * limit]
            meta = {"page": page, "limit": limit, "totalItems": len(rows), "totalPages": pages}
            return {"data": chunk, "meta": meta}

        @app.post("/api/public/scores")
        async def create_score(request: Request) -> dict:
            self._auth(request)
            body = await request.json()
            batch = body if isinstance(body, list) else [body]  # the SDK sends scores in batches
            for score in batch:
                assert isinstance(score.get("name"), str), score
                assert re.fullmatch(r"[0-9a-f]{32}", score.get("traceId", "")), score
                assert score.get("dataType") in ("NUMERIC", "BOOLEAN", "CATEGORICAL"), score
            self.scores.extend(batch)
            return (
                [{"id": s.get("id", "score")} for s in batch] if isinstance(body, list) else {"id": "score"}
            )

        @app.post("/api/public/otel/v1/traces")
        async def otel(request: Request) -> dict:
            self._auth(request)
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

            assert request.headers.get("content-type") == "application/x-protobuf"
            self.otel_headers.append(dict(request.headers))
            msg = ExportTraceServiceRequest()
            msg.ParseFromString(await request.body())
            for rs in msg.resource_spans:
                for ss in rs.scope_spans:
                    self.spans.extend(ss.spans)
            return {}

        return app


@contextmanager
def running_stub() -> Iterator[tuple[str, LangfuseStub]]:
    from tests.serving.conftest import serve

    stub = LangfuseStub()
    with serve(stub.app) as (url, _):
        yield url, stub
