"""The tune report: every trial in a table, the Pareto front, the choice and why (Markdown, CSV,
and a quality-vs-latency plot)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

__all__ = ["write_report"]


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "—" if v is None else format(v, spec)


def write_report(result: Any, spec: Any) -> dict[str, Path]:
    folder: Path = result.folder
    front = set(result.front)
    best_key = result.best.key if result.best else None
    metrics = [m for m in dict.fromkeys([*spec.objective, *spec.constraints]) if m != "latency"]
    rows = sorted(result.trials, key=lambda t: (-(t.quality or -1), t.latency_p50_ms or 0))
    lines = [
        f"# Tune {result.study}",
        "",
        f"{len(result.trials)} trials ({spec.strategy}), {sum(t.feasible for t in result.trials)} feasible, "
        f"{len(front)} on the Pareto front (quality ↑, latency ↓, cost ↓). "
        f"Quality: weighted mean of {', '.join(f'{m}×{w:g}' for m, w in spec.objective.items())}. "
        f"Feasible: {', '.join(f'{m} ≥ {v:g}' for m, v in spec.constraints.items()) or 'no constraint'}, no errors.",
        "",
    ]
    if result.best:
        b = result.best
        lines += [
            f"**Chosen: {b.label()}** — quality {_fmt(b.quality)}, p50 {_fmt((b.latency_p50_ms or 0) / 1000, '.1f')} s, "
            f"cost ${b.cost_usd:.6f}/question. Rule: the fastest (then cheapest) front trial within "
            f"{spec.tolerance:g} of the best quality.",
        ]
        if result.registered:
            r = result.registered
            lines.append(f"Registered as `{r['model_uri']}` with alias `{r['alias']}`.")
    else:
        lines.append("**No trial is feasible**: nothing was chosen or registered.")
    lines += [
        "",
        "| # | | trial | quality | " + " | ".join(metrics) + " | p50 s | tokens/q | cost $/q | notes |",
        "|---|---|---|---|" + "---|" * len(metrics) + "---|---|---|---|",
    ]
    for n, t in enumerate(rows, 1):
        mark = "★" if t.key == best_key else ("◆" if t.key in front else "")
        notes = t.error or "; ".join(t.violations)
        lines.append(
            f"| {n} | {mark} | {t.label()} | {_fmt(t.quality)} | "
            + " | ".join(_fmt(t.metrics.get(m)) for m in metrics)
            + f" | {_fmt((t.latency_p50_ms or 0) / 1000, '.1f')} | {t.tokens:.0f} | {t.cost_usd:.6f} | {notes} |"
        )
    lines += [
        "",
        "★ chosen · ◆ Pareto front · the plot numbers trials as this table does",
        "",
        "![quality vs latency](pareto.png)",
        "",
    ]
    md = folder / "tune.md"
    md.write_text("\n".join(lines), encoding="utf-8")

    csv_path = folder / "trials.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        dims = list(spec.dimensions())
        w.writerow(
            [
                *dims,
                "quality",
                *metrics,
                "latency_p50_ms",
                "tokens",
                "cost_usd",
                "feasible",
                "front",
                "chosen",
                "run_id",
                "error",
            ]
        )
        for t in result.trials:
            w.writerow(
                [t.labels.get(d, "") for d in dims]
                + [t.quality, *[t.metrics.get(m) for m in metrics], t.latency_p50_ms, t.tokens, t.cost_usd]
                + [t.feasible, t.key in front, t.key == best_key, t.run_id or "", t.error or ""]
            )
    paths = {"markdown": md, "csv": csv_path}
    png = _plot(result, rows, folder / "pareto.png")
    if png:
        paths["plot"] = png
    return paths


def _plot(result: Any, rows: list[Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    number = {t.key: n for n, t in enumerate(rows, 1)}
    done = [t for t in result.trials if t.quality is not None and t.latency_p50_ms is not None]
    if not done:
        return None
    front = set(result.front)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for t in done:
        x, y = t.latency_p50_ms / 1000, t.quality
        if not t.feasible:
            ax.scatter(x, y, marker="x", color="#999999", zorder=2)
        else:
            ax.scatter(x, y, color="#1f77b4" if t.key in front else "#9ecae1", s=40, zorder=3)
    groups: dict[tuple[float, float], list[int]] = {}  # trials that land on one spot share a label
    for t in done:
        spot = (round(t.latency_p50_ms / 1000, 1), round(t.quality, 2))
        groups.setdefault(spot, []).append(number[t.key])
    for (x, y), numbers in groups.items():
        ax.annotate(
            ",".join(map(str, sorted(numbers))), (x, y), fontsize=7, xytext=(5, 4), textcoords="offset points"
        )
    pts = sorted((t.latency_p50_ms / 1000, t.quality) for t in done if t.key in front)
    if len(pts) > 1:
        ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", color="#1f77b4", lw=1, zorder=1)
    if result.best and result.best.latency_p50_ms is not None:
        ax.scatter(
            result.best.latency_p50_ms / 1000,
            result.best.quality,
            marker="*",
            s=220,
            color="#d62728",
            zorder=4,
            label="chosen",
        )
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("latency p50 (s) — lower is better")
    ax.set_ylabel("quality — higher is better")
    ax.set_title(
        f"{result.study}: {len(done)} trials (numbers as in tune.md; × infeasible, dark: Pareto front)",
        fontsize=8,
    )
    ax.margins(0.08, 0.12)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
