"""`flywheel mcp`: a real MCP client talks to doc_search over stdio."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_mcp_client_calls_doc_search(tmp_path: Path) -> None:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    env = {**os.environ, "FLYWHEEL_DATA_DIR": str(tmp_path / "data"), "FLYWHEEL_COLLECTION": "mcp_test"}
    # ingest in its own process: a Milvus Lite file is held by one process at a time
    done = subprocess.run(
        [sys.executable, "-m", "flywheel.cli.main", "ingest", str(DOCS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr

    async def run() -> tuple[list[str], list[dict]]:
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "flywheel.cli.main", "mcp"], env=env
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = [t.name for t in (await session.list_tools()).tools]
            result = await session.call_tool(
                "doc_search", {"query": "Which addresses does open_url refuse?", "k": 3}
            )
            hits = [json.loads(c.text) for c in result.content]
            return tools, hits

    tools, hits = asyncio.run(asyncio.wait_for(run(), timeout=120))
    assert tools == ["doc_search"]
    assert (
        hits and hits[0]["source"] == "security.md" and {"score", "title", "headings", "text"} <= set(hits[0])
    )
