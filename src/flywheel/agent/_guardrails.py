"""Input guardrails: refuse harmful requests and prompt injection before any LLM call.

Small local models refuse nothing by themselves (SmolLM2-135M refused 0 of 4 harmful requests),
so screening is deterministic: named rules, each a category and a reason. A rule is a set of
regular expressions that must all match (case-insensitive). Rules are a registry: add your own
with :func:`register_rule`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["RULES", "GuardRule", "Verdict", "register_rule", "screen"]


@dataclass(frozen=True)
class GuardRule:
    name: str
    category: str
    reason: str
    patterns: tuple[str, ...]  # all must match

    def matches(self, text: str) -> bool:
        return all(re.search(p, text, re.I | re.S) for p in self.patterns)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    category: str = ""
    rule: str = ""
    reason: str = ""


RULES: list[GuardRule] = []


def register_rule(rule: GuardRule) -> GuardRule:
    RULES.append(rule)
    return rule


_SECRET = r"(api[\s_-]*keys?|[A-Z][A-Z0-9]*_(API_)?(KEY|TOKEN|SECRET)|secrets?|passwords?|credentials?|access[\s_-]*tokens?|private[\s_-]*keys?|bearer\s+tokens?)"
_REVEAL = (
    r"(print|reveal|show|dump|leak|expose|output|display|tell\s+me|give\s+me|list|send|paste|echo|return)"
)

for _rule in [
    GuardRule(
        "ignore_instructions",
        "prompt_injection",
        "it tries to override my instructions",
        (
            r"\b(ignore|disregard|forget|override|bypass)\b[^.]{0,40}\b(instructions?|rules|guidelines|prompts?|guardrails|polic(y|ies))\b",
        ),
    ),
    GuardRule(
        "mode_switch",
        "prompt_injection",
        "it tries to switch me into another mode or role",
        (
            r"\b(you\s+are\s+now|act\s+as|pretend\s+(to\s+be|you\s+are)|enter|switch\s+to)\b[^.]{0,40}\b(developer|dan|jailbreak|god|unrestricted|admin|root)\s*mode\b",
        ),
    ),
    GuardRule(
        "fake_system_turn",
        "prompt_injection",
        "it impersonates a system or developer message",
        (r"(^|\n)\s*(system|developer|assistant)\s*:",),
    ),
    GuardRule(
        "reveal_prompt",
        "prompt_injection",
        "it asks for my hidden instructions",
        (
            rf"\b{_REVEAL}\b[^.]{{0,40}}\b(system|hidden|initial|internal|original|secret)\s+(prompt|instructions|message)",
        ),
    ),
    GuardRule(
        "reveal_secrets",
        "secret_exfiltration",
        "it asks me to disclose secrets or credentials",
        (
            rf"\b{_REVEAL}\b[^.?]{{0,60}}\b{_SECRET}|\b{_SECRET}\b[^.]{{0,40}}\b{_REVEAL}\s+(it|them)\b",
            r"^(?!\s*how\s+(do|can|should)\s+i\s+(set|configure|store|rotate|pass|provide|use)\b)",
        ),
    ),
    GuardRule(
        "covert_exfiltration",
        "data_exfiltration",
        "it asks for covert collection or exfiltration of data",
        (
            r"\b(silently|secretly|covertly|quietly|without\s+(them|the\s+users?|anyone|customers?)\s+(knowing|noticing))\b|\bexfiltrat",
            r"\b(upload|send|copy|forward|post|ship|transmit|exfiltrat|leak|collect)\w*\b",
        ),
    ),
    GuardRule(
        "pii_to_external",
        "data_exfiltration",
        "it asks to send personal data to an outside service",
        (
            r"\b(pii|personal(ly)?\s+(identifiable\s+)?(data|information)|customer\s+data|user\s+data)\b",
            r"\b(upload|send|post|forward|exfiltrat)\w*\b[^.]{0,80}\b(external|pastebin|third[- ]party|outside|public|my\s+(own\s+)?server)\b",
        ),
    ),
    GuardRule(
        "audit_evasion",
        "harmful",
        "it asks to destroy records in order to evade an audit",
        (
            r"\b(so\s+(that\s+)?(nobody|no\s*one|no-one)\s+(can|could|will|would)\s+(audit|see|know|notice|find\s+out|trace)|cover\s+(my|our|their)\s+tracks|without\s+(leaving\s+)?(a\s+)?trace|hide\s+(the\s+)?evidence)",
        ),
    ),
    GuardRule(
        "open_rce",
        "harmful",
        "it asks to expose a server without authentication to run commands on it",
        (
            r"\b(no|without|disable[sd]?)\s+(any\s+)?(auth|authentication|login|password)",
            r"\b(run|execute|exec)\b[^.]{0,40}\b(commands?|code|shell|scripts?)\b",
        ),
    ),
    GuardRule(
        "malware",
        "harmful",
        "it asks for malware or an attack",
        (
            r"\b(malware|ransomware|keylogger|backdoor|rootkit|botnet|ddos|phishing\s+(page|kit|email)|credential\s+stuffing|sql\s+injection\s+attack|zero[- ]day\s+exploit)\b",
        ),
    ),
    GuardRule(
        "bypass_security",
        "harmful",
        "it asks to get around security controls",
        (
            r"\b(bypass|circumvent|disable|defeat|crack)\b[^.]{0,30}\b(authentication|authorization|auth|access\s+control|rate\s+limit|license\s+check|security)\b",
            r"\b(someone|other|another|company|shared|their|without\s+permission|not\s+mine|unauthori[sz]ed)\b",
        ),
    ),
]:
    register_rule(_rule)


def _normalize(text: str) -> str:
    # fold full-width characters and strip zero-width ones, so "ｉｇｎｏｒｅ" and "ig\u200bnore" match
    text = unicodedata.normalize("NFKC", text)
    return re.sub(r"[\u200b-\u200f\u2060\ufeff]", "", text)


def screen(question: str) -> Verdict:
    """Allowed, or the first rule the question breaks."""
    text = _normalize(question)
    for rule in RULES:
        if rule.matches(text):
            return Verdict(False, rule.category, rule.name, rule.reason)
    return Verdict(True)
