"""Layer 2 of the guardrail: a small set of high-precision rules, in English and Japanese.

A rule is a category, a reason, regular expressions that must all match one view of the text (see
_normalize.py) and a *target*: whom the shape must be aimed at for the rule to refuse.

- ``assistant``: only when the clause the shape is in is aimed at this assistant (_address.py: an
  order, or a question about the assistant's own instructions, secrets, tools or users) — "ignore
  your instructions" is refused, "how do I ignore the instructions of a judge?" is not; for the
  assistant's secrets and prompt only an explicit owner ("my config", "a judge's prompt") makes
  the object someone else's — "print the API key in the config" is refused;
- ``victim``: at someone else's systems or data ("another team's", "without their consent") or the
  assistant's own — "delete old experiments" or "bypass the rate limit" about one's own setup pass;
- ``assistant_or_victim``: aimed at the assistant, or at someone else's (covert collection);
- ``any``: the shape is an attack whoever is addressed (forged role markers, exfiltration images,
  malware, instructions hidden in an encoding to be followed).

A shape found only in clauses it is not aimed from is *waived* (the verdict lists it). ``llm_only``
rules protect an LLM from being steered (instruction overrides, personas, forged turns): a policy
that makes no LLM call need not refuse on them (see _guard.py). Rules are written for attack
shapes, not for particular sentences; whatever they miss is the classifier's job. Every pattern is
linear-time: no nested or unbounded repetition across lines (gaps are bounded, e.g. ``.{0,60}``).
Add your own with :func:`register_rule`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from flywheel.safety._address import aimed, clause_at, clauses, owned, quoted_orders, victim

__all__ = ["RULES", "GuardRule", "match_rules", "register_rule"]


@dataclass(frozen=True)
class GuardRule:
    name: str
    category: str
    reason: str
    patterns: tuple[str, ...]  # all must match (case-insensitive; the views are lower-case)
    views: tuple[str, ...] = ("text", "despaced", "deleet", "hidden", "decoded", "transformed")
    target: str = "assistant"  # assistant | assistant_or_victim | victim | any
    llm_only: bool = False  # it only protects an LLM: an extractive policy need not refuse on it
    _compiled: tuple[re.Pattern[str], ...] = field(default=(), compare=False, repr=False)

    def compiled(self) -> tuple[re.Pattern[str], ...]:
        if not self._compiled:
            object.__setattr__(self, "_compiled", tuple(re.compile(p, re.I | re.S) for p in self.patterns))
        return self._compiled

    def matches(self, text: str) -> bool:
        return all(p.search(text) for p in self.compiled())

    def _aimed(self, clause: str) -> bool:
        strict = self.category == "secret_exfiltration" or self.name in _STRICT
        if self.target == "victim":
            return victim(clause) or owned(clause)
        if self.target == "assistant_or_victim":
            return aimed(clause) or victim(clause)
        return aimed(clause, strict)

    def aimed_match(self, text: str) -> tuple[bool, bool]:
        """(matched, aimed): whether the shape is in the text, and whether some occurrence of it is
        in a clause aimed the way the rule's target says. Every clause is searched on its own too:
        a match that starts in a harmless clause must not hide an aimed one after it."""
        first, *rest = self.compiled()
        if not all(p.search(text) for p in rest):
            return False, False
        found = False
        for m in first.finditer(text):
            found = True
            if self.target == "any" or self._aimed(clause_at(text, m.start())):
                return True, True
        if found:
            for clause in [*clauses(text), *quoted_orders(text)]:
                if first.search(clause) and self._aimed(clause):
                    return True, True
        return found, False


_STRICT = frozenset({"prompt_disclosure", "prompt_echo", "ja_prompt_disclosure", "ja_secret_value"})
RULES: list[GuardRule] = []
ON_CHANGE: list[Callable[[], None]] = []  # cached verdicts to drop when the rules change


def register_rule(rule: GuardRule) -> GuardRule:
    RULES.append(rule)
    for clear in ON_CHANGE:
        clear()
    return rule


# words, bounded gaps; the views are lower-cased
_DROP = r"(ignore|disregard|forget|override|overrule|bypass|discard|abandon|drop|set\s+aside|throw\s+away|stop\s+following|no\s+longer\s+follow)"
_PRIOR = r"(previous|prior|above|earlier|preceding|initial|original|all|any|every|your|the|these|those|my\s+earlier)"
_RULESW = r"(instructions?|rules|guidelines|guardrails|directives|constraints|restrictions|polic(y|ies)|system\s+(prompt|message)|programming|safety\s+(settings|rules|filters?))"
_SECRET = r"(api[\s_-]*keys?|[a-z][a-z0-9]*_(api_)?(key|token|secret|password)\b|secret\s+(access\s+)?(keys?|tokens?)|secrets\b|(configuration|config|settings|environment)\s+(with|including)\s+(the\s+|all\s+)?(keys|secrets|tokens|credentials)|passwords?|credentials?|access[\s_-]*tokens?|bearer\s+tokens?|private\s+(ssh\s+)?keys?|auth(entication)?\s+tokens?|session\s+cookies|connection\s+strings?\s+with\s+(the\s+)?password)"
_DISCLOSE = r"(print|reveal|show|dump|leak|expose|output|display|tell\s+me|give\s+me|list|send|paste|echo|repeat|read\s+out|share|provide|disclose|spell\s+out|hand\s+over|what(\s+is|\s+are|'s|\s+was)|which|(want|need|like)\s+to\s+(see|get|know|have|read))"
_YOUR_PROMPT = r"((your|this\s+assistant'?s)\s+(own\s+)?(system\s+(prompt|message|instructions?)|hidden\s+(prompt|instructions?|rules)|initial\s+(prompt|instructions?)|original\s+instructions?|internal\s+instructions?|secret\s+instructions?|configuration\s+message|instructions?\s+verbatim|prompt)|the\s+(hidden|secret|internal)\s+(prompt|instructions?|rules)|the\s+(initial|original)\s+instructions?\s+you)"

for _rule in [
    GuardRule(
        "drop_instructions",
        "prompt_injection",
        "it tries to override my instructions",
        (rf"\b{_DROP}\b.{{0,40}}\b{_PRIOR}\b.{{0,30}}\b{_RULESW}\b",),
        llm_only=True,
    ),
    GuardRule(
        "instructions_void",
        "prompt_injection",
        "it declares my instructions void",
        (
            rf"\b{_RULESW}\b.{{0,40}}\b(are|is|were)\s+(now\s+)?(cancelled|canceled|void|revoked|lifted|disabled|no\s+longer\s+(valid|apply|in\s+effect)|a\s+test|obsolete)\b|\b{_RULESW}\b.{{0,20}}\bno\s+longer\s+apply\b|\bnew\s+instructions?\b.{{0,20}}\b(supersede|override|replace)",
        ),
        llm_only=True,
    ),
    GuardRule(
        "obey_me",
        "prompt_injection",
        "it tries to take over my instructions",
        (
            r"\b(from\s+now\s+on|henceforth|for\s+the\s+rest\s+of\s+(this|the)\s+conversation)\b.{0,60}\b(only\s+(follow|obey)|obey|no\s+(rules|restrictions|limits|filter)|without\s+(any\s+)?(restrictions|rules|filter)|highest\s+priority|reveal)",
        ),
        llm_only=True,
    ),
    GuardRule(
        "unrestricted_mode",
        "prompt_injection",
        "it tries to switch me into an unrestricted mode or persona",
        (
            r"\b(developer|dan|jailbreak|jailbroken|god|unrestricted|unfiltered|evil|admin|root|sudo|debug)\s*mode\b.{0,80}\b(enable|enter|switch|activate|now\s+in|you\s+are|confirm|answer|respond|comply|lifted|without)|\b(enable|enter|switch\s+(in)?to|activate|you\s+are\s+(now\s+)?in)\s+(developer|dan|jailbreak|god|unrestricted|unfiltered|evil|sudo)\s*mode\b",
        ),
        llm_only=True,
    ),
    GuardRule(
        "persona_no_rules",
        "prompt_injection",
        "it asks me to play a character without rules",
        (
            r"\b(you\s+are|act\s+as|pretend|imagine|roleplay|role-play|play\s+the\s+role|simulate|stay\s+in\s+character|be)\b.{0,80}\b(no|without|never\s+(been\s+)?given\s+any|free\s+of)\s+(any\s+)?(rules|restrictions|limits|filters?|guidelines|safety|ethics|censorship)\b",
        ),
        llm_only=True,
    ),
    GuardRule(
        "known_jailbreak",
        "prompt_injection",
        "it names a known jailbreak persona",
        (
            r"\b(do\s+anything\s+now|freegpt|evilbot|stan\s+mode|dude\s+mode|aim\s+mode|dan\s+mode|you\s+are\s+dan)\b",
        ),
        target="any",
        llm_only=True,
    ),
    GuardRule(
        "forged_role",
        "prompt_injection",
        "it impersonates a system or developer message",
        (
            r"(^|\n)[ \t]{0,8}(#{1,4}[ \t]{0,4})?(system|developer|assistant|administrator)[ \t]{0,4}:|<\|im_start\|>|<\|(system|assistant)\|>|\[/?inst\]|<<\s?/?sys\s?>>|</?system>|\"role\"\s{0,3}:\s{0,3}\"(system|developer)\"|\[system\]\(#|^\s{0,8}(system|システム)\s{0,4}[:：]",
        ),
        views=("text", "hidden", "decoded"),
        target="any",
        llm_only=True,
    ),
    GuardRule(
        "prompt_disclosure",
        "prompt_injection",
        "it asks for my hidden instructions",
        (
            rf"\b{_DISCLOSE}\b.{{0,60}}\b({_YOUR_PROMPT}|the\s+(system\s+(prompt|message)|prompt\s+you|instructions\s+you))",
        ),
    ),
    GuardRule(
        "prompt_echo",
        "prompt_injection",
        "it asks me to repeat what I was told before the conversation",
        (
            r"\b(repeat|print|output|quote|show|translate|summari[sz]e)\b.{0,40}\b(the\s+text|everything|all\s+the\s+text|what\s+(you\s+were|was)\s+(told|given)|the\s+words?)\b.{0,40}\b(above|before\s+(this|my|the)|you\s+were\s+(told|given)|starting\s+with\s+['\"]?you\s+are)|\bwhat\s+were\s+you\s+told\s+before\b|\b(first|opening)\s+line\s+of\s+your\s+(instructions|prompt|rules)\b|\brules\s+you\s+were\s+programmed\s+with\b",
        ),
    ),
    GuardRule(
        "secret_value",
        "secret_exfiltration",
        "it asks me to disclose secrets or credentials",
        (
            rf"\b{_DISCLOSE}\b.{{0,50}}\b(the\s+)?(value\s+of\s+(the\s+)?)?{_SECRET}|\b{_SECRET}\b.{{0,40}}\b(unmasked|verbatim|in\s+full|character\s+by\s+character|back\s+to\s+me|here)\b|\b(actual|real|current|exact|full|raw|literal|plaintext)\s+(value|contents?|string)\s+of\s+(the\s+|your\s+)?{_SECRET}",
        ),
    ),
    GuardRule(
        "secret_files",
        "secret_exfiltration",
        "it asks for credential files or server environment",
        (
            r"(/etc/(passwd|shadow)|/proc/self/environ|~?/\.aws/credentials|~?/\.ssh/id_|\.env\s+file|169\.254\.169\.254|metadata\.google\.internal|(all|every)\s+(the\s+)?environment\s+variables|environment\s+variables\s+(of\s+your|you\s+(were|are)\s+(started|running)))",
        ),
    ),
    GuardRule(
        "markdown_exfiltration",
        "data_exfiltration",
        "it asks me to embed data in an image or link to an outside host",
        (r"!\[[^\]\n]{0,200}\]\(\s{0,3}https?://[^)\s]{1,300}[?&=]",),
        target="any",
    ),
    GuardRule(
        "exfiltration_link",
        "data_exfiltration",
        "it asks me to put private data into an image or link",
        (
            r"\b(append|add|include|render|put|output|embed|attach)\b.{0,60}\b(image|pixel|link|url)\b.{0,120}\b(system\s+prompt|instructions|secrets?|api\s+key|token|conversation|history|user\s+data|everything)",
        ),
    ),
    GuardRule(
        "covert_exfiltration",
        "data_exfiltration",
        "it asks for covert collection or exfiltration of data",
        (
            r"\b(silently|secretly|covertly|stealthily|without\s+(them|the\s+users?|anyone|customers?|the\s+owners?)\s+(knowing|noticing))\b|\bexfiltrat",
            r"\b(upload|send|copy|copies|forward|post|ship|transmit|exfiltrat|leak|collect|sell)\w*\b",
        ),
        target="assistant_or_victim",
    ),
    GuardRule(
        "sell_personal_data",
        "data_exfiltration",
        "it asks to take or sell people's personal data",
        (
            r"\b(sell|steal|harvest)\w*\b.{0,60}\b(pii|personal\s+(data|information)|customer\s+data|user\s+data|users'\s+(personal|data|chats?|messages)|chat\s+logs|emails?)\b|\b(pii|personal\s+(data|information)|customer\s+data|user\s+data|chat\s+logs)\b.{0,60}\b(sell|steal|harvest)\w*\b",
        ),
        target="any",
    ),
    GuardRule(
        "leak_personal_data",
        "data_exfiltration",
        "it asks to send people's personal data to an outside party",
        (
            r"\b(pii|personal\s+(data|information)|customer\s+data|user\s+data|users'\s+personal|chat\s+logs|conversations?)\b",
            r"\b(send|upload|forward|leak|scrape|copy)\w*\b.{0,80}\b(pastebin|attacker|my\s+(own\s+|personal\s+)?(server|bucket|email)|a\s+server\s+i\s+control)",
        ),
        target="any",
    ),
    GuardRule(
        "evade_audit",
        "harmful",
        "it asks to destroy records or evade an audit",
        (
            r"\b(so\s+(that\s+)?(nobody|no\s*one|no-one)\s+((can|could|will|would|ever)\s+)?(audit|see|sees|know|knows|notice|notices|find\s+out|finds\s+out|trace|can\s+tell)|cover\s+(my|our|their)\s+tracks|can'?t\s+be\s+traced\s+back|hide\s+(the\s+)?evidence|(review|audit|investigation)\s+finds\s+nothing)",
        ),
        target="any",
    ),
    GuardRule(
        "disable_audit",
        "harmful",
        "it asks to remove an audit trail",
        (r"\b(disable|delete|erase|wipe|remove|tamper\s+with)\s+(the\s+)?audit\s+(log|logs|logging|trail)",),
        target="victim",
    ),
    GuardRule(
        "open_rce",
        "harmful",
        "it asks to expose a server without authentication to run commands on it",
        (
            r"\b(no|without|disable[sd]?|turned\s+off|off)\b.{0,20}\b(auth|authentication|login|password)|\b(auth|authentication)\s+(turned\s+)?off\b",
            r"\b(run|execute|exec)\b.{0,40}\b(commands?|code|shell|scripts?|python)\b",
            r"\b(anyone|everyone|the\s+internet|publicly|public|0\.0\.0\.0|world|arbitrary)\b",
        ),
        target="any",
    ),
    GuardRule(
        "malware",
        "harmful",
        "it asks for malware or an attack",
        (
            r"\b(malware|ransomware|keylogger|key\s+logger|backdoor|rootkit|botnet|trojan|spyware|ddos|phishing\s+(page|kit|email|site|campaign|mail)|credential\s+stuffing|sql\s+injection\s+(attack|payload)|zero[- ]day\s+exploit|steal\s+(session\s+)?(cookies|credentials|passwords)|fake\s+(login|sign[- ]in)\s+(page|form|site)|credential\s+harvest\w*|brute[- ]forc\w*\s+(ssh|passwords?|logins?|accounts?))\b",
            r"^(?!.{0,60}\b(classifier|detect|detection|defend|protect|prevent|dataset\s+of|train|recogni[sz]e|flag|block)\b)",
        ),
        target="any",
    ),
    GuardRule(
        "bypass_security",
        "harmful",
        "it asks to get around someone else's security controls",
        (
            r"\b(bypass|circumvent|disable|defeat|crack|break\s+into|get\s+around|get\s+past|brute[- ]?force)\b.{0,40}\b(authentication|authorization|auth|login|access\s+control|rate\s+limit|license\s+check|security|permissions|2fa|mfa|password)\b",
        ),
        target="victim",
    ),
    GuardRule(
        "access_others",
        "harmful",
        "it asks to get into someone else's account or data",
        (
            r"\b(log\s*in(to)?|sign\s+in(to)?|access|read|get\s+into|break\s+into|hack\s+into|hack|take\s+over|spy\s+on|track|monitor)\b.{0,40}\b(accounts?|emails?|inbox|messages|chats?|phones?|laptops?|servers?|data|passwords?|traces|experiments)\b",
        ),
        target="victim",
    ),
    GuardRule(
        "destroy_others",
        "harmful",
        "it asks to destroy or tamper with someone else's work",
        (
            r"\b(delete|erase|wipe|remove|destroy|corrupt|tamper\s+with|overwrite|sabotage)\b.{0,40}\b(experiments?|runs?|data|datasets?|traces|models?|files|accounts?|work|results|notebooks?|backups?)\b",
        ),
        target="victim",
    ),
    GuardRule(
        "flood_service",
        "harmful",
        "it asks for a denial-of-service attack",
        (
            r"\b(flood|overwhelm|hammer)\w*\b.{0,60}\b(until\s+it\s+(crashes|dies|goes\s+down)|crash|take\s+(it\s+)?down)\b",
        ),
        target="any",
    ),
    GuardRule(
        "encoded_instruction",
        "prompt_injection",
        "it hides an instruction in an encoding and asks me to follow it",
        (
            r"\b(decode|decipher|unscramble|read\s+(this|it)\s+backwards|reverse|rot13|base64|hex(-encoded)?|encoded)\b.{0,60}\b(follow|obey|do\s+(it|what\s+it\s+says)|comply|execute|carry\s+(it\s+)?out|act\s+on)\b|\b(follow|obey|comply\s+with|execute)\b.{0,40}\b(decoded|hidden|encoded)\b",
        ),
        views=("text",),
        target="any",
        llm_only=True,
    ),
    # ---- Japanese, and Japanese mixed with English (views are NFKC-normalized; no word boundaries)
    GuardRule(
        "ja_drop_instructions",
        "prompt_injection",
        "指示を無視させようとしています",
        (
            r"(指示|ルール|規則|制約|命令|ガイドライン|プロンプト|制限|instructions?|rules|guidelines|system\s*prompt|prompt)\s*.{0,12}(無視|忘れ|破棄|取り消|撤回|従わな|無効)|(これまでの|以前の|前の|最初の|あなたの|今までの)\s*(指示|ルール|規則|制約|設定|instructions?|rules)\s*.{0,8}(上書き|解除)|\b(ignore|disregard|forget|override|bypass)\b.{0,20}(指示|ルール|規則|制約|命令|ガイドライン|プロンプト|設定)",
        ),
        llm_only=True,
    ),
    GuardRule(
        "ja_unrestricted",
        "prompt_injection",
        "制限のないモードや人格に切り替えようとしています",
        (
            r"(開発者モード|デベロッパーモード|developer\s*mode|脱獄|ジェイルブレイク|jailbreak|制限の?ない(ai|キャラクター|モード|アシスタント|人格)|制限(なし|無し)で(答え|回答|話)|フィルター?(なし|無し)で|フィルター?を(外|解除)|安全(フィルター?|設定)を(解除|無効)|何でも答えるモード|no\s+restrictions|without\s+(any\s+)?(rules|restrictions|filters?))",
            r"[\u3040-\u30ff\u4e00-\u9fff]",
        ),
        llm_only=True,
    ),
    GuardRule(
        "ja_obey_me",
        "prompt_injection",
        "指示を乗っ取ろうとしています",
        (
            r"(今後|これから|以後|今から).{0,20}(私の|僕の|俺の)?(命令|指示|言うこと).{0,6}(だけ|のみ)(に|を)?(従|聞)",
        ),
        llm_only=True,
    ),
    GuardRule(
        "ja_prompt_disclosure",
        "prompt_injection",
        "隠された指示を聞き出そうとしています",
        (
            r"(システムプロンプト|system\s*prompt|隠された指示|隠し指示|最初に(与えられた|受け取った)|初期設定|設定メッセージ|内部の指示|あなたの指示|上の文章|hidden\s+instructions).{0,30}(表示|出力|教え|見せ|繰り返|翻訳|一字一句|そのまま|すべて|全部|貼り付け|話して)|\b(show|print|reveal|output|repeat|display)\b.{0,30}(システムプロンプト|隠された指示|あなたの指示)",
        ),
    ),
    GuardRule(
        "ja_secret_value",
        "secret_exfiltration",
        "秘密情報や認証情報を聞き出そうとしています",
        (
            r"(api\s?キー|apiキー|api\s*key|api_key|_key|トークン|token|パスワード|password|認証情報|credentials?|秘密鍵|シークレット|secret|環境変数|\.env).{0,30}(値|中身|内容|一覧|教えて|見せて|表示|出力|読み聞かせ|全部|すべて|何ですか|は何|知りたい|tell\s+me|show\s+me|give\s+me|print|reveal|output)|(あなた|君|お前|貴方)の.{0,10}(api\s?キー|apiキー|api\s*key|パスワード|トークン|認証情報|秘密鍵|シークレット)\s*(は|って|を)|\b(show|print|reveal|tell\s+me|give\s+me|output|display)\b.{0,30}(apiキー|トークン|パスワード|認証情報|秘密鍵|環境変数)",
        ),
    ),
    GuardRule(
        "ja_harmful",
        "harmful",
        "有害な依頼です",
        (
            r"(キーロガー|マルウェア|ランサムウェア|バックドア|フィッシング(メール|サイト|ページ)|盗む|盗み|監査できない|痕跡を(消|残さ)|認証なしで.{0,30}(実行|シェル))",
            r"^(?!.{0,40}(検出|検知|防ぐ|防止|対策|見分け))",
        ),
        target="any",
    ),
    GuardRule(
        "ja_covert",
        "harmful",
        "こっそり他人のデータを持ち出そうとしています",
        (
            r"(こっそり|無断で|内緒で|気づかれずに).{0,30}(送信|送|アップロード|コピー|転送|削除|集め)|認証を(回避|突破)",
        ),
        target="assistant_or_victim",
    ),
    GuardRule(
        "ja_markdown_exfiltration",
        "data_exfiltration",
        "外部への画像やリンクでデータを持ち出そうとしています",
        (r"!\[[^\]\n]{0,200}\]\(\s{0,3}https?://[^)\s]{1,300}[?&=]",),
        target="any",
    ),
]:
    register_rule(_rule)


def match_rules(
    named_views: list[tuple[str, str]],
    names: frozenset[str] | None = None,
    waived: list[str] | None = None,
    *,
    addressed: bool = True,
    rules: list[GuardRule] | None = None,
) -> tuple[GuardRule, str] | None:
    """The first rule (of ``names``, when given) whose shape is in one of its views *aimed the way
    its target says*, and the view's name. Shapes found only in clauses not aimed at the assistant
    are appended to ``waived`` (when given) by rule name. ``addressed=False``: any occurrence counts
    (documents the assistant reads: an order in them is aimed at whoever reads it)."""
    pool = RULES if rules is None else rules
    for rule in pool if names is None else [r for r in pool if r.name in names]:
        seen = False
        for name, text in named_views:
            if name not in rule.views:
                continue
            found, hit = rule.aimed_match(text) if addressed else (m := rule.matches(text), m)
            if hit:
                return rule, name
            seen = seen or found
        if seen and waived is not None:
            waived.append(rule.name)
    return None
