"""Reports: a summary table per kind for the terminal, Markdown and HTML (with a chart) files, and
per-item comparison of two evaluations."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from flywheel.config import Settings
from flywheel.evaluation._dataset import KINDS
from flywheel.evaluation._runner import EvalResult, ItemResult

__all__ = ["compare", "kind_table", "load_items", "write_reports"]

MAIN = [
    "response_facts",
    "factuality",
    "citations",
    "trajectory",
    "search_term",
    "refusal",
    "abstention",
    "response_quality",
    "response_length",
    "latency",
]


def kind_table(result: EvalResult) -> tuple[list[str], list[list[str]]]:
    """Rows = kinds (+ all), columns = scorers that produced a value; cells are means."""
    present = [m for m in MAIN if m in result.metrics]
    header = ["kind", "n", *present]
    rows = []
    for kind in [*KINDS, "all"]:
        items = [i for i in result.items if kind == "all" or i.kind == kind]
        if not items:
            continue
        row = [kind, str(len(items))]
        for m in present:
            key = m if kind == "all" else f"{m}.{kind}"
            row.append(f"{result.metrics[key]:.2f}" if key in result.metrics else "–")
        rows.append(row)
    return header, rows


def _chart(result: EvalResult) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [m for m in MAIN if m in result.metrics and m != "latency"]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.barh(names[::-1], [result.metrics[n] for n in names][::-1], color="#2463eb")
    ax.set_xlim(0, 1)
    ax.set_title(f"{result.dataset} · {result.target}")
    for y, n in enumerate(names[::-1]):
        ax.text(min(result.metrics[n] + 0.01, 0.93), y, f"{result.metrics[n]:.2f}", va="center", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def write_reports(result: EvalResult, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    header, rows = kind_table(result)
    ident = ", ".join(f"{k}={v}" for k, v in result.identity.items() if not k.startswith("agent."))
    worst = sorted((i for i in result.items if i.scores), key=_item_score)[:10]
    md = [
        f"# Evaluation: {result.dataset} → {result.target}",
        "",
        f"- dataset digest: `{result.digest}` · items: {len(result.items)} · resumed: {result.resumed}",
        f"- MLflow run: `{result.run_id or '-'}` · identity: {ident or '-'}",
        f"- latency p50/p95: {result.metrics.get('latency_p50_ms', 0):.0f} / {result.metrics.get('latency_p95_ms', 0):.0f} ms",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    md += ["", "## Lowest-scoring items", "", "| id | kind | question | scores |", "|---|---|---|---|"]
    for i in worst:
        sc = ", ".join(
            f"{k} {v['value']:.2f}" for k, v in i.scores.items() if v["value"] is not None and k in MAIN
        )
        md.append(f"| {i.id} | {i.kind} | {i.question[:80].replace('|', '/')} | {sc} |")
    md_path = folder / "report.md"
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")

    chart = _chart(result)
    table = (
        "<table><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in header)
        + "</tr>"
        + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        + "</table>"
    )
    items = "".join(
        f"<tr><td>{html.escape(i.id)}</td><td>{i.kind}</td><td>{html.escape(i.question)}</td>"
        f"<td>{html.escape((i.output.get('answer') or i.output.get('error') or '')[:400])}</td><td>"
        + "<br>".join(
            f"{html.escape(k)}: {v['value']:.2f} <small>{html.escape(v['rationale'][:80])}</small>"
            for k, v in i.scores.items()
            if v["value"] is not None
        )
        + "</td></tr>"
        for i in result.items
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>flywheel eval · {html.escape(result.dataset)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;color:#1d2430}}
table{{border-collapse:collapse;margin:1rem 0;font-size:.9rem}}td,th{{border:1px solid #e3e7ed;padding:.3rem .5rem;vertical-align:top}}
th{{background:#f5f7fa}}small{{color:#6b7280}}</style></head><body>
<h1>Evaluation: {html.escape(result.dataset)} → {html.escape(result.target)}</h1>
<p>digest <code>{result.digest}</code> · {len(result.items)} items · MLflow run <code>{result.run_id or "-"}</code> · {html.escape(ident)}</p>
<img alt="scores" src="data:image/png;base64,{chart}">
<h2>By kind</h2>{table}<h2>Items</h2><table><tr><th>id</th><th>kind</th><th>question</th><th>answer</th><th>scores</th></tr>{items}</table>
</body></html>"""
    html_path = folder / "report.html"
    html_path.write_text(page, encoding="utf-8")
    (folder / "metrics.json").write_text(json.dumps(result.metrics, indent=2))
    return {"markdown": md_path, "html": html_path}


def _item_score(item: ItemResult) -> float:
    vals = [
        v["value"] for k, v in item.scores.items() if v["value"] is not None and k in MAIN and k != "latency"
    ]
    return sum(vals) / len(vals) if vals else 1.0


def load_items(ref: str, settings: Settings) -> list[ItemResult]:
    """Items of an evaluation: a results .jsonl path, or an MLflow run id (its eval/ artifact)."""
    path = Path(ref)
    if not path.exists():
        import mlflow

        from flywheel.tracking import use

        use(settings)
        folder = Path(mlflow.artifacts.download_artifacts(run_id=ref, artifact_path="eval"))
        path = next(folder.glob("*.jsonl"))
    return [
        ItemResult.from_json(json.loads(ln))
        for ln in path.read_text(encoding="utf-8").splitlines()
        if ln.strip()
    ]


def compare(a: list[ItemResult], b: list[ItemResult]) -> dict[str, Any]:
    """Per-item and per-scorer differences (b − a) for the items both evaluations share."""
    by_a, by_b = {i.id: i for i in a}, {i.id: i for i in b}
    shared = [k for k in by_a if k in by_b]
    rows: list[dict[str, Any]] = []
    totals: dict[str, list[float]] = {}
    for item_id in shared:
        ia, ib = by_a[item_id], by_b[item_id]
        for name in sorted(set(ia.scores) | set(ib.scores)):
            va, vb = ia.scores.get(name, {}).get("value"), ib.scores.get(name, {}).get("value")
            if va is None or vb is None:
                continue
            totals.setdefault(name, []).append(vb - va)
            if abs(vb - va) > 1e-9:
                rows.append(
                    {"id": item_id, "kind": ia.kind, "scorer": name, "a": va, "b": vb, "delta": vb - va}
                )
    summary = {k: round(sum(v) / len(v), 4) for k, v in totals.items()}
    return {
        "shared": len(shared),
        "only_a": len(by_a) - len(shared),
        "only_b": len(by_b) - len(shared),
        "mean_delta": summary,
        "changed": sorted(rows, key=lambda r: r["delta"]),
    }
