"""Evaluation: golden datasets, scorers, targets, a concurrent resumable runner, reports, comparison."""

from flywheel.evaluation._dataset import (
    KINDS,
    Dataset,
    GoldenItem,
    load_dataset,
    register_dataset,
    save_dataset,
)
from flywheel.evaluation._facts import FactMatcher, answer_sentences
from flywheel.evaluation._langfuse import LangfuseScore, push_scores
from flywheel.evaluation._redteam import FAMILIES as REDTEAM_FAMILIES
from flywheel.evaluation._redteam import RedTeamReport, run_redteam, sweep_stale_collections
from flywheel.evaluation._report import compare, kind_table, load_items, write_reports
from flywheel.evaluation._runner import (
    EvalOptions,
    EvalResult,
    ItemResult,
    aggregate,
    run_evaluation,
    run_identity,
    version_identity,
)
from flywheel.evaluation._scorers import (
    DEFAULT_SCORERS,
    ONLINE_SCORERS,
    PRICES,
    SCORERS,
    EvalOutput,
    Score,
    Scorer,
    ScorerContext,
    make_scorer,
    register_scorer,
    scorer_context,
    scorer_spec,
)
from flywheel.evaluation._targets import AgentTarget, HttpTarget, Target, make_target
from flywheel.llm import judge_identity, make_judge

__all__ = [
    "DEFAULT_SCORERS",
    "KINDS",
    "ONLINE_SCORERS",
    "PRICES",
    "REDTEAM_FAMILIES",
    "SCORERS",
    "AgentTarget",
    "Dataset",
    "EvalOptions",
    "EvalOutput",
    "EvalResult",
    "FactMatcher",
    "GoldenItem",
    "HttpTarget",
    "ItemResult",
    "LangfuseScore",
    "RedTeamReport",
    "Score",
    "Scorer",
    "ScorerContext",
    "Target",
    "aggregate",
    "answer_sentences",
    "compare",
    "judge_identity",
    "kind_table",
    "load_dataset",
    "load_items",
    "make_judge",
    "make_scorer",
    "make_target",
    "push_scores",
    "register_dataset",
    "register_scorer",
    "run_evaluation",
    "run_identity",
    "run_redteam",
    "save_dataset",
    "scorer_context",
    "scorer_spec",
    "sweep_stale_collections",
    "version_identity",
    "write_reports",
]
