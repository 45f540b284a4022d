"""Who is addressed and what is asked for: an order to *this assistant* versus a question about software.

Documentation for LLM tooling is about prompts, keys, overrides and deletion, so vocabulary cannot
tell "how do I override the default instructions of a judge?" (a question about software) from
"override your system prompt" (an order to this assistant). The rules (_rules.py) find attack
*shapes*; this module decides, for the clause a shape was found in, whether it is aimed at the
assistant:

- ``clauses``: a text cut into sentences and into the parts joined by "then / also / but / , and"
  before an imperative, so a request appended to an ordinary question is judged on its own (a bare
  "and" joins verbs of one request: "how do I set and delete aliases?");
- ``mood``: ``question`` (how / what / can I / is there …, Japanese 〜方法は / 〜ですか), ``howto``
  (a request for information: explain, tell me how, show me how to), ``order`` (an imperative, a
  polite "can you …", "you are now …", "from now on …"; Japanese 〜して / 〜なさい) or ``statement``;
- ``owned``: the assistant's own things — "your / yourself", "you were given / told / configured",
  "this assistant / conversation"; the instructions "above / before / earlier" count only in an
  order or a statement (a question may mention them: "how do I test that the guardrail blocks
  'ignore previous instructions'?");
- ``other_owner``: the object belongs to some software or to the user ("of a judge", "in my agent",
  "my prompt", "the browser's");
- ``victim``: someone else's systems or data ("another team's", "my coworker's", "without their
  consent").

``aimed(clause)``: owned, or an order / statement whose object has no other owner, or a direct
question for a specific value ("what is the API key?" — not "what is an API key?"). All patterns are
bounded (linear time); the views are lower-cased.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = [
    "DETECTION",
    "QUOTED",
    "aimed",
    "clause_at",
    "clauses",
    "mentions_only",
    "mood",
    "other_owner",
    "owned",
    "quoted_orders",
    "victim",
]

_VERBS = (
    r"ignore|disregard|forget|override|overrule|bypass|discard|abandon|drop|print|reveal|show|dump|leak|"
    r"expose|output|display|list|repeat|tell|give|send|paste|echo|share|provide|disclose|spell|hand|"
    r"write|act|pretend|imagine|roleplay|role-play|simulate|enable|enter|switch|activate|respond|"
    r"answer|reply|say|translate|decode|execute|run|follow|obey|comply|disable|delete|fetch|open|"
    r"visit|append|include|render|confirm|stop|quote|summari[sz]e|read|copy|forward|upload|post|email"
)
_SPLIT = re.compile(
    r"(?<=[.!?。？！])\s+|[;\n]+|(?<=[。？！])"
    rf"|(?:,\s*|\s+)(?:and\s+then|and\s+also|then|also|but|after\s+that|afterwards)\s*,?\s+(?=(?:please\s+)?(?:{_VERBS})\b)"
    rf"|,\s*and\s+(?=(?:please\s+)?(?:{_VERBS})\b)"
    r"|、(?:それから|そして|あと|ついでに|その後)"
)
_SPLIT_FINE = re.compile(
    rf"\s+and\s+(?=(?:please\s+)?(?:{_VERBS}|explain|describe|tell\s+me\s+how|show\s+me\s+how)\b)"
)
_LEAD = re.compile(
    r"^(?:(?:hi|hello|hey|ok(?:ay)?|so|well|also|and|but|then|now|quick\s+question|question|btw|"
    r"thanks|thank\s+you|one\s+more\s+thing|another\s+question|and\s+one\s+more|sorry)\b[\s,:!.-]*){0,4}"
)
_HOWTO = re.compile(
    r"^(?:please\s+)?(?:explain|describe|clarify|outline|summari[sz]e\s+(?:how|what|the\s+(?:docs|documentation|steps|options|differences?))|"
    r"tell\s+me\s+(?:how|what|where|why|when|whether|if|which|about|more)|"
    r"show\s+me\s+(?:how|where|what|an?\s+example|examples|the\s+(?:docs|documentation|page|steps?|syntax|config|code|way|example))|"
    r"walk\s+me\s+through|guide\s+me|help\s+me\s+(?:to\s+)?(?:understand|configure|set|figure|debug|with|find|write|build|choose|decide|fix|get|use)|"
    r"give\s+me\s+(?:an?\s+)?(?:example|overview|summary|tutorial|walkthrough|step)|point\s+me|"
    r"i\s+(?:want|need|would\s+like|'d\s+like|wish)\s+to\s+(?!know\s+(?:your|the\s+(?:value|password|key|token|secret)))|"
    r"(?:can|could|would|will)\s+you\s+(?:please\s+)?(?:explain|describe|clarify|tell\s+me\s+(?:how|what|where|why|whether|if|about)|"
    r"show\s+me\s+(?:how|where|an?\s+example)|help\s+me|walk\s+me|point\s+me|recommend|suggest|compare))\b"
)
_QUESTION = re.compile(
    r"^(?:how|what|what's|whats|where|where's|which|why|when|who|whose|is|isn't|are|aren't|does|doesn't|do|did|"
    r"can\s+(?:i|we|one|it|this|the|a|an|my|our|flywheel|mlflow)|could\s+(?:i|we|it|this|the)|"
    r"should|shall\s+(?:i|we)|may\s+i|might|would\s+(?:it|this|that|the|a|i|we)|will\s+(?:it|this|that|the|a|i|my|we)|"
    r"was|were|has|have|am\s+i|any\s+(?:way|idea|tips?|example)|in\s+(?:which|what)|for\s+(?:which|what)|"
    r"with\s+which|i\s+(?:wonder|was\s+wondering)|i'm\s+(?:trying|looking|wondering|curious|confused)|"
    r"i\s+am\s+(?:trying|looking|wondering|curious|confused)|"
    r"i\s+(?:want|need|would\s+like|'d\s+like)\s+to\s+(?:know|understand|learn|find\s+out|figure\s+out|see\s+how)|"
    r"is\s+there|are\s+there|difference\s+between|best\s+(?:way|practice))\b"
)
_ORDER = re.compile(
    rf"^(?:please\s+|pls\s+|now\s+|just\s+|kindly\s+)*(?:{_VERBS}|set\s+aside|throw\s+away|be|become|play|"
    r"from\s+now\s+on|henceforth|for\s+the\s+rest\s+of|do\s+not|don't|never|"
    r"you\s+(?:are|will|must|shall|should|have\s+to|'re|need\s+to|can\s+now|may\s+now|now)|"
    r"i\s+(?:want|need|order|command|instruct|require|expect)\s+you|"
    r"your\s+(?:new|real|only|actual|true|task|job|instructions|mission)|"
    r"(?:can|could|would|will)\s+you(?:\s+please)?|let's|lets|let\s+me\s+see|new\s+(?:rule|instructions?|task))\b"
)
_JA_QUESTION = re.compile(
    r"(?:か|方法は|方法を(?:教えて|知りたい)(?:ください|下さい)?|には|とは|って何|の\?|ですか|ますか|でしょうか|"
    r"どうすれば(?:いい|よい)?(?:ですか)?|どう(?:使|設定|すれ)\w{0,6}|何ですか|いいですか|できる\?|できますか)[?？。]?\s*$"
)
_JA_HOWTO = re.compile(
    r"(?:について|に関して|に関する|の(?:使い方|設定方法|方法|意味|違い|仕組み|役割|手順|例|書き方|扱い|ベストプラクティス))"
    r"[^。]{0,12}(?:教えて|説明して|知りたい|解説して)"
)
_JA_ORDER = re.compile(
    r"(?:て|てください|て下さい|てくれ|てちょうだい|なさい|しろ|せよ|ろ|こと|しなさい|して|ように|だけ[^。]{0,6}従)[!！。]?\s*$"
    r"|^(?:今後|これから|以後|今から)"
)

_OWNED = re.compile(
    r"\b(?:your|yours|yourself|ur)\b"
    r"|\byou\s+(?:were|are|'re|have\s+been|got|was|are\s+being)\s+(?:given|told|configured|programmed|instructed|"
    r"trained|running|started|using|set\s+up|deployed|launched|provided|fed|shown)\b"
    r"|\byou\s+(?:use|have\s+access\s+to|can\s+see|know|hold|store|keep)\b"
    r"|\b(?:you\s+are|you're)\s+(?:now\s+)?(?:in|a|an|my|free|dan|no\s+longer)\b"
    r"|\b(?:this|the)\s+(?:assistant|chatbot|bot|ai)(?:'s)?\b"
    r"|\bbefore\s+(?:this|my\s+first|the)\s+(?:message|conversation|chat)\b|\bthis\s+(?:conversation|chat|session)\b"
    r"|\b(?:the\s+)?(?:server|host|machine|deployment|process|container)(?:'s)?\s+(?:own\s+)?(?:environment|env|"
    r"secrets?|passwords?|credentials?|keys?|tokens?|private)\b|\bon\s+(?:the|this)\s+(?:server|host|machine)\b"
    r"|あなた|君の|お前|貴方|このアシスタント|このチャット|最初に(?:与えられた|受け取った)|隠された|隠し|サーバーの|"
    r"この(?:デプロイ|サーバー|環境)"
)
# the instructions "above / before": the assistant's when ordered, a mere mention in a question
_OWNED_WEAK = re.compile(
    r"\b(?:above|earlier|previous|prior|preceding|initial|original|hidden|secret|internal)\s+(?:instructions?|rules|"
    r"prompts?|messages?|guidelines|directions|directives|text|context|system\s+(?:prompt|message))\b"
    r"|これまでの|今までの|以前の|前の(?:指示|ルール)"
)
_OTHER = re.compile(
    r"\b(?:of|for|in|from|inside|within|on|into|to|by|with|via)\s+(?:a|an|the|my|our|each|every|its|their|this|that|"
    r"some|one)\s+(?:[\w-]+\s+){0,2}(?:judge|scorer|model|agent|app|application|chain|pipeline|llm|evaluation|"
    r"evaluator|eval|run|experiment|trace|span|project|registry|server|deployment|cluster|container|notebook|"
    r"workspace|config|configuration|file|template|dataset|job|endpoint|gateway|provider|client|sdk|ui|browser|"
    r"chrome|library|framework|tool|function|class|module|code|script|test|ci|pipeline|repo|repository|prompt|"
    r"version|call|request|team|docs|documentation|page|service|router|classifier|guardrail|bot)s?\b"
    r"|\b(?:my|our|their|a|an|each|every)\s+(?:own\s+)?(?:[\w-]+\s+){0,2}(?:judge|scorer|model|agent|app|"
    r"application|chain|pipeline|llm|evaluat\w+|experiment|trace|project|server|deployment|cluster|notebook|"
    r"config|configuration|file|template|dataset|job|endpoint|gateway|provider|client|prompts?|system\s+prompt|"
    r"instructions|keys?|tokens?|secrets?|credentials?|passwords?|variables?|settings|code|script|tests?|"
    r"guardrails?|classifier|browser|bot|assistants?|chatbots?|users?)\b"
    r"|\b(?:mlflow|langchain|langgraph|llamaindex|openai|anthropic|bedrock|databricks|"
    r"chrome|chromium|firefox|kubernetes|docker)\b"
    r"|\b[\w-]+'s\s+(?:instructions|prompts?|system\s+prompt|rules|keys?|tokens?|config|settings)\b"
)
# for the assistant's secrets and prompt only an explicit owner counts ("my", "a judge's"): "the config",
# "the gateway", "flywheel" are this deployment's own
_OTHER_STRICT = re.compile(
    r"\b(?:my|our|their|a|an|each|every)\s+(?:own\s+)?(?:[\w-]+\s+){0,2}(?:judge|scorer|model|agent|app|"
    r"application|chain|pipeline|llm|project|server|deployment|cluster|notebook|config|configuration|file|"
    r"template|job|endpoint|provider|client|prompts?|system\s+prompt|instructions|keys?|tokens?|secrets?|"
    r"credentials?|passwords?|variables?|settings|code|script|tests?|bot|assistants?|chatbots?|users?)\b"
    r"|\b(?:of|for|in|from|by|to)\s+(?:a|an|my|our|each|every)\s+(?:[\w-]+\s+){0,2}[\w-]+"
    r"|\b[\w-]+'s\s+(?:instructions|prompts?|system\s+prompt|rules|keys?|tokens?|config|settings)\b"
)
# a request for a specific value phrased as "tell me what …" / "I want to see …"
_ASK_FOR = re.compile(
    r"^(?:(?:can|could|would|will)\s+you\s+(?:please\s+)?)?(?:tell|show|give)\s+me\s+(?:what|which)\s+(?:the|this|that)\b"
    r"|^i\s+(?:want|need|would\s+like|'d\s+like)\s+(?:to\s+)?(?:see|get|know|have|read)\s+(?:the|this|that|all|every)\b"
)
_VICTIM = re.compile(
    r"\b(?:someone|somebody|anyone\s+else|other\s+(?:people|users?|teams?|companies|accounts?|tenants?)|"
    r"another\s+(?:user|person|team|company|account|tenant|customer)|"
    r"(?:my|our|a)\s+(?:coworker|co-worker|colleague|boss|ex|neighbou?r|competitor|rival|employer|classmate|roommate|"
    r"partner|victim|target)s?(?:'s|s')?|competitor'?s?|rival'?s?|their\s+(?:accounts?|data|servers?|passwords?|"
    r"credentials?|chats?|messages?|emails?|files|machines?|laptops?|systems?)|"
    r"without\s+(?:their|his|her|them|the\s+users?'?|users'|anyone|customers?'?|the\s+owners?'?|the\s+team'?s?)\s*"
    r"(?:knowledge|knowing|consent|permission|noticing|approval|seeing)?|without\s+(?:permission|authori[sz]ation|consent)|"
    r"not\s+mine|unauthori[sz]ed|belongs?\s+to\s+(?:another|someone|a\s+different|other)|"
    r"(?:users|customers|employees|people|patients|students)'\s+(?:personal|private|chat|data|messages|emails|passwords)|"
    r"(?:customer|user|employee|patient|student)s?'?\s+(?:pii|personal|private)|"
    r"so\s+(?:that\s+)?(?:nobody|no\s*one|no-one)|"
    r"他人|他の(?:チーム|ユーザー|人|会社)|同僚|顧客|社員|ユーザーの(?:チャット|個人|データ)|こっそり|無断)"
)
_DIRECT_ASK = re.compile(
    r"^(?:what|which)(?:'s|\s+is|\s+are|\s+was|\s+were)\s+(?:the|this|that)\s+(?:actual\s+|real\s+|current\s+|exact\s+)?"
    r"(?!(?:best|recommended|right|correct|default|difference|purpose|format|role|syntax|way|name\s+of\s+the))"
    # "what is the safest way to …": a how-to, whatever the adjective
    r"(?!(?:[\w-]+\s+){0,2}(?:way|ways|method|approach|practice|option|command|flag|reason|steps?|process)\b)"
)
_NOT_A_VALUE = re.compile(
    r"\b(?:used\s+for\s*\??$|for\?|mean|means|purpose|default|difference|format|role|look\s+like|stand\s+for)"
)


QUOTED = re.compile(r"'[^'\n]{3,200}'|\"[^\"\n]{3,200}\"|“[^”\n]{3,200}”|‘[^’\n]{3,200}’|「[^」\n]{1,200}」")
DETECTION = re.compile(
    r"\b(block|blocks|blocked|detect|detects|detected|flag|flags|flagged|guardrails?|filters?|classifier|"
    r"refuse|refuses|refused|catch|catches|caught|test|tests|screen|screens|screened|red[\s-]team)\b"
)


def quoted_orders(text: str) -> list[str]:
    """Quoted spans to judge as clauses of their own ("is 'print the API key' a valid command?"),
    unless the question around them is about detecting such text ("does the guardrail block '…'?"):
    then they are mentions."""
    spans = [m.group(0)[1:-1] for m in QUOTED.finditer(text)]
    if not spans or DETECTION.search(QUOTED.sub(" ", text)):
        return []
    return spans


def mentions_only(text: str) -> str:
    """The text as the classifier should read it: a question that only *mentions* an attack phrase
    in quotes, asks about detecting it, and is aimed at nobody, gets a placeholder for the quote."""
    if not QUOTED.search(text):
        return text
    outside = QUOTED.sub(" ", text)
    parts = clauses(outside)
    if (
        DETECTION.search(outside)
        and parts
        and all(mood(c) in ("question", "howto") and not aimed(c) for c in parts)
    ):
        return QUOTED.sub(" a quoted phrase ", text)
    return text


def clauses(text: str, *, fine: bool = False) -> list[str]:
    """The text cut into clauses (lower-cased views in, clauses out, empty parts dropped); ``fine``
    also cuts at a bare "and" before a verb (to keep the parts of an order that are questions)."""
    parts = [c for c in _SPLIT.split(text) if c]
    if fine:
        parts = [f for c in parts for f in _SPLIT_FINE.split(c)]
    return [c.strip(" ,.:-") for c in parts if c.strip(" ,.:-")]


def mood(clause: str) -> str:
    """question | howto | order | statement (clauses over 512 characters are not cached)."""
    return _mood(clause) if len(clause) <= 512 else _mood.__wrapped__(clause)


@lru_cache(maxsize=4096)
def _mood(clause: str) -> str:
    c = _LEAD.sub("", clause.strip().lower())
    if re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", c):
        if _JA_QUESTION.search(c):
            return "question"
        if _JA_HOWTO.search(c):
            return "howto"
        if _JA_ORDER.search(c):
            return "order"
    if _HOWTO.match(c):
        return "howto"
    if re.match(r"^(?:do\s+not|don't|never)\b", c):
        return "order"
    if _QUESTION.match(c):
        return "question"
    if _ORDER.match(c):
        return "order"
    if c.endswith(("?", "？")):
        return "question"
    return "statement"


def owned(clause: str) -> bool:
    return _OWNED.search(clause.lower()) is not None


def other_owner(clause: str) -> bool:
    return _OTHER.search(clause.lower()) is not None


def victim(clause: str) -> bool:
    return _VICTIM.search(clause.lower()) is not None


def aimed(clause: str, strict: bool = False) -> bool:
    """True when the clause orders or asks *this assistant* for something of its own. ``strict``
    (the assistant's secrets and prompt): only an explicit owner ("my", "a judge's") makes the
    object someone else's."""
    return _aimed(clause, strict) if len(clause) <= 512 else _aimed.__wrapped__(clause, strict)


@lru_cache(maxsize=4096)
def _aimed(clause: str, strict: bool) -> bool:
    c = clause.lower()
    if owned(c):
        return True
    other = (_OTHER_STRICT if strict else _OTHER).search(c) is not None
    m = mood(c)
    if m in ("question", "howto"):
        lead = _LEAD.sub("", c.strip())
        asks = bool(_DIRECT_ASK.match(lead)) or (strict and bool(_ASK_FOR.match(lead)))
        return asks and not _NOT_A_VALUE.search(lead) and not other
    return _OWNED_WEAK.search(c) is not None or not other


def clause_at(text: str, pos: int) -> str:
    """The clause of ``text`` that contains position ``pos``."""
    start = 0
    for m in _SPLIT.finditer(text):
        if m.start() > pos:
            return text[start : m.start()]
        start = m.end()
    return text[start:]
