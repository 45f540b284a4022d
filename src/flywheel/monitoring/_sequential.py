"""A sequential test for online A/B that stays valid however often it is looked at.

The monitor scores both arms' traces as they arrive, and ``flywheel monitor ab`` may be run every
minute: a fixed-sample test checked that often would declare a winner between identical arms far
more often than its 5 %. This uses the **mixture sequential probability ratio test** (mSPRT) of
Johari, Koomen, Pekelis and Walsh, *Always Valid Inference* (Operations Research, 2022) — the
test behind Optimizely's stats engine — for the difference of two arms' means with a normal
mixing distribution N(0, τ²) over the effect:

    Λ = sqrt(V / (V + τ²)) · exp( τ² d² / (2 V (V + τ²)) ),    V = s_a²/n_a + s_b²/n_b

where ``d`` is the difference of the means and ``V`` its variance (the arms' sample variances
plugged in: the asymptotic form, sound once each arm has a few dozen observations — hence
``min_n``). ``Λ ≥ 1/α`` rejects "no difference" with type-I error at most α *at any stopping
time*; inverting it gives the always-valid confidence interval

    d ± sqrt( V (V + τ²) / τ² · (2 log(1/α) + log((V + τ²)/V)) ).

``τ`` is the effect size the test is most sensitive to (0.1 on a 0–1 score). Written here (a
dozen lines) because the libraries that implement it do not install cleanly: ``confseq`` ships
only a source package that needs Boost to build, ``savvi`` pulls in cvxpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ArmStats", "SequentialResult", "msprt"]


@dataclass(frozen=True)
class ArmStats:
    n: int
    mean: float
    var: float  # sample variance (ddof=1)

    @classmethod
    def of(cls, values: list[float]) -> ArmStats:
        n = len(values)
        if n == 0:
            return cls(0, float("nan"), float("nan"))
        mean = sum(values) / n
        var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
        return cls(n, mean, var)


@dataclass(frozen=True)
class SequentialResult:
    diff: float  # challenger − champion
    ci_low: float
    ci_high: float
    likelihood_ratio: float
    p_value: float  # always valid: min(1, 1/Λ) at this look (the running minimum is the caller's)
    enough: bool  # both arms have min_n observations

    @property
    def verdict(self) -> str:
        """``better``, ``worse`` or ``undecided`` for the challenger."""
        if not self.enough:
            return "undecided"
        if self.ci_low > 0:
            return "better"
        if self.ci_high < 0:
            return "worse"
        return "undecided"


def msprt(
    champion: ArmStats, challenger: ArmStats, alpha: float = 0.05, tau: float = 0.1, min_n: int = 30
) -> SequentialResult:
    """The mSPRT and its always-valid interval for ``challenger.mean − champion.mean``."""
    if champion.n < 2 or challenger.n < 2:
        return SequentialResult(float("nan"), float("-inf"), float("inf"), 1.0, 1.0, False)
    d = challenger.mean - champion.mean
    v = max(champion.var / champion.n + challenger.var / challenger.n, 1e-12)
    t2 = tau * tau
    log_lr = 0.5 * math.log(v / (v + t2)) + t2 * d * d / (2 * v * (v + t2))
    half = math.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / alpha) + math.log((v + t2) / v)))
    lr = math.exp(min(log_lr, 700.0))
    return SequentialResult(
        diff=d,
        ci_low=d - half,
        ci_high=d + half,
        likelihood_ratio=lr,
        p_value=min(1.0, 1.0 / lr),
        enough=min(champion.n, challenger.n) >= min_n,
    )
