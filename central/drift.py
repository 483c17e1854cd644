"""Is a kiosk's referral or retake rate out of line with the district's by more than chance?

An exact two-sided binomial test (the "minimum likelihood" p-value, as scipy.stats.binomtest
computes it) of the kiosk's count against the rate of the district's other kiosks, over the
last WINDOW_DAYS, at ALPHA = 0.01 per kiosk and rate (no correction for the number of kiosks:
a flag asks for a look — a knocked camera, a new light — it is not a verdict). Below MIN_N
results a kiosk is not judged. Pure Python (math.lgamma): central does not need scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.contract import REFER, RETAKE
from central.models import Result

ALPHA = 0.01
MIN_N = 20
WINDOW_DAYS = 14


def _log_pmf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if k == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if k == n else -math.inf
    return (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )


def binomial_p(k: int, n: int, p: float) -> float:
    """Two-sided exact binomial p-value: the probability of every count no likelier than k."""
    if n == 0:
        return 1.0
    observed = _log_pmf(k, n, p)
    slack = 1e-7  # scipy's relative tolerance for ties
    total = sum(math.exp(lp) for i in range(n + 1) if (lp := _log_pmf(i, n, p)) <= observed + slack)
    return min(1.0, total)


@dataclass(frozen=True)
class Drift:
    rate_name: str  # "referral rate" / "retake rate"
    count: int
    n: int
    district: float
    p_value: float

    @property
    def text(self) -> str:
        mine = self.count / self.n
        direction = "higher" if mine > self.district else "lower"
        return (
            f"{self.rate_name} {mine:.0%} ({self.count} of {self.n}) is {direction} than the "
            f"district's {self.district:.0%} by more than chance (binomial test p = "
            f"{self.p_value:.2g} < {ALPHA}): check the camera's position and the light"
        )


def kiosk_drift(db: Session, now: datetime) -> dict[tuple[str, str], list[Drift]]:
    """(site, kiosk) -> the rates that depart from the other kiosks' over the window."""
    since = now - timedelta(days=WINDOW_DAYS)
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for site, kiosk, outcome, n in db.execute(
        select(Result.site_id, Result.kiosk_id, Result.outcome, func.count())
        .where(Result.time >= since)
        .group_by(Result.site_id, Result.kiosk_id, Result.outcome)
    ):
        counts.setdefault((site, kiosk), {})[outcome] = n
    totals = {o: sum(c.get(o, 0) for c in counts.values()) for o in (REFER, RETAKE)}
    all_results = sum(sum(c.values()) for c in counts.values())
    all_judged = all_results - totals[RETAKE]
    flags: dict[tuple[str, str], list[Drift]] = {}
    for key, c in counts.items():
        results = sum(c.values())
        judged = results - c.get(RETAKE, 0)
        found = []
        for name, count, n, pool_count, pool_n in (
            ("referral rate", c.get(REFER, 0), judged, totals[REFER], all_judged),
            ("retake rate", c.get(RETAKE, 0), results, totals[RETAKE], all_results),
        ):
            others_n, others_count = pool_n - n, pool_count - count
            if n < MIN_N or others_n < MIN_N:
                continue
            district = others_count / others_n
            p_value = binomial_p(count, n, district)
            if p_value < ALPHA:
                found.append(Drift(name, count, n, district, p_value))
        if found:
            flags[key] = found
    return flags
