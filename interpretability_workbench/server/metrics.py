"""Prometheus metrics for one app (its own CollectorRegistry, so several apps can live in one process).

- ``iwb_http_requests_total{method,route,status}`` and ``iwb_http_request_duration_seconds{method,route}``
  (``route`` is the route template, e.g. ``/api/saes/{sae_id}``, so ids never explode cardinality);
- ``iwb_inference_latency_seconds{route}`` for ``/api/inference`` and ``/api/generate`` requests;
- ``iwb_inference_in_flight``, ``iwb_requests_rejected_total{reason}`` (401/413/429/503/504);
- ``iwb_training_tokens_per_second`` (from ``training_progress`` events on the bus; 0 when a run ends),
  ``iwb_training_events_total{type}``;
- ``iwb_models_loaded`` (0 or 1), ``iwb_ws_subscribers``, ``iwb_uptime_seconds`` (read at scrape time).
"""
from __future__ import annotations

import time
from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from ..events import Event, TrainingCancelled, TrainingDone, TrainingFailed, TrainingProgress

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
INFERENCE_PREFIXES = ("/api/inference", "/api/generate")


class _StateCollector:
    """Gauges read from the live state at scrape time."""

    def __init__(self, get_state: Callable[[], Any]) -> None:
        self.get_state = get_state

    def collect(self):  # noqa: ANN201 - prometheus_client collector protocol
        st = self.get_state()
        loaded = GaugeMetricFamily("iwb_models_loaded", "Models loaded and ready (0 or 1).")
        loaded.add_metric([], 1.0 if st is not None and st.model.lm is not None else 0.0)
        yield loaded
        subs = GaugeMetricFamily("iwb_ws_subscribers", "WebSocket clients subscribed to the event bus.")
        subs.add_metric([], float(st.bus.n_subscribers) if st is not None else 0.0)
        yield subs
        up = GaugeMetricFamily("iwb_uptime_seconds", "Seconds since the workbench state was built.")
        up.add_metric([], time.time() - st.model.started_at if st is not None else 0.0)
        yield up


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("iwb_http_requests", "HTTP requests by route template and status.",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("iwb_http_request_duration_seconds", "HTTP request latency.",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=r)
        self.inference_latency = Histogram("iwb_inference_latency_seconds",
                                           "Latency of inference and generation requests.", ["route"],
                                           buckets=LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("iwb_inference_in_flight", "Inference requests being computed now.", registry=r)
        self.queued = Gauge("iwb_inference_queued", "Inference requests waiting in the admission queue.", registry=r)
        self.rejected = Counter("iwb_requests_rejected", "Requests refused by a guard.", ["reason"], registry=r)
        self.training_tps = Gauge("iwb_training_tokens_per_second", "Throughput of the running training.",
                                  registry=r)
        self.training_events = Counter("iwb_training_events", "Training events seen on the bus.", ["type"],
                                       registry=r)
        self._state: Any = None
        self._remove_cb: Callable[[], None] | None = None
        r.register(_StateCollector(lambda: self._state))

    # bus -------------------------------------------------------------------------------
    def on_event(self, ev: Event) -> None:
        if isinstance(ev, TrainingProgress):
            if isinstance(ev.tokens_per_s, (int, float)):
                self.training_tps.set(float(ev.tokens_per_s))
        elif isinstance(ev, (TrainingDone, TrainingFailed, TrainingCancelled)):
            self.training_tps.set(0.0)
        else:
            return
        self.training_events.labels(type=ev.type).inc()

    def attach(self, state: Any) -> None:
        self.detach()
        self._state = state
        self._remove_cb = state.bus.add_callback(self.on_event)

    def detach(self) -> None:
        if self._remove_cb is not None:
            self._remove_cb()
        self._remove_cb = None

    # requests ----------------------------------------------------------------------------
    def observe(self, method: str, route: str, path: str, status: int, seconds: float) -> None:
        self.requests.labels(method=method, route=route, status=str(status)).inc()
        self.latency.labels(method=method, route=route).observe(seconds)
        if path.startswith(INFERENCE_PREFIXES) and method == "POST":
            self.inference_latency.labels(route=route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["Metrics", "CONTENT_TYPE"]
