"""Layer 2 of the guardrail: a small set of high-precision rules, in English and Japanese.

A rule is a category, a reason and regular expressions that must all match one view of the text
(see _normalize.py). Rules are written for attack *shapes* — an imperative to drop instructions, a
request to disclose a secret's value, a forged role marker — not for particular sentences; whatever
they miss is the classifier's job. Every pattern is linear-time: no nested or unbounded repetition
across lines (gaps are bounded, e.g. ``.{0,60}``). Add your own with :func:`register_rule`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["RULES", "GuardRule", "match_rules", "register_rule"]


@dataclass(frozen=True)
class GuardRule:
    name: str
    category: str
    reason: str
    patterns: tuple[str, ...]  # all must match (case-insensitive; the views are lower-case)
    views: tuple[str, ...] = ("text", "despaced", "deleet", "hidden", "decoded", "transformed")
    _compiled: tuple[re.Pattern[str], ...] = field(default=(), compare=False, repr=False)

    def compiled(self) -> tuple[re.Pattern[str], ...]:
        if not self._compiled:
            object.__setattr__(self, "_compiled", tuple(re.compile(p, re.I | re.S) for p in self.patterns))
        return self._compiled

    def matches(self, text: str) -> bool:
        return all(p.search(text) for p in self.compiled())


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
_SECRET = r"(api[\s_-]*keys?|[a-z][a-z0-9]*_(api_)?(key|token|secret|password)\b|secret\s+(access\s+)?keys?|passwords?|credentials?|access[\s_-]*tokens?|bearer\s+tokens?|private\s+(ssh\s+)?keys?|auth(entication)?\s+tokens?|session\s+cookies|connection\s+strings?\s+with\s+(the\s+)?password)"
_DISCLOSE = r"(print|reveal|show|dump|leak|expose|output|display|tell\s+me|give\s+me|list|send|paste|echo|repeat|read\s+out|share|provide|disclose|spell\s+out|hand\s+over|what\s+(is|are|'s)|which)"
_YOUR_PROMPT = r"((your|this\s+assistant'?s)\s+(own\s+)?(system\s+(prompt|message|instructions?)|hidden\s+(prompt|instructions?|rules)|initial\s+(prompt|instructions?)|original\s+instructions?|internal\s+instructions?|secret\s+instructions?|configuration\s+message|instructions?\s+verbatim|prompt)|the\s+(hidden|secret|internal)\s+(prompt|instructions?|rules)|the\s+(initial|original)\s+instructions?\s+you)"

for _rule in [
    GuardRule(
        "drop_instructions",
        "prompt_injection",
        "it tries to override my instructions",
        (
            rf"\b{_DROP}\b.{{0,40}}\b{_PRIOR}\b.{{0,30}}\b{_RULESW}\b",
            # "how do I override the instructions of a judge": configuring something else
            r"^(?!.{0,30}\bhow\s+(do|can|should|would)\s+(i|we)\b.{0,80}\b{0}\b.{0,10}\b(of|for|in)\s+(a|an|the|my|our|each)\s)".replace(
                "{0}", _RULESW
            ),
        ),
    ),
    GuardRule(
        "instructions_void",
        "prompt_injection",
        "it declares my instructions void",
        (
            rf"\b{_RULESW}\b.{{0,40}}\b(are|is|were)\s+(now\s+)?(cancelled|canceled|void|revoked|lifted|disabled|no\s+longer\s+(valid|apply|in\s+effect)|a\s+test|obsolete)\b|\b{_RULESW}\b.{{0,20}}\bno\s+longer\s+apply\b|\bnew\s+instructions?\b.{{0,20}}\b(supersede|override|replace)",
        ),
    ),
    GuardRule(
        "obey_me",
        "prompt_injection",
        "it tries to take over my instructions",
        (
            r"\b(from\s+now\s+on|henceforth|for\s+the\s+rest\s+of\s+(this|the)\s+conversation)\b.{0,60}\b(only\s+(follow|obey)|obey|no\s+(rules|restrictions|limits|filter)|without\s+(any\s+)?(restrictions|rules|filter)|highest\s+priority|reveal)",
        ),
    ),
    GuardRule(
        "unrestricted_mode",
        "prompt_injection",
        "it tries to switch me into an unrestricted mode or persona",
        (
            r"\b(developer|dan|jailbreak|jailbroken|god|unrestricted|unfiltered|evil|admin|root|sudo|debug)\s*mode\b.{0,80}\b(enable|enter|switch|activate|now\s+in|you\s+are|confirm|answer|respond|comply|lifted|without)|\b(enable|enter|switch\s+(in)?to|activate|you\s+are\s+(now\s+)?in)\s+(developer|dan|jailbreak|god|unrestricted|unfiltered|evil|sudo)\s*mode\b",
        ),
    ),
    GuardRule(
        "persona_no_rules",
        "prompt_injection",
        "it asks me to play a character without rules",
        (
            r"\b(you\s+are|act\s+as|pretend|imagine|roleplay|role-play|play\s+the\s+role|simulate|stay\s+in\s+character|be)\b.{0,80}\b(no|without|never\s+(been\s+)?given\s+any|free\s+of)\s+(any\s+)?(rules|restrictions|limits|filters?|guidelines|safety|ethics|censorship)\b|\b(do\s+anything\s+now|freegpt|evilbot|stan|dude\s+mode|aim\s+mode)\b",
        ),
    ),
    GuardRule(
        "forged_role",
        "prompt_injection",
        "it impersonates a system or developer message",
        (
            r"(^|\n)[ \t]{0,8}(#{1,4}[ \t]{0,4})?(system|developer|assistant|administrator)[ \t]{0,4}:|<\|im_start\|>|<\|(system|assistant)\|>|\[/?inst\]|<<\s?/?sys\s?>>|</?system>|\"role\"\s{0,3}:\s{0,3}\"(system|developer)\"|\[system\]\(#|^\s{0,8}(system|システム)\s{0,4}[:：]",
        ),
        views=("text", "hidden", "decoded"),
    ),
    GuardRule(
        "prompt_disclosure",
        "prompt_injection",
        "it asks for my hidden instructions",
        (rf"\b{_DISCLOSE}\b.{{0,60}}\b{_YOUR_PROMPT}",),
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
            rf"\b{_DISCLOSE}\b.{{0,50}}\b(the\s+)?(value\s+of\s+(the\s+)?)?{_SECRET}|\b{_SECRET}\b.{{0,40}}\b(unmasked|verbatim|in\s+full|character\s+by\s+character|back\s+to\s+me|here)\b",
            r"^(?!.{0,30}\bhow\s+(do|can|should|to)\b)(?!.{0,30}\b(where|which\s+(environment|env)\s+variables?\s+does)\b)",
        ),
    ),
    GuardRule(
        "secret_files",
        "secret_exfiltration",
        "it asks for credential files or server environment",
        (
            r"(/etc/(passwd|shadow)|/proc/self/environ|~?/\.aws/credentials|~?/\.ssh/id_|\.env\s+file|169\.254\.169\.254|metadata\.google\.internal|(all|every)\s+(the\s+)?environment\s+variables|environment\s+variables\s+(of\s+your|you\s+(were|are)\s+(started|running)))",
            r"^(?!.{0,30}\bhow\s+(do|can|should|to)\s+i\s+(set|configure|read|load|use|create)\b)",
        ),
    ),
    GuardRule(
        "markdown_exfiltration",
        "data_exfiltration",
        "it asks me to embed data in an image or link to an outside host",
        (
            r"!\[[^\]\n]{0,200}\]\(\s{0,3}https?://[^)\s]{1,300}[?&=]|\b(append|add|include|render|put|output)\b.{0,60}\b(image|pixel|link|url)\b.{0,120}\b(system\s+prompt|instructions|secrets?|api\s+key|token|conversation|history|user\s+data|everything)",
        ),
    ),
    GuardRule(
        "covert_exfiltration",
        "data_exfiltration",
        "it asks for covert collection or exfiltration of data",
        (
            r"\b(silently|secretly|covertly|quietly|stealthily|without\s+(them|the\s+users?|anyone|customers?|the\s+owners?)\s+(knowing|noticing))\b|\bexfiltrat",
            r"\b(upload|send|copy|copies|forward|post|ship|transmit|exfiltrat|leak|collect|sell)\w*\b",
        ),
    ),
    GuardRule(
        "sell_personal_data",
        "data_exfiltration",
        "it asks to take or sell people's personal data",
        (
            r"\b(pii|personal\s+(data|information)|customer\s+data|user\s+data|users'\s+personal|chat\s+logs)\b",
            r"\b(sell|steal|scrape|harvest|exfiltrat|leak)\w*\b|\b(send|upload|forward)\w*\b.{0,80}\b(external|pastebin|third[- ]party|outside|attacker|my\s+(own\s+|personal\s+)?server)",
        ),
    ),
    GuardRule(
        "evade_audit",
        "harmful",
        "it asks to destroy records or evade an audit",
        (
            r"\b(so\s+(that\s+)?(nobody|no\s*one|no-one)\s+(can|could|will|would)\s+(audit|see|know|notice|find\s+out|trace)|cover\s+(my|our|their)\s+tracks|can'?t\s+be\s+traced\s+back|hide\s+(the\s+)?evidence|(disable|delete|erase|wipe|remove)\s+(the\s+)?audit\s+(log|trail)|(review|audit|investigation)\s+finds\s+nothing)",
        ),
    ),
    GuardRule(
        "open_rce",
        "harmful",
        "it asks to expose a server without authentication to run commands on it",
        (
            r"\b(no|without|disable[sd]?|turned\s+off|off)\b.{0,20}\b(auth|authentication|login|password)|\b(auth|authentication)\s+(turned\s+)?off\b",
            r"\b(run|execute|exec)\b.{0,40}\b(commands?|code|shell|scripts?|python)\b",
        ),
    ),
    GuardRule(
        "malware",
        "harmful",
        "it asks for malware or an attack",
        (
            r"\b(malware|ransomware|keylogger|key\s+logger|backdoor|rootkit|botnet|trojan|spyware|ddos|phishing\s+(page|kit|email|site|campaign|mail)|credential\s+stuffing|sql\s+injection\s+(attack|payload)|zero[- ]day\s+exploit|steal\s+(session\s+)?(cookies|credentials|passwords)|fake\s+(login|sign[- ]in)\s+(page|form|site)|credential\s+harvest\w*|brute[- ]forc\w*\s+(ssh|passwords?|logins?|accounts?))\b",
            r"^(?!.{0,60}\b(classifier|detect|detection|defend|protect|prevent|dataset\s+of|train)\b)",
        ),
    ),
    GuardRule(
        "bypass_security",
        "harmful",
        "it asks to get around someone else's security controls",
        (
            r"\b(bypass|circumvent|disable|defeat|crack|break\s+into|get\s+around)\b.{0,30}\b(authentication|authorization|auth|login|access\s+control|rate\s+limit|license\s+check|security|permissions)\b",
            r"\b(someone|other|another|company'?s|shared|their|without\s+permission|not\s+mine|unauthori[sz]ed|belongs\s+to)\b",
        ),
    ),
    GuardRule(
        "flood_service",
        "harmful",
        "it asks for a denial-of-service attack",
        (
            r"\b(flood|overwhelm|hammer)\w*\b.{0,60}\b(until\s+it\s+(crashes|dies|goes\s+down)|crash|take\s+(it\s+)?down)\b",
        ),
    ),
    GuardRule(
        "encoded_instruction",
        "prompt_injection",
        "it hides an instruction in an encoding and asks me to follow it",
        (
            r"\b(decode|decipher|unscramble|read\s+(this|it)\s+backwards|reverse|rot13|base64|hex(-encoded)?|encoded)\b.{0,60}\b(follow|obey|do\s+(it|what\s+it\s+says)|comply|execute|carry\s+(it\s+)?out|act\s+on)\b|\b(follow|obey|comply\s+with|execute)\b.{0,40}\b(decoded|hidden|encoded)\b",
        ),
        views=("text",),
    ),
    # ---- Japanese (views are NFKC-normalized; no word boundaries in Japanese)
    GuardRule(
        "ja_drop_instructions",
        "prompt_injection",
        "指示を無視させようとしています",
        (
            r"(指示|ルール|規則|制約|命令|ガイドライン|プロンプト|制限).{0,12}(無視|忘れ|破棄|取り消|撤回|従わな|無効)|(これまでの|以前の|前の|最初の|あなたの|今までの)(指示|ルール|規則|制約|設定).{0,8}(上書き|解除)",
            r"^(?!.{0,60}(方法は|には[?？]|できますか|どうすれば|とは何))",
        ),
    ),
    GuardRule(
        "ja_unrestricted",
        "prompt_injection",
        "制限のないモードや人格に切り替えようとしています",
        (
            r"(開発者モード|デベロッパーモード|脱獄|ジェイルブレイク|制限の?ない(ai|キャラクター|モード|アシスタント|人格)|制限(なし|無し)で(答え|回答|話)|フィルター?(なし|無し)で|フィルター?を(外|解除)|安全(フィルター?|設定)を(解除|無効)|何でも答えるモード)",
            r"^(?!.{0,60}(とは何|とは\?|とは？|って何))",
        ),
    ),
    GuardRule(
        "ja_obey_me",
        "prompt_injection",
        "指示を乗っ取ろうとしています",
        (r"(今後|これから|以後).{0,20}(私の|僕の|俺の)?(命令|指示).{0,6}(だけ|のみ)に?従",),
    ),
    GuardRule(
        "ja_prompt_disclosure",
        "prompt_injection",
        "隠された指示を聞き出そうとしています",
        (
            r"(システムプロンプト|隠された指示|隠し指示|最初に与えられた|初期設定|設定メッセージ|内部の指示|あなたの指示|上の文章).{0,30}(表示|出力|教え|見せ|繰り返|翻訳|一字一句|そのまま|すべて|全部)",
            r"^(?!.{0,40}(プロンプトレジストリ|レジストリに保存|トレース))",
        ),
    ),
    GuardRule(
        "ja_secret_value",
        "secret_exfiltration",
        "秘密情報や認証情報を聞き出そうとしています",
        (
            r"(api\s?キー|apiキー|api_key|_key|トークン|パスワード|認証情報|秘密鍵|シークレット|環境変数|\.env).{0,30}(値|中身|内容|一覧|教えて|見せて|表示|出力|読み聞かせ|全部|すべて|何ですか|は何|知りたい)",
            r"^(?!.{0,40}(方法|には\?|には？|どこに|設定する|設定方法|マスク|とは))",
        ),
    ),
    GuardRule(
        "ja_harmful",
        "harmful",
        "有害な依頼です",
        (
            r"(キーロガー|マルウェア|ランサムウェア|バックドア|フィッシング|盗む|盗み|こっそり.{0,20}(送信|送|アップロード)|監査できない|痕跡を(消|残さ)|認証を(回避|突破)|認証なしで.{0,30}(実行|シェル))",
        ),
    ),
    GuardRule(
        "ja_markdown_exfiltration",
        "data_exfiltration",
        "外部への画像やリンクでデータを持ち出そうとしています",
        (r"!\[[^\]\n]{0,200}\]\(\s{0,3}https?://[^)\s]{1,300}[?&=]",),
    ),
]:
    register_rule(_rule)


def match_rules(
    named_views: list[tuple[str, str]], names: frozenset[str] | None = None
) -> tuple[GuardRule, str] | None:
    """The first rule (of ``names``, when given) that matches one of its views, and the view's name."""
    for rule in RULES if names is None else [r for r in RULES if r.name in names]:
        for name, text in named_views:
            if name in rule.views and rule.matches(text):
                return rule, name
    return None
