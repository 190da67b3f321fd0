"""The HTTP API (CONTRACT §6): health, clients, stats, and the admin routes."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from presence_server.actors.messages import DeleteClient, DeleteGuests, KickClient
from presence_server.actors.stats import store_stats
from presence_server.store.records import STATUSES
from werkzeug.exceptions import HTTPException

api = Blueprint("api", __name__)

ADMIN_TIMEOUT = 10.0


def runtime():
    return current_app.extensions["presence"]


def error(status: int, code: str, message: str):
    response = jsonify({"error": code, "message": message})
    response.status_code = status
    return response


@api.app_errorhandler(HTTPException)
def http_error(exception: HTTPException):
    code = (exception.name or "error").lower().replace(" ", "_")
    return error(exception.code or 500, code, exception.description or exception.name)


def stats_window() -> float:
    from presence_server.actors.supervisor import CHECK_RESPONSE_WINDOW

    return runtime().config.monitoring["connection_check_interval"] + CHECK_RESPONSE_WINDOW


@api.get("/health")
def health():
    node = runtime()
    store = node.store.health()
    return jsonify({
        "status": "ok" if store["ok"] and not node.shutting_down else "degraded",
        "uptime": round(node.uptime(), 3),
        "node": node.node,
        "store": store,
    })


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")


@api.get("/api/clients")
def list_clients():
    status = request.args.get("status")
    if status is not None and status not in STATUSES:
        return error(400, "invalid_query", f"status must be one of {', '.join(STATUSES)}, "
                                           f"got {status!r}")
    guest = request.args.get("guest")
    try:
        guest_filter = _parse_bool("guest", guest) if guest is not None else None
    except ValueError as problem:
        return error(400, "invalid_query", str(problem))
    text = (request.args.get("q") or "").lower()
    store = runtime().store
    if status is not None:  # the narrowest query first; the other filters on what it answers
        candidates = store.by_status(status)
    elif guest_filter:
        candidates = store.guests()
    else:
        candidates = store.all()
    records = sorted(candidates, key=lambda record: record.name)
    clients = [
        record.public() for record in records
        if (guest_filter is None or record.guest == guest_filter)
        and (not text or text in record.name.lower()
             or text in (record.display_name or "").lower())
    ]
    return jsonify({"clients": clients, "total": len(clients)})


@api.get("/api/clients/<path:name>")
def show_client(name: str):
    node = runtime()
    record = node.store.get(name)
    if record is None:
        return error(404, "not_found", f"no client named {name!r}")
    body: dict[str, Any] = record.public()
    body["transitions"] = [t.public() for t in node.store.transitions(name)]
    return jsonify(body)


@api.get("/api/stats")
def stats():
    node = runtime()
    body = store_stats(node.store, node.clock.now(), stats_window())
    body["uptime"] = round(node.uptime(), 3)
    body.update(node.internals())
    return jsonify(body)


def admin(view):
    """Bearer-token guard: 403 while no admin token is configured, 401 without the right one."""
    @wraps(view)
    def guarded(*args: Any, **kwargs: Any):
        expected = runtime().config.security["admin_token"]
        if not expected:
            return error(403, "admin_disabled",
                         "admin routes are disabled: set PRESENCE_ADMIN_TOKEN")
        header = request.headers.get("Authorization", "")
        given = header[len("Bearer "):] if header.startswith("Bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            return error(401, "unauthorized", "send Authorization: Bearer <admin token>")
        return view(*args, **kwargs)

    return guarded


def _parse_iso(value: str) -> float:
    text = value.strip().replace("Z", "+00:00")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@api.delete("/api/guests/cleanup")
@admin
def cleanup_guests_before():
    before = request.args.get("before")
    if not before:
        return error(400, "invalid_query", "before is required (an ISO-8601 date)")
    try:
        cutoff = _parse_iso(before)
    except ValueError:
        return error(400, "invalid_query", f"before must be an ISO-8601 date, got {before!r}")
    node = runtime()
    deleted = node.supervisor.ask(DeleteGuests(node.clock.now(), before=cutoff),
                                  timeout=ADMIN_TIMEOUT)
    return jsonify({"deleted": deleted})


@api.delete("/api/guests/cleanup-all")
@admin
def cleanup_all_guests():
    node = runtime()
    deleted = node.supervisor.ask(DeleteGuests(node.clock.now()), timeout=ADMIN_TIMEOUT)
    return jsonify({"deleted": deleted})


@api.delete("/api/guests/<path:guest_id>")
@admin
def delete_guest(guest_id: str):
    node = runtime()
    deleted = node.supervisor.ask(DeleteGuests(node.clock.now(), guest_id=guest_id),
                                  timeout=ADMIN_TIMEOUT)
    if not deleted:
        return error(404, "not_found", f"no guest {guest_id!r}")
    return jsonify({"deleted": deleted})


@api.post("/api/clients/<path:name>/kick")
@admin
def kick(name: str):
    node = runtime()
    found = node.supervisor.ask(KickClient(name, node.clock.now()), timeout=ADMIN_TIMEOUT)
    if not found:
        return error(404, "not_found", f"no client named {name!r}")
    record = node.store.get(name)
    return jsonify(record.public() if record else {"name": name})


@api.delete("/api/clients/<path:name>")
@admin
def delete_client(name: str):
    """Close the client's sockets, delete its record and history (`client_removed`)."""
    node = runtime()
    found = node.supervisor.ask(DeleteClient(name, node.clock.now()), timeout=ADMIN_TIMEOUT)
    if not found:
        return error(404, "not_found", f"no client named {name!r}")
    return jsonify({"deleted": 1})
