"""The production dashboard: one self-contained HTML file with plots over time and an A/B table.

From the experiment's recent traces: request volume, latency p50/p95, the mean of each online score
and the refusal rate, per time bucket; and per arm (the ``client.arm`` tag the gateway or the
simulator sets, else the registered model version) the mean of each online score with a 95 %
confidence interval (normal approximation, t-free: the arms of a production A/B have hundreds of
traces) so that a difference can be told from noise. Plots are matplotlib PNGs inlined in the page.
"""

from __future__ import annotations

import base64
import html
import io
import math
import statistics
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["arm_of", "arm_table", "buckets", "build_dashboard"]


def arm_of(trace: Any) -> str:
    tags = trace.info.tags or {}
    if tags.get("client.arm"):
        return f"arm {tags['client.arm']}"
    if tags.get("gateway.arm"):  # the flywheel gateway's A/B split
        return f"arm {tags['gateway.arm']}"
    version = tags.get("registered_model.version")
    return f"version {version}" if version else "local"


def _online(trace: Any) -> dict[str, float]:
    out = {}
    for a in trace.info.assessments or []:
        fb = getattr(a, "feedback", None)
        if fb is not None and a.name.startswith("online/") and isinstance(fb.value, int | float):
            out[a.name.removeprefix("online/")] = float(fb.value)
    return out


def _refused(trace: Any) -> bool:
    return (trace.info.tags or {}).get("agent.outcome") == "refused"


def buckets(traces: list[Any], n: int = 24) -> list[dict[str, Any]]:
    """Per time bucket: start, volume, latency p50/p95 (ms), refusal rate, mean online scores."""
    if not traces:
        return []
    times = [t.info.request_time for t in traces]
    lo, hi = min(times), max(times) + 1
    width = max(1, math.ceil((hi - lo) / n))
    groups: dict[int, list[Any]] = defaultdict(list)
    for t in traces:
        groups[(t.info.request_time - lo) // width].append(t)
    rows = []
    for k in sorted(groups):
        ts = groups[k]
        lat = sorted(float(t.info.execution_duration or 0) for t in ts)
        scores: dict[str, list[float]] = defaultdict(list)
        for t in ts:
            for name, v in _online(t).items():
                scores[name].append(v)
        rows.append(
            {
                "start_ms": lo + k * width,
                "volume": len(ts),
                "latency_p50_ms": lat[len(lat) // 2],
                "latency_p95_ms": lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))],
                "refusal_rate": sum(map(_refused, ts)) / len(ts),
                "scores": {name: statistics.fmean(v) for name, v in scores.items()},
            }
        )
    return rows


def arm_table(traces: list[Any]) -> dict[str, dict[str, dict[str, float]]]:
    """arm → score → {n, mean, ci95}: the mean ± 1.96 standard errors."""
    by: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for t in traces:
        arm = arm_of(t)
        for name, v in _online(t).items():
            by[arm][name].append(v)
        by[arm]["refusal_rate"].append(1.0 if _refused(t) else 0.0)
        by[arm]["latency_s"].append(float(t.info.execution_duration or 0) / 1000)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for arm, scores in sorted(by.items()):
        out[arm] = {}
        for name, values in sorted(scores.items()):
            n = len(values)
            mean = statistics.fmean(values)
            se = statistics.stdev(values) / math.sqrt(n) if n > 1 else float("nan")
            out[arm][name] = {"n": n, "mean": mean, "ci95": 1.96 * se}
    return out


