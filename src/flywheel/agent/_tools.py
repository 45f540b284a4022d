"""The agent's tools — doc_search, web_search, open_url — built from a typed context, never globals.

Tools are a registry by name; each builder returns a LangChain tool bound to a :class:`ToolContext`
or None when the tool is unavailable (web_search without EXA_API_KEY), with the reason recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from langchain_core.tools import BaseTool, StructuredTool

from flywheel.agent._config import AgentConfig
from flywheel.agent._prompts import format_context
from flywheel.config import Settings
from flywheel.errors import FlywheelError
from flywheel.knowledge import KnowledgeBase
from flywheel.safety import screen_untrusted
from flywheel.tracking import span
from flywheel.web import FetchOptions, html_to_markdown, safe_get

__all__ = ["TOOL_BUILDERS", "ToolContext", "build_tools", "register_tool"]

OPEN_URL_MAX_CHARS = 6000


@dataclass
class ToolContext:
    """Everything a tool may use, plus what the tools found during one run (for citations)."""

    settings: Settings
    kb: KnowledgeBase
    config: AgentConfig
    hits: list[dict] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    relevance: float | None = None  # the last search's own relevance signal (SearchResult.relevance)

    def add_hits(self, hits: list[dict]) -> list[int]:
        """Add hits (deduplicated) and return their citation numbers (1-based)."""
        numbers = []
        for hit in hits:
            for n, known in enumerate(self.hits, 1):
                if known["id"] == hit["id"]:
                    numbers.append(n)
                    break
            else:
                self.hits.append(hit)
                numbers.append(len(self.hits))
        return numbers


Builder = Callable[[ToolContext], BaseTool | None]
TOOL_BUILDERS: dict[str, Builder] = {}


def register_tool(name: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        TOOL_BUILDERS[name] = fn
        return fn

    return deco


def run_doc_search(ctx: ToolContext, query: str) -> list[dict]:
    """Search the docs, record a RETRIEVER span with documents and scores, return the hits."""
    ctx.calls.append("doc_search")
    ctx.queries.append(query)
    with span("doc_search", "RETRIEVER", {"query": query, "k": ctx.config.top_k}) as sp:
        result = ctx.kb.search(query, k=ctx.config.top_k, mode=ctx.config.search_mode)
        hits = [h.as_dict() for h in result]
        ctx.relevance = getattr(result, "relevance", None)
        sp.set_outputs(
            [
                {
                    "page_content": h["text"],
                    "id": h["id"],
                    "metadata": {
                        "source": h["source"],
                        "title": h["title"],
                        "headings": h["headings"],
                        "score": round(float(h["dense_score"]), 4),
                        "rrf": round(float(h["score"]), 5),
                    },
                }
                for h in hits
            ]
        )
        sp.set_attributes({"embed_ms": round(result.embed_ms, 2), "search_ms": round(result.search_ms, 2)})
    return hits


@register_tool("doc_search")
def _doc_search(ctx: ToolContext) -> BaseTool:
    def doc_search(query: str) -> str:
        """Search the product documentation. Returns numbered excerpts with their sources."""
        from flywheel.agent._untrusted import withhold_injected

        hits = withhold_injected(run_doc_search(ctx, query))
        numbers = ctx.add_hits(hits)
        if not hits:
            return "No documentation found."
        return "\n\n".join(
            format_context([h], ctx.config.context_chars).replace("[1]", f"[{n}]", 1)
            for n, h in zip(numbers, hits, strict=True)
        )

    return StructuredTool.from_function(doc_search, name="doc_search")


@register_tool("open_url")
def _open_url(ctx: ToolContext) -> BaseTool:
    s = ctx.settings
    opts = FetchOptions.from_settings(s)

    def open_url(url: str) -> str:
        """Fetch a public web page (http/https) and return its text."""
        ctx.calls.append("open_url")
        with span("open_url", "TOOL", {"url": url}) as sp:
            try:
                res = safe_get(url, opts)
            except FlywheelError as exc:  # refused (SSRF) or unreachable: the model is told why
                sp.set_outputs({"error": exc.parts("en")[0]})
                return f"Could not open {url}: {exc.parts('en')[0]}"
            except Exception as exc:  # a URL chosen by the model must never end the whole run
                sp.set_outputs({"error": f"{exc.__class__.__name__}: {exc}"[:300]})
                return f"Could not open {url}: {exc.__class__.__name__}"
            text = html_to_markdown(res.text) if "html" in res.content_type else res.text
            text = text[:OPEN_URL_MAX_CHARS]
            verdict = screen_untrusted(text)
            if not verdict.allowed:  # a page that talks to the assistant is not a source
                sp.set_outputs({"url": res.url, "withheld": verdict.rule})
                return f"The page at {res.url} was withheld: it contains instructions aimed at the assistant."
            sp.set_outputs(
                {"url": res.url, "status": res.status, "chars": len(text), "truncated": res.truncated}
            )
        ctx.add_hits(
            [
                {
                    "id": res.url,
                    "text": text,
                    "title": res.url,
                    "headings": "",
                    "source": res.url,
                    "score": 0.0,
                    "dense_score": 1.0,
                }
            ]
        )
        return text

    return StructuredTool.from_function(open_url, name="open_url")


@register_tool("web_search")
def _web_search(ctx: ToolContext) -> BaseTool | None:
    key = ctx.settings.exa_api_key
    if not key:
        ctx.unavailable["web_search"] = "EXA_API_KEY is not set"
        return None

    def web_search(query: str) -> str:
        """Search the public web (Exa). Use only when the documentation does not answer."""
        from exa_py import Exa

        ctx.calls.append("web_search")
        with span("web_search", "TOOL", {"query": query}) as sp:
            result = Exa(key.get_secret_value()).search_and_contents(
                query, num_results=3, text={"max_characters": 1500}
            )
            items = [
                {
                    "id": r.url,
                    "text": r.text or "",
                    "title": r.title or r.url,
                    "headings": "",
                    "source": r.url,
                    "score": 0.0,
                    "dense_score": 1.0,
                }
                for r in result.results
            ]
            sp.set_outputs([{"url": i["source"], "title": i["title"]} for i in items])
        items = [i for i in items if screen_untrusted(str(i["text"])).allowed]
        numbers = ctx.add_hits(items)
        return "\n\n".join(
            f"[{n}] {i['title']} ({i['source']})\n{i['text']}" for n, i in zip(numbers, items, strict=True)
        )

    return StructuredTool.from_function(web_search, name="web_search")


def build_tools(ctx: ToolContext) -> list[BaseTool]:
    tools = []
    for name in ctx.config.tools:
        builder = TOOL_BUILDERS.get(name)
        if builder is None:
            ctx.unavailable[name] = "no such tool"
            continue
        tool = builder(ctx)
        if tool is not None:
            tools.append(tool)
    return tools
