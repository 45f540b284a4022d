"""doc_search as an MCP server (stdio), so any MCP client can search the indexed documentation."""

from __future__ import annotations

from typing import Any

from flywheel.config import Settings
from flywheel.knowledge import KnowledgeBase

__all__ = ["build_mcp_server", "serve_stdio"]


def build_mcp_server(settings: Settings, kb: KnowledgeBase | None = None) -> Any:
    from mcp.server.mcpserver import MCPServer

    kb = kb or KnowledgeBase(settings)
    server = MCPServer(
        "flywheel-docs",
        instructions="Search the documentation indexed by flywheel. Cite the returned source of each excerpt.",
        log_level="WARNING",
    )

    @server.tool(
        name="doc_search",
        description="Search the documentation; returns the top-k excerpts with "
        "score, title, heading path and source.",
    )
    def doc_search(query: str, k: int = 5) -> list[dict[str, Any]]:
        from flywheel.agent._untrusted import check_question

        check_question(query, settings.max_question_chars)
        return [
            {
                "score": round(h.dense_score, 4),
                "title": h.title,
                "headings": h.headings,
                "source": h.source,
                "text": h.text,
            }
            for h in kb.search(query, k=max(1, min(k, 20)))
        ]

    return server


def serve_stdio(settings: Settings) -> None:
    build_mcp_server(settings).run("stdio")
