"""Chunking keeps titles, heading paths and sources, and strips MDX noise."""

from __future__ import annotations

from flywheel.knowledge import ChunkOptions, chunk_document, load_file_text

MDX = """---
title: Manage Prompt Lifecycles
description: x
---

import { APILink } from "@site/src/components/APILink";
import Tabs from "@theme/Tabs";

# Manage Prompt Lifecycles

Intro paragraph about prompts and why versioning matters for teams that ship to production.

## Aliases

Use <APILink fn="mlflow.genai.set_prompt_alias">set_prompt_alias</APILink> to move an alias between versions.

<Tabs>
  <TabItem value="ui" label="UI" default>
    Click **Add** next to the aliases section of the prompt version page.
  </TabItem>
</Tabs>

![Aliases List](/images/aliases.png)

:::tip Why not use Git?
Tracking one prompt in a monotonic Git tree is hard.
:::

### Load by alias

```python
# this is a comment, not a heading
prompt = mlflow.genai.load_prompt("prompts:/summarization@production")
```
"""


def test_mdx_is_cleaned_and_title_comes_from_front_matter() -> None:
    doc = load_file_text(MDX, "mdx", "prompt-registry/aliases.mdx")
    assert doc.title == "Manage Prompt Lifecycles"
    assert "import" not in doc.text.split("```")[0]
    assert "<APILink" not in doc.text and "<Tabs>" not in doc.text and "<TabItem" not in doc.text
    assert "set_prompt_alias" in doc.text  # inner text of a component is kept
    assert "Click **Add**" in doc.text
    assert "/images/aliases.png" not in doc.text
    assert ":::" not in doc.text and "Why not use Git?" in doc.text


def test_chunks_keep_heading_path_source_and_code() -> None:
    doc = load_file_text(MDX, "mdx", "prompt-registry/aliases.mdx")
    chunks = chunk_document(doc, ChunkOptions(max_chars=400, min_chars=20))
    assert all(
        c.source == "prompt-registry/aliases.mdx" and c.title == "Manage Prompt Lifecycles" for c in chunks
    )
    paths = [c.heading_path for c in chunks]
    assert "Manage Prompt Lifecycles > Aliases" in paths
    assert "Manage Prompt Lifecycles > Aliases > Load by alias" in paths
    code = next(c for c in chunks if "load_prompt" in c.text)
    assert "# this is a comment, not a heading" in code.text  # a '#' in code is not a heading
    assert code.embedding_text().startswith(
        "Manage Prompt Lifecycles > Manage Prompt Lifecycles > Aliases > Load by alias"
    )
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert len({c.id for c in chunks}) == len(chunks)


def test_long_sections_are_split_with_the_heading_on_every_piece() -> None:
    body = "# Guide\n\n## Big section\n\n" + "\n\n".join(f"Paragraph {i} " + "word " * 60 for i in range(12))
    chunks = chunk_document(load_file_text(body, "md", "guide.md"), ChunkOptions(max_chars=500))
    assert len(chunks) > 5
    assert all(c.heading_path == "Guide > Big section" for c in chunks)
    assert all(len(c.text) <= 500 for c in chunks)


def test_html_keeps_headings_and_drops_navigation() -> None:
    html = (
        "<html><head><title>Retention</title><script>var x=1</script></head><body><nav>Home | Docs</nav>"
        "<main><h1>Data retention</h1><p>By default, traces are retained indefinitely.</p>"
        "<h2>Deleting</h2><p>Use delete_traces with max_timestamp_millis to remove old traces.</p></main></body></html>"
    )
    doc = load_file_text(html, "html", "https://example.com/retention")
    assert doc.title == "Retention"
    assert "var x" not in doc.text and "Home | Docs" not in doc.text
    chunks = chunk_document(doc, ChunkOptions(min_chars=10))
    assert any(c.heading_path == "Data retention > Deleting" and "delete_traces" in c.text for c in chunks)


def test_an_overlong_line_is_cut_in_place_not_ahead_of_the_lines_before_it() -> None:
    from flywheel.knowledge._chunking import _hard_split

    pieces = _hard_split("short one\nshort two\n" + "x" * 25 + "\ntail", 10)
    assert pieces == ["short one", "short two", "x" * 10, "x" * 10, "xxxxx\ntail"]
    assert all(len(p) <= 10 for p in pieces)
