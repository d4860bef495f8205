"""Structured logging, request ids and Prometheus metrics.

One JSON line per event on stdout; every line logged while a request is being served
carries that request's id, which is also returned in the ``X-Request-ID`` header.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid

from prometheus_client import Counter, Histogram

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
access_log = logging.getLogger("assistant.access")

# Label values come from this fixed set: every distinct label value is a time series kept
# forever, so a client sending made-up methods must not be able to grow the registry.
KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "assistant_http_requests_total", "HTTP requests served", ["method", "status"]
)
HTTP_LATENCY = Histogram(
    "assistant_http_request_duration_seconds",
    "Time to produce an HTTP response",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object; extra= fields become keys."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_") and value is not None:
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)

    converter = time.gmtime


def incoming_request_id(header_value: str | None) -> str:
    """Trusts a well-formed id from a proxy, otherwise makes a new one."""
    if header_value and _SAFE_REQUEST_ID.match(header_value):
        return header_value
    return uuid.uuid4().hex


def method_label(method: str | None) -> str:
    return method if method in KNOWN_METHODS else "other"


def status_label(status: int) -> str:
    # Django's HttpResponse accepts any integer status; only real codes become their own series.
    return str(status) if 100 <= status <= 599 else "other"


class RequestIdMiddleware:
    """Sets the request id for logs, writes one access line, and counts the request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = incoming_request_id(request.headers.get("X-Request-ID"))
        token = request_id_var.set(request_id)
        request.request_id = request_id
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            elapsed = time.perf_counter() - started
            response["X-Request-ID"] = request_id
            HTTP_REQUESTS.labels(
                method_label(request.method), status_label(response.status_code)
            ).inc()
            HTTP_LATENCY.observe(elapsed)
            access_log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "ms": round(elapsed * 1000, 1),
                    "user_id": getattr(getattr(request, "user", None), "pk", None),
                },
            )
            return response
        finally:
            request_id_var.reset(token)
