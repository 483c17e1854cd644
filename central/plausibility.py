"""What the ingest accepts and how it judges a result's time (issue 23).

A result whose time is well ahead of its receive time (a kiosk clock in the
future) or older than the kiosk's outbox expiry (the kiosk would have deleted
it) is stored, because a real child may be behind it, but flagged so that an
officer sees it on its page and in the results list's "flagged" filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

FUTURE = "future_time"
TOO_OLD = "too_old"
FLAGS = (FUTURE, TOO_OLD)
FLAG_TEXT = {
    FUTURE: "made later than it was received (is the kiosk's clock ahead?)",
    TOO_OLD: "older than the kiosks' outbox expiry when received (a kiosk clock behind, or a replay?)",
}

DEFAULT_MAX_SKEW_S = 300.0  # kiosks sync by NTP; five minutes ahead is a wrong clock, not drift
DEFAULT_MAX_AGE_DAYS = 14.0  # the kiosk's [outbox] expire_days default


@dataclass(frozen=True)
class IngestPolicy:
    max_skew_s: float = DEFAULT_MAX_SKEW_S
    max_age_days: float = DEFAULT_MAX_AGE_DAYS
    # False: results of sites not added with `central site add` are quarantined as unknown_site
    accept_unknown_sites: bool = False

    def check(self) -> None:
        from central.errors import CentralError

        if not self.max_skew_s >= 0:
            raise CentralError(f"--max-skew-s {self.max_skew_s}: use 0 or more seconds")
        if not self.max_age_days > 0:
            raise CentralError(f"--max-age-days {self.max_age_days}: use more than 0 days")


def flags_for(result_time: datetime, received: datetime, policy: IngestPolicy) -> str | None:
    """The comma-separated flags of a result made at `result_time`, received at `received`."""
    flags = []
    if result_time > received + timedelta(seconds=policy.max_skew_s):
        flags.append(FUTURE)
    if result_time < received - timedelta(days=policy.max_age_days):
        flags.append(TOO_OLD)
    return ",".join(flags) or None
