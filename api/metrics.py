"""``GET /metrics`` (Prometheus) and the HTTP request metrics.

Requests are counted by route template (``/v1/videos/{video_id}``), so ids never become labels; a
path no route matches is ``unmatched``. What only Postgres and Redis know (jobs by state, the account
pool) is read at scrape time with one GROUP BY per table and one Redis pipeline.

Who may scrape: with ``METRICS_PUBLIC=false`` (the default) a scrape carries ``Authorization: Bearer``
with ``METRICS_KEY`` (a key for the scraper alone) or ``ADMIN_KEY``. ``METRICS_PUBLIC=true`` opens it
for a scraper on a private network (Kubernetes pod scraping); then keep the route off the public proxy.
"""

from __future__ import annotations

import hmac
import time

import sqlalchemy as sa
from litestar import Controller, Response, get
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers import BaseRouteHandler
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector, CollectorRegistry

from api.auth import client_owner, presented_key
from shared import metrics
from shared.errors import Forbidden, Unauthorized
from shared.models import Account, Job, JobState
from shared.resources import Resources

JOB_KINDS = ("video", "image", "character")
# Ended jobs are counted over this window only: the table keeps every job, and a scrape stays cheap.
FINISHED_WINDOW = "24 hours"
ACCOUNT_STATUSES = ("active", "cooling_down", "expired", "disabled")


class HttpMetrics:
    """Counts every HTTP request by route template and status; wraps the whole app (404s included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        streaming = False

        async def sending(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                streaming = any(
                    name.lower() == b"content-type" and value.startswith(b"text/event-stream")
                    for name, value in message.get("headers", ())
                )
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("path_template") or "unmatched"
            method = scope.get("method", "GET")
            metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
            if not streaming:
                metrics.HTTP_DURATION.labels(method, route).observe(time.perf_counter() - started)


async def metrics_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    settings = connection.app.state.services.settings
    if settings.metrics_public:
        return
    key = presented_key(connection)
    allowed = [k for k in (settings.metrics_key, settings.admin_key) if k]
    if key is not None and any(hmac.compare_digest(key.encode(), k.encode()) for k in allowed):
        return
    if key is not None and await client_owner(connection) is not None:
        raise Forbidden("This key cannot read the metrics")
    raise Unauthorized("Incorrect metrics key provided")


class MetricsController(Controller):
    tags = ["operations"]
    include_in_schema = False

    @get("/metrics", operation_id="metrics", guards=[metrics_guard])
    async def scrape(self, services: NamedDependency[Resources]) -> Response[bytes]:
        # This process's own metrics (or, with several processes, all of theirs), then the shared state.
        path = metrics.multiprocess_dir()
        own = generate_latest(metrics.multiprocess_registry(path) if path else REGISTRY)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Snapshot(await read_state(services)))
        # Litestar adds the charset itself.
        media_type = CONTENT_TYPE_LATEST.replace("; charset=utf-8", "")
        return Response(own + generate_latest(registry), media_type=media_type)


class _Snapshot(Collector):
    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self._families = families

    def collect(self):  # type: ignore[no-untyped-def]
        return iter(self._families)


_ACCOUNT_STATUS = sa.case(
    (Account.enabled.is_(False), "disabled"),
    (sa.and_(Account.expires_at.is_not(None), Account.expires_at <= sa.func.now()), "expired"),
    (sa.and_(Account.cooldown_until.is_not(None), Account.cooldown_until > sa.func.now()), "cooling_down"),
    else_="active",
)


async def read_state(services: Resources) -> list[GaugeMetricFamily]:
    """Jobs by state and kind, accounts by status, and account slots in use against their limits."""
    ns = metrics.NAMESPACE
    jobs = GaugeMetricFamily(
        f"{ns}_jobs",
        f"Jobs by state and kind: every open job (queued, submitting, running, finalizing), and the jobs "
        f"created in the last {FINISHED_WINDOW} that ended (completed, failed).",
        labels=["state", "kind"],
    )
    accounts = GaugeMetricFamily(
        f"{ns}_accounts", "Accounts in the pool by status, as /api/tokens shows it.", labels=["status"]
    )
    in_use = GaugeMetricFamily(
        f"{ns}_pool_slots_in_use",
        "Account slots held by jobs now (live Redis leases), by job kind.",
        labels=["kind"],
    )
    limit = GaugeMetricFamily(
        f"{ns}_pool_slots_limit",
        "Account slots the active accounts offer (the sum of their concurrency settings), by job kind.",
        labels=["kind"],
    )
    recent = sa.and_(
        Job.state.in_(JobState.TERMINAL),
        Job.created_at >= sa.func.now() - sa.text(f"interval '{FINISHED_WINDOW}'"),
    )
    async with services.sessions() as session:
        job_rows = (
            await session.execute(
                sa.select(Job.state, Job.kind, sa.func.count())
                .where(sa.or_(Job.state.in_(JobState.OPEN), recent), Job.deleted_at.is_(None))
                .group_by(Job.state, Job.kind)
            )
        ).all()
        account_rows = (
            await session.execute(
                sa.select(
                    Account.id,
                    _ACCOUNT_STATUS,
                    Account.video_concurrency,
                    Account.image_concurrency,
                    Account.character_concurrency,
                )
            )
        ).all()

    counts = {(state, kind): n for state, kind, n in job_rows}
    for state in (*JobState.OPEN, *JobState.TERMINAL):
        for kind in JOB_KINDS:
            jobs.add_metric([state, kind], counts.get((state, kind), 0))
    extra = {key: n for key, n in counts.items() if key[1] not in JOB_KINDS}
    for (state, kind), n in extra.items():
        jobs.add_metric([state, kind], n)

    by_status = dict.fromkeys(ACCOUNT_STATUSES, 0)
    limits = dict.fromkeys(JOB_KINDS, 0)
    for _, status, video, image, character in account_rows:
        by_status[status] = by_status.get(status, 0) + 1
        if status == "active":
            for kind, value in zip(JOB_KINDS, (video, image, character), strict=True):
                limits[kind] += value
    for status, n in by_status.items():
        accounts.add_metric([status], n)

    pairs = [(row[0], kind) for row in account_rows for kind in JOB_KINDS]
    held = await services.pool.leases.in_use_many(pairs)
    for kind in JOB_KINDS:
        in_use.add_metric([kind], sum(n for (_, k), n in held.items() if k == kind))
        limit.add_metric([kind], limits[kind])
    return [jobs, accounts, in_use, limit]
