"""`/metrics` for Prometheus: kiosks by state, results in the last hour, alarms, outbox depth,
quarantine, and the ingest's own counters. Aggregates only: no result, no token."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from central.models import Kiosk, Quarantine, Result, utcnow


class CentralCollector:
    """Reads the store on every scrape (prometheus_client custom collector)."""

    def __init__(self, sessions: Any, ingest: Any = None) -> None:
        self.sessions = sessions
        self.ingest = ingest

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        with self.sessions() as db:
            states = GaugeMetricFamily(
                "gaitmil_central_kiosks", "Kiosks by last retained status", labels=["state"]
            )
            counts = dict(db.execute(select(Kiosk.state, func.count()).group_by(Kiosk.state)).all())
            for state in ("online", "offline", "stopped"):
                states.add_metric([state], counts.get(state, 0))
            yield states
            hour = GaugeMetricFamily(
                "gaitmil_central_results_last_hour",
                "Results received in the last hour",
                labels=["site", "outcome"],
            )
            since = utcnow() - timedelta(hours=1)
            for site, outcome, n in db.execute(
                select(Result.site_id, Result.outcome, func.count())
                .where(Result.received_at >= since)
                .group_by(Result.site_id, Result.outcome)
            ):
                hour.add_metric([site, outcome], n)
            yield hour
            alarms = GaugeMetricFamily(
                "gaitmil_central_kiosk_alarm",
                "Alarms in each kiosk's last health (1 = raised)",
                labels=["site", "kiosk", "alarm"],
            )
            depth = GaugeMetricFamily(
                "gaitmil_central_kiosk_outbox_depth",
                "Outbox depth in the last health",
                labels=["site", "kiosk"],
            )
            for k in db.scalars(select(Kiosk)):
                health = k.health or {}
                for name in sorted(
                    (health.get("alarms") or {}) if isinstance(health.get("alarms"), dict) else {}
                ):
                    alarms.add_metric([k.site_id, k.kiosk_id, str(name)], 1)
                if isinstance(health.get("outbox_depth"), (int, float)):
                    depth.add_metric([k.site_id, k.kiosk_id], health["outbox_depth"])
            yield alarms
            yield depth
            yield GaugeMetricFamily(
                "gaitmil_central_quarantined",
                "Messages kept in quarantine",
                value=db.scalar(select(func.count()).select_from(Quarantine)),
            )
        if self.ingest is not None:
            ingest = CounterMetricFamily(
                "gaitmil_central_ingest_messages",
                "Messages handled by this ingest worker",
                labels=["kind"],
            )
            for kind, n in sorted(self.ingest.counts.items()):
                ingest.add_metric([kind], n)
            yield ingest


def make_metrics(sessions: Any, ingest: Any = None) -> Any:
    try:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.exposition import CONTENT_TYPE_LATEST
    except ImportError:
        raise ImportError(
            "/metrics needs prometheus-client: pip install 'gaitmil-edge[central]'"
        ) from None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CentralCollector(sessions, ingest))

    async def metrics(request: Request) -> Response:
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return metrics
