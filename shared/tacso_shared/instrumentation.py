"""What every API does around each request: its correlation id, its metrics, its log line.

- The correlation id (:mod:`tacso_shared.correlation`) is taken from ``X-Correlation-ID`` when the
  client sends a valid one, otherwise generated, made current for the request's log lines, and
  returned in the response's ``X-Correlation-ID``.
- ``tacso_http_requests_total`` and ``tacso_http_request_duration_seconds`` count every answer by
  URL rule (never the URL itself: its ids would make the label set unbounded) and status.
- One log line per request (not for ``/healthz`` and ``/metrics``, which are polled).
- ``GET /metrics`` serves the Prometheus metrics of the API's gunicorn processes.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request

from tacso_shared import correlation, metrics

log = logging.getLogger("tacso.http")

#: Polled by health checks and Prometheus: counted, but not worth a log line each.
_QUIET_PATHS = frozenset({"/healthz", "/metrics"})
_ENVIRON_KEY = "HTTP_" + correlation.HEADER.upper().replace("-", "_")


def _begin() -> None:
    g.tacso_started = time.perf_counter()
    cid = correlation.accept(request.headers.get(correlation.HEADER))
    # Whatever reads the header later (the events API stores it in the outbox envelope) sees the
    # id this request is logged under, also when it was generated here or replaced.
    request.environ[_ENVIRON_KEY] = cid
    correlation.set_current(cid)


def _finish(service: str, response: Response) -> Response:
    cid = correlation.current()
    if cid is not None:
        response.headers[correlation.HEADER] = cid
    started = g.get("tacso_started")
    elapsed = time.perf_counter() - started if started is not None else 0.0
    rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
    metrics.HTTP_REQUESTS.labels(service, request.method, rule, str(response.status_code)).inc()
    metrics.HTTP_DURATION.labels(service, request.method, rule).observe(elapsed)
    if request.path not in _QUIET_PATHS:
        log.info(
            "%s %s %d %.3fs",
            request.method,
            request.path,
            response.status_code,
            elapsed,
            extra={
                "method": request.method,
                "route": rule,
                "status": response.status_code,
                "duration_seconds": round(elapsed, 6),
            },
        )
    return response


def _forget(_exc: BaseException | None) -> None:
    # gunicorn's threads serve one request after another: no id may outlive its request.
    correlation.set_current(None)


def _metrics() -> Response:
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)


def instrument_app(app: Flask, service: str) -> None:
    """Install the correlation id, request metrics, request log line and ``GET /metrics``.

    Call it before any other ``before_request`` hook, so that a request refused by one still has
    its id, its count and its log line.
    """
    app.before_request(_begin)
    app.after_request(lambda response: _finish(service, response))
    app.teardown_request(_forget)
    app.add_url_rule("/metrics", "metrics", _metrics, methods=["GET"])
