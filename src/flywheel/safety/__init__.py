"""Safety: the layered guardrail (normalization, rules, classifier, optional LLM judge), screening of
untrusted content and of answers. See docs/security.md for what each layer catches and misses."""

from flywheel.safety._address import aimed, clauses, mood
from flywheel.safety._check import GuardrailCheck, check_questions
from flywheel.safety._classifier import Classifier, load_classifier
from flywheel.safety._guard import OutputCheck, Verdict, screen, screen_output, screen_untrusted
from flywheel.safety._mining import TRIGGERS, MinedQuestion, first_person, mine_questions, trigger_family
from flywheel.safety._normalize import Views, views
from flywheel.safety._rules import RULES, GuardRule, register_rule

__all__ = [
    "RULES",
    "TRIGGERS",
    "Classifier",
    "GuardRule",
    "GuardrailCheck",
    "MinedQuestion",
    "OutputCheck",
    "Verdict",
    "Views",
    "aimed",
    "check_questions",
    "clauses",
    "first_person",
    "load_classifier",
    "mine_questions",
    "mood",
    "register_rule",
    "screen",
    "screen_output",
    "screen_untrusted",
    "trigger_family",
    "views",
]