def ab_over_time(traces: list[Any], n: int = 24) -> list[dict[str, Any]]:
    """The online A/B as ``flywheel monitor ab`` sees it, at the end of each time bucket: both arms'
    cumulative quality and the always-valid 95 % interval of challenger − champion (mSPRT)."""
    from flywheel.monitoring._ab import _quality
    from flywheel.monitoring._sequential import ArmStats, msprt

    ab = sorted(
        (t for t in traces if (t.info.tags or {}).get("client.arm") in ("champion", "challenger")),
        key=lambda t: t.info.request_time,
    )
    if not ab:
        return []
    lo, hi = ab[0].info.request_time, ab[-1].info.request_time + 1
    width = max(1, math.ceil((hi - lo) / n))
    values: dict[str, list[float]] = {"champion": [], "challenger": []}
    rows = []
    i = 0
    for k in range(n):
        end = lo + (k + 1) * width
        while i < len(ab) and ab[i].info.request_time < end:
            q = None if _refused(ab[i]) else _quality(ab[i])
            if q is not None:
                values[ab[i].info.tags["client.arm"]].append(q)
            i += 1
        a, b = ArmStats.of(values["champion"]), ArmStats.of(values["challenger"])
        r = msprt(a, b)
        rows.append(
            {
                "end_ms": end,
                "champion": a.mean,
                "challenger": b.mean,
                "n": [a.n, b.n],
                "diff": r.diff,
                "ci": [r.ci_low, r.ci_high],
            }
        )
        if i >= len(ab):
            break
    return rows


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _plots(
    rows: list[dict[str, Any]],
    arms: dict[str, dict[str, dict[str, float]]],
    ab: list[dict[str, Any]] | None = None,
) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x: Any = [datetime.fromtimestamp(r["start_ms"] / 1000, tz=UTC) for r in rows]  # matplotlib takes dates
    out = []
    fig, ax = plt.subplots(figsize=(7, 2.6))
    step: Any = 0.8 * ((x[1] - x[0]) if len(x) > 1 else 1 / 1440)
    ax.bar(x, [r["volume"] for r in rows], width=step)
    ax.set_title("requests per bucket")
    out.append(("Volume", _png(fig)))
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.plot(x, [r["latency_p50_ms"] / 1000 for r in rows], marker="o", label="p50")
    ax.plot(x, [r["latency_p95_ms"] / 1000 for r in rows], marker="o", label="p95")
    ax.set_ylabel("seconds")
    ax.set_title("latency")
    ax.legend()
    out.append(("Latency", _png(fig)))
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 2.6))
    names = sorted({n for r in rows for n in r["scores"]})
    for name in names:
        ax.plot(x, [r["scores"].get(name, float("nan")) for r in rows], marker="o", label=name)
    ax.plot(x, [r["refusal_rate"] for r in rows], linestyle="--", color="grey", label="refusal rate")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("online scores (mean per bucket) and refusal rate")
    ax.legend(fontsize=7, ncol=3)
    out.append(("Online scores", _png(fig)))
    plt.close(fig)
    if len(arms) > 1:
        metrics = sorted({m for a in arms.values() for m in a if m != "latency_s"})
        fig, ax = plt.subplots(figsize=(7, 2.8))
        width = 0.8 / len(arms)
        for i, (arm, scores) in enumerate(arms.items()):
            xs = [j + i * width for j in range(len(metrics))]
            means = [scores.get(m, {}).get("mean", float("nan")) for m in metrics]
            cis = [scores.get(m, {}).get("ci95", 0.0) for m in metrics]
            ax.bar(
                xs, means, width=width, yerr=[0 if math.isnan(c) else c for c in cis], capsize=3, label=arm
            )
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(metrics))], metrics, rotation=20, fontsize=8)
        ax.set_title("per arm: mean ± 95 % CI")
        ax.legend(fontsize=8)
        out.append(("A/B arms", _png(fig)))
        plt.close(fig)
    if ab and len(ab) > 1:
        t = [datetime.fromtimestamp(r["end_ms"] / 1000, tz=UTC) for r in ab]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 2.8))
        ax1.plot(t, [r["champion"] for r in ab], marker="o", label="champion")
        ax1.plot(t, [r["challenger"] for r in ab], marker="o", label="challenger")
        ax1.set_title("online A/B: cumulative quality per arm")
        ax1.legend(fontsize=8)
        diff = [r["diff"] for r in ab]
        low = [max(-1.0, r["ci"][0]) for r in ab]
        high = [min(1.0, r["ci"][1]) for r in ab]
        ax2.plot(t, diff, color="black", label="challenger − champion")
        ax2.fill_between(t, low, high, alpha=0.25, label="always-valid 95 % CI")
        ax2.axhline(0, color="grey", linestyle="--")
        ax2.set_title("the decision: promote above 0, roll back below")
        ax2.legend(fontsize=7)
        for ax in (ax1, ax2):
            ax.tick_params(axis="x", labelsize=7, rotation=20)
        out.append(("Online A/B over time", _png(fig)))
        plt.close(fig)
    return out


def build_dashboard(
    traces: list[Any], out: Path, title: str = "flywheel production dashboard", extra_html: str = ""
) -> Path:
    """The dashboard page; ``extra_html`` (e.g. the last ``flywheel monitor gaps`` report's clusters)
    is appended as its own section."""
    rows = buckets(traces)
    arms = arm_table(traces)
    plots = _plots(rows, arms, ab_over_time(traces)) if rows else []
    table = ["<table><tr><th>arm</th><th>metric</th><th>n</th><th>mean ± 95 % CI</th></tr>"]
    for arm, scores in arms.items():
        for name, s in scores.items():
            ci = "" if math.isnan(s["ci95"]) else f" ± {s['ci95']:.3f}"
            table.append(
                f"<tr><td>{html.escape(arm)}</td><td>{html.escape(name)}</td><td>{s['n']:.0f}</td>"
                f"<td>{s['mean']:.3f}{ci}</td></tr>"
            )
    table.append("</table>")
    imgs = "".join(
        f'<h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
        for name, data in plots
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font:14px system-ui,sans-serif;margin:24px;max-width:900px}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ddd;padding:3px 8px;text-align:left}}</style>
</head><body><h1>{html.escape(title)}</h1>
<p>{len(traces)} traces · generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>
{imgs}<h2>Per arm</h2>{"".join(table)}{extra_html}</body></html>"""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
