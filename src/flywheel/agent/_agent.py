"""The documentation QA agent: a LangGraph graph with two policies, guardrails and cited answers.

retrieve_first (default; small local models pick tools no better than a coin flip):
    guard ─refuse─▶ END
      └─▶ retrieve ─nothing relevant─▶ abstain ─▶ END
             └─▶ generate ─▶ cite ─▶ END
react (tool-capable models): guard ─▶ model ⇄ tools ─▶ cite ─▶ END
grounded (extractive; no LLM call unless lead_sentence): guard ─▶ retrieve ─▶ extract ─▶ cite ─▶ END
    the answer is the excerpts' own most relevant sentences, each cited (agent/_grounded.py)
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.runtime import Runtime

from flywheel.agent._config import AgentConfig
from flywheel.agent._grounded import (
    compose,
    japanese_lead,
    lead_is_grounded,
    section_citations,
    select_units,
    trim_repetition,
)
from flywheel.agent._guardrails import screen
from flywheel.agent._prompts import (
    ABSTAIN,
    DEFAULT_SYSTEM_PROMPTS,
    REFUSAL,
    LoadedPrompt,
    detect_language,
    format_context,
)
from flywheel.agent._threads import ConversationStore, MemoryStore
from flywheel.agent._tools import ToolContext, build_tools, run_doc_search
from flywheel.agent._untrusted import UNTRUSTED_HEADER, check_question, withhold_injected
from flywheel.config import Settings, secret_values
from flywheel.knowledge import KnowledgeBase, cited_numbers, relevance_threshold
from flywheel.llm import GATEWAY
from flywheel.safety import screen_output
from flywheel.tracking import VersionIdentity, set_trace_identity, span, tracing_enabled

__all__ = ["AgentAnswer", "DocsAgent", "make_chat_model"]


class State(TypedDict, total=False):
    messages: Annotated[list[BaseMessage], add_messages]
    question: str
    query: str  # what to search and answer ("" = the question; the extractive screen may trim it)
    lang: str
    refused: str
    abstained: bool
    answer: str
    steps: int


@dataclass
class AgentAnswer:
    answer: str
    sources: list[dict]
    refused: bool = False
    refusal_category: str = ""
    abstained: bool = False
    tools_called: list[str] = field(default_factory=list)
    search_queries: list[str] = field(default_factory=list)
    thread_id: str = ""
    trace_id: str | None = None
    latency_ms: float = 0.0
    usage: dict[str, int] = field(default_factory=dict)
    prompt: str = ""
    contexts: list[str] = field(default_factory=list)  # the retrieved excerpts' text (groundedness)
    identity: dict[str, str] = field(default_factory=dict)  # the VersionIdentity that answered

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def custom_outputs(self) -> dict[str, Any]:
        """What a Responses API answer carries besides the text (sources, outcome, identity)."""
        return {
            "sources": self.sources,
            "refused": self.refused,
            "abstained": self.abstained,
            "tools_called": self.tools_called,
            "search_queries": self.search_queries,
            "thread_id": self.thread_id,
            "trace_id": self.trace_id,
            "prompt": self.prompt,
        }


def make_chat_model(settings: Settings, config: AgentConfig) -> BaseChatModel:
    """An OpenAI-compatible chat model: the embedded llama.cpp server, OpenAI, vLLM, a gateway…"""
    from flywheel.llm import OpenAICompatibleChat

    return OpenAICompatibleChat(
        model=config.model or settings.llm_model,
        base_url=config.base_url or settings.llm_url,
        api_key=settings.openai_api_key,
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        frequency_penalty=config.frequency_penalty,
        timeout=config.timeout,
        max_retries=1,
    )


@dataclass
class RunContext:
    """One ask/stream call's own state — the tools' context (hits, calls, queries) and the token
    usage — given to the graph as LangGraph's run context (``context_schema``): every node gets it
    as ``runtime.context``, so concurrent requests never share it and nothing hides in a global."""

    ctx: ToolContext
    usage: dict[str, int] = field(default_factory=dict)


class DocsAgent:
    """Ask questions; conversations are keyed by a thread id."""

    def __init__(
        self,
        settings: Settings,
        config: AgentConfig | None = None,
        *,
        kb: KnowledgeBase | None = None,
        llm: BaseChatModel | None = None,
        prompt_loader: Callable[[str], LoadedPrompt] | None = None,
        identity: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.config = config or AgentConfig()
        self.kb = kb or KnowledgeBase(settings)
        self.llm = llm or make_chat_model(settings, self.config)
        self._prompt_loader = prompt_loader
        self._prompts: dict[str, LoadedPrompt] = {}
        self.identity = dict(identity or {})
        # the config is fixed for the agent's life: its trace identity is computed once
        self._config_tags = self.config.tags()
        self._config_json = self._config_tags.pop("agent.config")
        # conversation memory: thread id → its last turns (in this process by default; the agent
        # server swaps in a shared store so workers and replicas continue the same conversation;
        # a LangGraph checkpointer cost ~4 ms per request for the same effect)
        self.threads: ConversationStore = MemoryStore(self.MAX_THREADS)
        self._version_ids: dict[tuple[str, ...], VersionIdentity] = {}
        self.graph = self._build()

    def version_identity(self, prompt: str = "") -> VersionIdentity:
        """This agent's part of the VersionIdentity (config, prompt name@version, registered model,
        LLM, git commit); evaluation adds the dataset and scorers."""
        key = (prompt, *sorted(f"{k}={v}" for k, v in self.identity.items()))
        vi = self._version_ids.get(key)
        if vi is None:
            vi = VersionIdentity.build(self.config, self.settings, model=self.identity).merged(prompt=prompt)
            self._version_ids[key] = vi
        return vi

    # -- graph
    def _build(self) -> Any:
        g = StateGraph(State, context_schema=RunContext)
        g.add_node("guard", self._guard)
        g.add_node("cite", self._cite)
        g.add_edge(START, "guard")
        if self.config.policy == "react":
            g.add_node("model", self._model)
            g.add_node("tools", self._tools)
            g.add_conditional_edges("guard", lambda s: "cite" if s.get("refused") else "model")
            g.add_conditional_edges("model", self._after_model)
            g.add_edge("tools", "model")
        else:
            g.add_node("retrieve", self._retrieve)
            g.add_node("generate", self._extract if self.config.policy == "grounded" else self._generate)
            g.add_conditional_edges("guard", lambda s: "cite" if s.get("refused") else "retrieve")
            g.add_conditional_edges("retrieve", lambda s: "cite" if s.get("abstained") else "generate")
            g.add_edge("generate", "cite")
        g.add_edge("cite", END)
        return g.compile()

    def _guard(self, state: State) -> dict:
        question = state["question"]
        lang = detect_language(question, self.config.language)
        if not self.config.guardrails:
            return {"lang": lang, "refused": "", "abstained": False, "answer": "", "steps": 0}
        past = [str(m.content) for m in state.get("messages", [])[:-1] if isinstance(m, HumanMessage)]
        profile = self.config.screen_profile()
        with span(
            "guardrail",
            "GUARDRAIL",
            {"question": question, "history_turns": len(past), "profile": profile},
        ) as sp:
            verdict = self.screen_input(question, past)
            sp.set_outputs(
                {
                    **verdict.as_dict(),
                    "why_profile": (
                        f"policy {self.config.policy} makes no LLM call: rules that only protect an LLM "
                        "do not refuse; secret, exfiltration and harmful rules, the classifier and the "
                        "output checks run"
                        if profile == "extractive"
                        else f"policy {self.config.policy} calls an LLM: the full input screen"
                    ),
                }
            )
        if verdict.allowed:
            return {
                "lang": lang,
                "refused": "",
                "abstained": False,
                "answer": "",
                "steps": 0,
                "query": verdict.answerable,
            }
        reason = verdict.reason if lang == "en" or verdict.rule.startswith("ja_") else verdict.category
        return {
            "lang": lang,
            "refused": verdict.category,
            "abstained": False,
            "steps": 0,
            "answer": REFUSAL[lang].format(reason=reason),
        }

    def screen_input(self, question: str, history: list[str] | None = None, *, judge: bool = True) -> Any:
        """The input guardrail's verdict on ``question`` under this agent's policy (threshold,
        profile, judge) — what the graph's guard node applies. The agent server asks it, with
        ``judge=False`` (no network call on its event loop), before taking an LLM slot: a question
        the local layers refuse needs none."""
        return screen(
            question,
            history=history or [],
            threshold=self.settings.guardrail_threshold,
            judge=self._judge if judge and self.settings.guardrail_judge else None,
            profile=self.config.screen_profile(),
        )

    @cached_property
    def _judge(self) -> Callable[[str], str] | None:
        """The judge LLM client, built once per agent (not per question)."""
        if not self.settings.judge_base_url:
            return None
        from flywheel.llm import make_judge

        return make_judge(self.settings)

    def _retrieve(self, state: State, runtime: Runtime[RunContext]) -> dict:
        # excerpts that carry instructions are withheld first: they neither count as relevant nor reach the LLM
        # retrieve_first and grounded search the docs themselves, but only when doc_search is one of
        # the configured tools: tools=[] means no documentation, for every policy
        if "doc_search" not in self.config.tools:
            return {"abstained": True, "answer": ABSTAIN[state["lang"]]}
        hits = withhold_injected(run_doc_search(runtime.context.ctx, state.get("query") or state["question"]))
        threshold = self.config.min_relevance_ja if state["lang"] == "ja" else self.config.min_relevance
        if threshold is None:  # calibrated per embedding model (bench/multilingual.py), not guessed
            # (a knowledge base that does not say gets the default model's threshold)
            calibrated = getattr(self.kb, "relevance_threshold", None)
            threshold = (
                calibrated(state["question"], state["lang"])
                if calibrated
                else relevance_threshold("", state["lang"])
            )
        best = max((h["dense_score"] for h in hits), default=0.0)
        if hits and runtime.context.ctx.relevance is not None:  # the companion's own top cosine (Japanese)
            best = max(best, runtime.context.ctx.relevance)
        if best < threshold:
            return {"abstained": True, "answer": ABSTAIN[state["lang"]]}
        runtime.context.ctx.add_hits(hits)  # all top-k, in fused order (BM25-only hits carry no cosine score)
        return {"abstained": False}

    def _history(self, state: State) -> list[BaseMessage]:
        past: list[BaseMessage] = [
            m for m in state.get("messages", [])[:-1] if isinstance(m, HumanMessage | AIMessage) and m.content
        ]
        return past[-2 * self.config.history_turns :] if self.config.history_turns else []

    def prompt(self, lang: str) -> LoadedPrompt:
        """The system prompt for ``lang``: the config's, else the loader's (registry), else built-in."""
        if lang not in self._prompts:
            if self.config.system_prompt:
                self._prompts[lang] = LoadedPrompt(
                    self.config.system_prompt, self.config.prompt_name or "inline", "inline"
                )
            elif self._prompt_loader:
                self._prompts[lang] = self._prompt_loader(lang)
            else:
                self._prompts[lang] = LoadedPrompt(DEFAULT_SYSTEM_PROMPTS[lang], "builtin", "builtin")
        return self._prompts[lang]

    def _system_prompt(self, lang: str) -> str:
        return self.prompt(lang).text

    def _generate(self, state: State, runtime: Runtime[RunContext]) -> dict:
        context = format_context(runtime.context.ctx.hits, self.config.context_chars)[
            : self.config.max_prompt_chars
        ]
        system = f"{self._system_prompt(state['lang'])}\n\n{UNTRUSTED_HEADER}\n\n{context}"
        messages = [SystemMessage(system), *self._history(state), HumanMessage(state["question"])]
        reply = self._call_llm(runtime.context, messages)
        return {"answer": trim_repetition(str(reply.content).strip())}

    def _extract(self, state: State, runtime: Runtime[RunContext]) -> dict:
        """grounded: the answer is the excerpts' most relevant sentences, each cited."""
        cfg = self.config
        question = state.get("query") or state["question"]
        if state["lang"] == "ja" and getattr(self.kb.embedder, "english_only", False):
            # an English-only model ranks sentences against the question's English glosses
            question = getattr(self.kb, "translate", lambda q: None)(question) or question
        hits = runtime.context.ctx.hits
        with span("select_sentences", "PARSER", {"question": question}) as sp:
            stored_units = getattr(self.kb, "unit_vectors", None)  # a KnowledgeBase has them
            if self.settings.unit_vectors == "stored" and stored_units is not None:
                # computed at ingest, and the question vector the search computed
                units = stored_units([str(h.get("id", "")) for h in hits])
                stored = [units.get(str(h.get("id", "")), {}) for h in hits]
                qvec = self.kb.query_vector(question)
            else:  # bench/answers.py's baseline: every sentence embedded for every question
                stored, qvec = None, None
            chosen = select_units(
                question,
                hits,
                self.kb.embedder.embed_documents,
                qvec=qvec,
                stored=stored,
                max_units=cfg.answer_units,
                max_chars=cfg.answer_chars,
            )
            sp.set_outputs([{"n": c.unit.hit, "score": c.score, "text": c.unit.text} for c in chosen])
            sp.set_attributes({"stored_vectors": sum(bool(x) for x in stored or []), "hits": len(hits)})
        if not chosen:
            return {"abstained": True, "answer": ABSTAIN[state["lang"]]}
        lead = ""
        if state["lang"] == "ja":
            lead = japanese_lead(chosen, runtime.context.ctx.hits)
        elif cfg.lead_sentence:
            excerpts = "\n".join(c.unit.text for c in chosen)
            reply = self._call_llm(
                runtime.context,
                [
                    SystemMessage(
                        "Answer the question in ONE short sentence using only these excerpts. "
                        "No numbers, names or commands that are not in them.\n\n" + excerpts
                    ),
                    HumanMessage(state["question"]),
                ],
            )
            candidate = trim_repetition(str(reply.content).strip()).split("\n")[0][:300]
            lead = candidate if candidate and lead_is_grounded(candidate, excerpts) else ""
        return {"answer": compose(chosen, lead, section_citations(hits))}

    def _call_llm(self, run: RunContext, messages: list[BaseMessage], llm: Any = None) -> AIMessage:
        with span(
            "llm", "CHAT_MODEL", {"messages": [{"role": m.type, "content": m.content} for m in messages]}
        ) as sp:
            reply = (llm or self.llm).invoke(messages)
            usage = getattr(reply, "usage_metadata", None) or {}
            sp.set_outputs({"content": reply.content, "tool_calls": getattr(reply, "tool_calls", [])})
            sp.set_attributes(
                {
                    "model": self.config.model or self.settings.llm_model,
                    "input_tokens": usage.get("input_tokens", 0),
                    "output_tokens": usage.get("output_tokens", 0),
                }
            )
        for k in ("input_tokens", "output_tokens"):
            run.usage[k] = run.usage.get(k, 0) + int(usage.get(k, 0) or 0)
        return reply  # type: ignore[return-value]

    # react policy
    def _model(self, state: State, runtime: Runtime[RunContext]) -> dict:
        tools = build_tools(runtime.context.ctx)
        llm = self.llm.bind_tools(tools) if tools else self.llm
        convo = [m for m in state.get("messages", []) if not isinstance(m, SystemMessage)]
        reply = self._call_llm(
            runtime.context, [SystemMessage(self._system_prompt(state["lang"])), *convo[-12:]], llm
        )
        return {"messages": [reply], "steps": state.get("steps", 0) + 1, "answer": str(reply.content).strip()}

    def _after_model(self, state: State) -> str:
        last = state["messages"][-1]
        if getattr(last, "tool_calls", None) and state.get("steps", 0) < self.config.max_steps:
            return "tools"
        return "cite"

    def _tools(self, state: State, runtime: Runtime[RunContext]) -> dict:
        tools = {t.name: t for t in build_tools(runtime.context.ctx)}
        out = []
        for call in state["messages"][-1].tool_calls:  # type: ignore[attr-defined]
            tool = tools.get(call["name"])
            result = tool.invoke(call["args"]) if tool else f"Unknown tool {call['name']}"
            out.append(ToolMessage(str(result), tool_call_id=call["id"], name=call["name"]))
        return {"messages": out}

    def _cite(self, state: State, runtime: Runtime[RunContext]) -> dict:
        answer = state.get("answer", "")
        if state.get("refused") or state.get("abstained"):
            return {"messages": [AIMessage(answer)]}
        if self.config.policy == "react" and not runtime.context.ctx.hits and not answer:
            answer = ABSTAIN[state["lang"]]
        if self.config.guardrails:
            with span("output_guardrail", "GUARDRAIL", {"chars": len(answer)}) as sp:
                check = screen_output(
                    answer,
                    system_prompt=self._system_prompt(state["lang"]),
                    context=[h.get("text", "") for h in runtime.context.ctx.hits],
                    allow_hosts=self.settings.open_url_allow_hosts,
                    secrets=secret_values(self.settings),
                )
                sp.set_outputs({"findings": check.findings, "blocked": check.blocked})
            if check.blocked:
                answer = REFUSAL[state["lang"]].format(reason="the answer would reveal my instructions")
                return {"answer": answer, "refused": "prompt_leak", "messages": [AIMessage(answer)]}
            answer = check.text
        return {"answer": answer, "messages": [AIMessage(answer)]}

    # -- public API
    def ask(
        self,
        question: str,
        *,
        thread_id: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> AgentAnswer:
        """Answer ``question``; the result carries the sources, what happened, and the trace id."""
        result: AgentAnswer | None = None
        for event in self.stream(
            question,
            thread_id=thread_id,
            user_id=user_id,
            session_id=session_id,
            tags=tags,
            stream_tokens=False,
        ):
            if event["type"] == "final":
                result = event["answer"]
        assert result is not None
        return result

    def stream(
        self,
        question: str,
        *,
        thread_id: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        tags: dict[str, str] | None = None,
        stream_tokens: bool = True,
    ) -> Iterator[dict[str, Any]]:
        """Events: ``{"type": "delta", "text"}`` as the answer is generated, then
        ``{"type": "final", "answer": AgentAnswer}``. Refusals and abstentions arrive as one delta."""
        question = check_question(question, self.settings.max_question_chars)
        thread_id = thread_id or uuid.uuid4().hex
        run = RunContext(ToolContext(self.settings, self.kb, self.config))
        gateway: dict[str, str] = {}
        gw_token = GATEWAY.set(gateway)  # the LLM notes the gateway's route and A/B arm here
        t0 = time.perf_counter()
        streamed = False
        try:
            with span("docs_qa_agent", "AGENT", {"question": question, "thread_id": thread_id}) as root:
                state: dict[str, Any] = {}
                history: list[BaseMessage] = [
                    HumanMessage(text) if role == "user" else AIMessage(text)
                    for role, text in self.threads.history(thread_id)
                ]
                for mode, item in self.graph.stream(
                    {"question": question, "messages": [*history, HumanMessage(question)]},
                    stream_mode=["messages", "values"] if stream_tokens else ["values"],
                    context=run,
                ):
                    if mode == "values":
                        state = item
                    elif mode == "messages":
                        chunk, meta = item
                        text = chunk.content if isinstance(chunk.content, str) else ""
                        if (
                            text
                            and meta.get("langgraph_node") in ("generate", "model")
                            and not getattr(chunk, "tool_call_chunks", None)
                        ):
                            streamed = True
                            yield {"type": "delta", "text": text}
                result = self._finish(state, thread_id, run)  # type: ignore[arg-type]
                lang = state.get("lang", "en")
                prompt = self.prompt(lang)
                self._remember(thread_id, question, result.answer)
                vid = self.version_identity(f"{prompt.name}@{prompt.version}")
                result.identity = vid.compact()
                if tracing_enabled():
                    set_trace_identity(
                        root,
                        {
                            **self._config_tags,
                            **self.identity,
                            **(tags or {}),
                            "flywheel.identity_digest": vid.digest(),
                            **gateway,
                            "llm.model": self.config.model or self.settings.llm_model,
                            "prompt.name": prompt.name,
                            "prompt.version": prompt.version,
                            "agent.outcome": "refused"
                            if result.refused
                            else "abstained"
                            if result.abstained
                            else "answered",
                        },
                        session_id=session_id or thread_id,
                        user_id=user_id,
                    )
                result.prompt = f"{prompt.name}@{prompt.version}"
                root.set_attributes(  # details, not worth a tag each (every tag is a DB row per trace)
                    {
                        "llm.base_url": self.config.base_url or self.settings.llm_url,
                        "agent.config": self._config_json,
                        "flywheel.identity": json.dumps(result.identity, sort_keys=True),
                        "thread_id": thread_id,
                    }
                )
                root.set_outputs(
                    {
                        "answer": result.answer,
                        "sources": result.sources,
                        "refused": result.refused,
                        "abstained": result.abstained,
                    }
                )
                result.trace_id = getattr(root, "trace_id", None) or getattr(root, "request_id", None)
            result.latency_ms = (time.perf_counter() - t0) * 1000
        finally:
            GATEWAY.reset(gw_token)
        if stream_tokens and not streamed and result.answer:
            yield {"type": "delta", "text": result.answer}
        yield {"type": "final", "answer": result}

    def search(self, query: str, k: int | None = None) -> list[dict[str, Any]]:
        """Retrieval alone, traced like an answer (one trace, a RETRIEVER span): what doc_search
        returns for ``query`` — the floor of an answer's cost (bench/answers.py), and a way to see
        what the agent would read."""
        query = check_question(query, self.settings.max_question_chars)
        config = self.config if k is None else self.config.model_copy(update={"top_k": k})
        ctx = ToolContext(self.settings, self.kb, config)
        with span("docs_search", "AGENT", {"query": query}) as root:
            hits = run_doc_search(ctx, query)
            out = [
                {
                    "n": n,
                    "id": h["id"],
                    "title": h["title"],
                    "headings": h["headings"],
                    "source": h["source"],
                    "score": round(float(h.get("dense_score", 0.0)), 4),
                    "text": h["text"],
                }
                for n, h in enumerate(hits, 1)
            ]
            root.set_outputs({"hits": [{k: v for k, v in h.items() if k != "text"} for h in out]})
        return out

    MAX_THREADS = 10_000

    def _remember(self, thread_id: str, question: str, answer: str) -> None:
        self.threads.remember(thread_id, question, answer, keep=2 * max(self.config.history_turns, 1))

    def _finish(self, state: State, thread_id: str, run: RunContext) -> AgentAnswer:
        answer = state.get("answer", "")
        refused, abstained = bool(state.get("refused")), bool(state.get("abstained"))
        sources: list[dict] = []
        if not refused and not abstained:
            hits = run.ctx.hits
            cited = sorted({n for n in cited_numbers(answer) if 0 < n <= len(hits)})
            # A source list is always given: the cited ones, else every excerpt the answer was based
            # on (one per section: two chunks of one section are one source)
            sections = section_citations(hits)
            for n in cited or sorted(set(sections.values())):
                h = hits[n - 1]
                sources.append(
                    {
                        "n": n,
                        "title": h["title"],
                        "headings": h["headings"],
                        "source": h["source"],
                        "score": round(float(h.get("dense_score", 0.0)), 4),
                        "cited": bool(cited),
                    }
                )
        return AgentAnswer(
            answer=answer,
            sources=sources,
            refused=refused,
            refusal_category=state.get("refused", ""),
            abstained=abstained,
            tools_called=list(run.ctx.calls),
            search_queries=list(run.ctx.queries),
            thread_id=thread_id,
            contexts=[h.get("text", "") for h in run.ctx.hits],
            usage=dict(run.usage),
        )
