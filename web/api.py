"""The HTTP API (CONTRACT §6): health, clients, stats, and the admin routes."""

from __future__ import annotations

import heapq
import hmac
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from presence_server.store.records import STATUSES, ClientRecord
from werkzeug.exceptions import HTTPException

from . import validation
from .port import PresencePort
from .send import SERVER_SENDER, Sender
from .validation import Invalid

api = Blueprint("api", __name__)

# /api/clients answers a page of records sorted by name: serialising 20,000 records in one answer
# would hold the event loop (every heartbeat) for as long.
PAGE_DEFAULT = 1000
PAGE_MAX = 10000


def presence() -> PresencePort:
    return current_app.extensions["presence"]


def admin_token() -> str | None:
    return current_app.config["PRESENCE_ADMIN_TOKEN"]


def error(status: int, code: str, message: str):
    response = jsonify({"error": code, "message": message})
    response.status_code = status
    return response


@api.app_errorhandler(HTTPException)
def http_error(exception: HTTPException):
    code = (exception.name or "error").lower().replace(" ", "_")
    return error(exception.code or 500, code, exception.description or exception.name)


@api.get("/health")
def health():
    return jsonify(presence().health())


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
    after = request.args.get("after") or ""
    try:
        limit = _parse_limit(request.args.get("limit"))
    except ValueError as problem:
        return error(400, "invalid_query", str(problem))
    matching = [
        record for record in presence().clients(status, guest_filter)
        if not text or text in record.name.lower()
        or text in (record.display_name or "").lower()
    ]
    page = heapq.nsmallest(limit + 1, (r for r in matching if r.name > after),
                           key=lambda record: record.name)
    body: dict[str, Any] = {"clients": [shown(record) for record in page[:limit]],
                            "total": len(matching)}
    if len(page) > limit:
        body["next"] = page[limit - 1].name  # pass as ?after= for the next page
    return jsonify(body)


def _parse_limit(value: str | None) -> int:
    """`?limit=`: how many records one answer carries (a page, sorted by name)."""
    if value is None:
        return PAGE_DEFAULT
    if not value.isdigit() or not 1 <= int(value) <= PAGE_MAX:
        raise ValueError(f"limit must be a whole number from 1 to {PAGE_MAX}, got {value!r}")
    return int(value)


@api.get("/api/clients/<path:name>")
def show_client(name: str):
    node = presence()
    record = node.record(name)
    if record is None:
        return error(404, "not_found", f"no client named {name!r}")
    body: dict[str, Any] = shown(record)
    body["transitions"] = [t.public() for t in node.transitions(name)]
    return jsonify(body)


@api.get("/api/stats")
def stats():
    return jsonify(presence().stats())


@api.get("/api/nodes")
def nodes():
    """The nodes sharing the store (CONTRACT §6); one on the embedded store."""
    try:
        listed = presence().nodes()
    except Exception as problem:  # Redis unreachable: say so, do not 500 with a traceback
        return error(503, "store_unavailable", f"the node list needs the store: {problem}")
    return jsonify({"nodes": listed})


def is_admin() -> bool:
    """The request carries the configured admin token."""
    expected = admin_token()
    header = request.headers.get("Authorization", "")
    given = header[len("Bearer "):] if header.startswith("Bearer ") else ""
    return bool(expected and given and hmac.compare_digest(given.encode(), expected.encode()))


def shown(record: ClientRecord) -> dict[str, Any]:
    """A record as HTTP shows it: while `security.secret` is set, client addresses only to the
    admin (as watchers without a verified token get none)."""
    body = record.public()
    if presence().identities.required and not is_admin():
        del body["ip"]
    return body


def admin(view):
    """Bearer-token guard: 403 while no admin token is configured, 401 without the right one."""
    @wraps(view)
    def guarded(*args: Any, **kwargs: Any):
        if not admin_token():
            return error(403, "admin_disabled",
                         "admin routes are disabled: set PRESENCE_ADMIN_TOKEN")
        if not is_admin():
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
    return jsonify({"deleted": presence().delete_guests(before=cutoff)})


@api.delete("/api/guests/cleanup-all")
@admin
def cleanup_all_guests():
    return jsonify({"deleted": presence().delete_guests()})


@api.delete("/api/guests/<path:guest_id>")
@admin
def delete_guest(guest_id: str):
    deleted = presence().delete_guests(guest_id=guest_id)
    if not deleted:
        return error(404, "not_found", f"no guest {guest_id!r}")
    return jsonify({"deleted": deleted})


@api.post("/api/clients/<path:name>/kick")
@admin
def kick(name: str):
    record = presence().kick(name)
    if record is None:
        return error(404, "not_found", f"no client named {name!r}")
    return jsonify(record.public())


@api.post("/api/clients/<path:name>/messages")
@admin
def send_message(name: str):
    """Targeted delivery from the app server (web/send.py): `{event, data}` to every socket of
    `name`, `from` is `"server"` → `{delivered}`; 409 `not_online` when it has none."""
    sender: Sender = current_app.extensions["sender"]
    most = sender.max_bytes * 6 + 4096  # JSON escapes take up to 6 bytes per character
    if request.content_length is None or request.content_length > most:
        return error(400, "payload_too_large", f"the body needs a Content-Length of at most "
                                               f"{most} bytes (security.max_send_bytes)")
    body = request.get_json(silent=True)
    if body is None:
        return error(400, "invalid_payload", "the body must be a JSON object {event, data} "
                                             "(Content-Type: application/json)")
    try:
        delivery = sender.parse(body, to=validation.name(name, "name"), what="the body")
        delivered = sender.deliver(SERVER_SENDER, delivery)
    except Invalid as problem:
        return error(409 if problem.code == "not_online" else 400, problem.code, str(problem))
    return jsonify({"delivered": delivered})


@api.delete("/api/clients/<path:name>")
@admin
def delete_client(name: str):
    """Close the client's sockets, delete its record and history (`client_removed`)."""
    if not presence().delete_client(name):
        return error(404, "not_found", f"no client named {name!r}")
    return jsonify({"deleted": 1})
