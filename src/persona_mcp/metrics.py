"""Prometheus metrics, one registry per App (so several apps in one process never mix).

Requests are counted and timed where every door converges (`Registry.call`); LLM and
embedding calls through wrappers around the providers; open connections, stored
memories and job runs are read when `/metrics` is scraped, from the record itself.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from persona_mcp.embeddings.base import Embedder, Vectors
from persona_mcp.errors import PersonaMCPError
from persona_mcp.llm.base import (
    ChatRequest,
    ChatResult,
    LLMProvider,
    ModelInfo,
    OnDelta,
    ProviderHealth,
    StructuredResult,
)
from persona_mcp.store import metrics as store_metrics
from persona_mcp.store.api import Connection

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BOUNDS = (*(repr(b) for b in FAST), "+Inf")  # the `le` labels, as prometheus_client writes them
SLOW = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class _Snapshot(Collector):
    """Figures read from the database at scrape time (set by `Metrics.refresh`)."""

    def __init__(self) -> None:
        self.memories = 0
        self.users = 0
        self.job_runs: dict[tuple[str, str], int] = {}

    def collect(self) -> Iterable[Metric]:
        memories = GaugeMetricFamily("persona_mcp_memories", "Memories stored (all users)")
        memories.add_metric([], self.memories)
        users = GaugeMetricFamily("persona_mcp_users", "Users with personas")
        users.add_metric([], self.users)
        runs = CounterMetricFamily(
            "persona_mcp_job_runs", "Background and on-demand job runs", labels=["job", "trigger"]
        )
        for (job, trigger), count in sorted(self.job_runs.items()):
            runs.add_metric([job, trigger], count)
        return [memories, users, runs]


class _Requests(Collector):
    """Operation calls by method and outcome, and their latency by method. Recorded on
    every call, so kept as plain numbers (no locks, no label lookups: prometheus_client's
    thread-safe counter and histogram cost more than the cheapest call's own work) and
    turned into a counter and a histogram when /metrics is scraped. Only the event loop
    records them."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        # method -> a count per bucket of FAST (and one past it), then the sum
        self.latency: dict[str, list[float]] = {}

    def record(self, method: str, outcome: str, seconds: float) -> None:
        key = (method, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1
        hist = self.latency.get(method)
        if hist is None:
            hist = self.latency[method] = [0.0] * (len(FAST) + 2)
        hist[bisect_left(FAST, seconds)] += 1  # the first bucket whose bound >= seconds
        hist[-1] += seconds

    def collect(self) -> Iterable[Metric]:
        calls = CounterMetricFamily(
            "persona_mcp_requests", "Operation calls", labels=["method", "outcome"]
        )
        for (method, outcome), count in sorted(self.counts.items()):
            calls.add_metric([method, outcome], count)
        latency = HistogramMetricFamily(
            "persona_mcp_request_duration_seconds", "Operation latency", labels=["method"]
        )
        for method, hist in sorted(self.latency.items()):
            buckets, running = [], 0.0
            for bound, seen in zip(BOUNDS, hist[:-1], strict=True):
                running += seen
                buckets.append((bound, running))
            latency.add_metric([method], buckets, sum_value=hist[-1])
        return [calls, latency]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = _Requests()
        r.register(self.requests)
        self.connections = Gauge(
            "persona_mcp_open_connections", "Open connections", ["transport"], registry=r
        )
        self.refused = Counter(
            "persona_mcp_connections_refused", "Refused at the edge", ["reason"], registry=r
        )
        self.llm_calls = Counter(
            "persona_mcp_llm_calls", "LLM generations", ["provider", "outcome"], registry=r
        )
        self.llm_latency = Histogram(
            "persona_mcp_llm_duration_seconds", "LLM generation latency", buckets=SLOW, registry=r
        )
        self.embed_calls = Counter(
            "persona_mcp_embedding_calls", "Embedding calls", ["outcome"], registry=r
        )
        self.embedded_texts = Counter("persona_mcp_embedded_texts", "Texts embedded", registry=r)
        self.embed_latency = Histogram(
            "persona_mcp_embedding_duration_seconds", "Embedding latency", buckets=FAST,
            registry=r,
        )  # fmt: skip
        self.snapshot = _Snapshot()
        r.register(self.snapshot)

    def request(self, method: str, outcome: str, seconds: float) -> None:
        self.requests.record(method, outcome, seconds)

    def track_connections(self, transport: str, count: Callable[[], float]) -> None:
        self.connections.labels(transport).set_function(count)

    def refresh(self, conn: Connection) -> None:
        """Read the figures kept in the database (run on a reader thread)."""
        snap = self.snapshot
        figures = store_metrics.figures(conn)
        snap.memories, snap.users = figures.memories, figures.users
        runs = figures.job_runs
        kept = {k: v for k, v in snap.job_runs.items() if k[0] not in {"decay", "prune"}}
        snap.job_runs = kept | runs

    def job_run(self, job: str, trigger: str) -> None:
        """Count a run of a job the database does not record (session cleanup)."""
        key = (job, trigger)
        self.snapshot.job_runs[key] = self.snapshot.job_runs.get(key, 0) + 1

    def render(self) -> bytes:
        return generate_latest(self.registry)


class InstrumentedLLM:
    """An LLMProvider that counts and times generations of the provider it wraps."""

    def __init__(self, inner: LLMProvider, metrics: Metrics) -> None:
        self.inner = inner
        self._metrics = metrics
        self.name = inner.name

    @property
    def default_model(self) -> str:
        return self.inner.default_model

    async def generate(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResult:
        started = time.perf_counter()
        try:
            result = await self.inner.generate(request, on_delta)
        except PersonaMCPError:
            self._metrics.llm_calls.labels(self.name, "error").inc()
            raise
        self._metrics.llm_calls.labels(result.provider, "ok").inc()
        self._metrics.llm_latency.observe(time.perf_counter() - started)
        return result

    async def generate_json(self, request: ChatRequest, schema: dict[str, Any]) -> StructuredResult:
        started = time.perf_counter()
        try:
            result = await self.inner.generate_json(request, schema)
        except PersonaMCPError:
            self._metrics.llm_calls.labels(self.name, "error").inc()
            raise
        self._metrics.llm_calls.labels(result.result.provider, "ok").inc()
        self._metrics.llm_latency.observe(time.perf_counter() - started)
        return result

    async def list_models(self) -> list[ModelInfo]:
        return await self.inner.list_models()

    async def health(self) -> ProviderHealth:
        return await self.inner.health()

    async def resolve(self) -> LLMProvider:
        return await self.inner.resolve()

    async def aclose(self) -> None:
        await self.inner.aclose()


class InstrumentedEmbedder:
    """An Embedder that counts and times the embedding calls of the one it wraps."""

    def __init__(self, inner: Embedder, metrics: Metrics) -> None:
        self.inner = inner
        self._metrics = metrics
        self.name = inner.name
        self.model = inner.model

    @property
    def ready(self) -> bool:
        return self.inner.ready

    @property
    def dim(self) -> int | None:
        return self.inner.dim

    async def start(self) -> None:
        await self.inner.start()

    async def embed(self, texts: list[str]) -> Vectors:
        started = time.perf_counter()
        try:
            vectors = await self.inner.embed(texts)
        except Exception:
            self._metrics.embed_calls.labels("error").inc()
            raise
        self._metrics.embed_calls.labels("ok").inc()
        self._metrics.embedded_texts.inc(len(texts))
        self._metrics.embed_latency.observe(time.perf_counter() - started)
        return vectors

    def status(self) -> dict[str, Any]:
        return self.inner.status()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __getattr__(self, name: str) -> Any:
        # Members beyond the Protocol (wait_ready of the bundled model) pass through.
        return getattr(self.inner, name)
