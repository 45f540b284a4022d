"""The dashboard: buckets over time, per-arm means with 95 % confidence intervals, a self-contained page."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

from flywheel.monitoring._dashboard import arm_table, buckets, build_dashboard


def _trace(
    t_ms: int, arm: str, groundedness: float, latency_ms: int, refused: bool = False
) -> SimpleNamespace:
    assessment = SimpleNamespace(name="online/groundedness", feedback=SimpleNamespace(value=groundedness))
    tags = {"client.arm": arm, "agent.outcome": "refused" if refused else "answered"}
    return SimpleNamespace(
        info=SimpleNamespace(
            request_time=t_ms, execution_duration=latency_ms, tags=tags, assessments=[assessment]
        )
    )


TRACES = [_trace(1_000 * i, "a", 1.0 if i % 2 else 0.0, 100 + i) for i in range(20)] + [
    _trace(1_000 * i + 500, "b", 1.0, 300, refused=i == 0) for i in range(20)
]


def test_arm_means_and_confidence_intervals() -> None:
    arms = arm_table(TRACES)
    a, b = arms["arm a"]["groundedness"], arms["arm b"]["groundedness"]
    assert a["n"] == 20 and a["mean"] == 0.5
    # stdev of ten 0s and ten 1s (sample) = sqrt(20/76) ≈ 0.513; ± 1.96·0.513/√20 ≈ 0.225
    assert math.isclose(a["ci95"], 1.96 * math.sqrt(20 / 76) / math.sqrt(20), rel_tol=1e-9)
    assert b["mean"] == 1.0 and b["ci95"] == 0.0
    assert arms["arm b"]["refusal_rate"]["mean"] == 0.05


def test_buckets_and_the_page(tmp_path: Path) -> None:
    rows = buckets(TRACES, n=4)
    assert sum(r["volume"] for r in rows) == 40 and len(rows) == 4
    assert all(0 <= r["refusal_rate"] <= 1 for r in rows)
    page = build_dashboard(TRACES, tmp_path / "d.html").read_text()
    assert page.count("data:image/png;base64,") == 4  # volume, latency, scores, arms
    assert "arm a" in page and "0.500 ± 0.225" in page


def test_the_online_ab_over_time_narrows_towards_the_decision(tmp_path: Path) -> None:
    from flywheel.monitoring._dashboard import ab_over_time

    traces = [_trace(1_000 * i, "champion", 0.8 if i % 5 else 0.6, 100) for i in range(300)] + [
        _trace(1_000 * i + 500, "challenger", 0.4 if i % 5 else 0.6, 100) for i in range(300)
    ]
    rows = ab_over_time(traces, n=6)
    assert len(rows) == 6 and rows[-1]["n"] == [300, 300]
    widths = [r["ci"][1] - r["ci"][0] for r in rows]
    assert widths == sorted(widths, reverse=True)  # more evidence, a narrower interval
    assert rows[-1]["ci"][1] < 0  # the challenger is worse, and the interval says so
    assert ab_over_time(TRACES) == []  # arms a/b of the gateway are not an agent A/B
    page = build_dashboard(traces, tmp_path / "d.html").read_text()
    assert "Online A/B over time" in page
