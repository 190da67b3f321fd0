"""`GET /metrics`: the node's Prometheus metrics (CONTRACT §6).

Open by default, as Prometheus scrapes on an internal network usually are; with
`security.metrics_token` set it needs `Authorization: Bearer <metrics token>` (401 otherwise).
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, request

from .api import error, presence

metrics = Blueprint("metrics", __name__)


def _authorized(expected: str) -> bool:
    header = request.headers.get("Authorization", "")
    given = header[len("Bearer "):] if header.startswith("Bearer ") else ""
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


@metrics.get("/metrics")
def scrape():
    expected = current_app.config.get("PRESENCE_METRICS_TOKEN")
    if expected and not _authorized(expected):
        return error(401, "unauthorized", "send Authorization: Bearer <metrics token>")
    body, content_type = presence().metrics(request.headers.get("Accept"))
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})
