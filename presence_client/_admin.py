"""Admin: the presence server's HTTP API for an app server, instead of hand-written requests.

``Admin(url, token)`` reads clients and stats, delivers events to a client (``send``), kicks,
deletes guests, and follows the change feed (``changes()``: ``GET /events``, resumed with
``Last-Event-ID`` after a dropped stream). Standard library only (``http.client``); one short
HTTP connection per call, so an ``Admin`` may be shared by threads.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from ._state import AdminError, PresenceError, send_error

log = logging.getLogger("presence_client.admin")

PAGE = 1000  # records per /api/clients request


@dataclass(frozen=True)
class FeedEvent:
    """One event of the change feed: ``client_status_changed``, ``client_removed`` (``data``
    is its payload, ``id`` its eventId) or ``resync`` (``data`` a snapshot ``{clients, total,
    truncated, eventId}``: the changes before ``id`` were too old to replay)."""

    id: int | None
    event: str
    data: Any


class Admin:
    """The admin API of one presence server: ``Admin("http://127.0.0.1:5000", token)``.

    Read routes work without a token; admin routes (``send``, ``kick``, guest cleanup,
    ``delete_client``) need ``security.admin_token`` and raise :class:`AdminError` (401, 403)
    without it.
    """

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be http(s)://host[:port], got {url!r}")
        self.url = url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._base = parts.path.rstrip("/")
        self._token = token
        self.timeout = timeout

    # --- reads ----------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """``GET /health``: ``{status, uptime, node, store}``."""
        return self._call("GET", "/health")

    def stats(self) -> dict[str, Any]:
        """``GET /api/stats``: counts (``total``, ``online``, …), uptime and internals."""
        return self._call("GET", "/api/stats")

    def status_of(self, name: str) -> dict[str, Any] | None:
        """``GET /api/clients/<name>``: the record with its ``transitions``; ``None`` when
        the server knows no such client. ``status_of(n)["status"]`` is its status."""
        try:
            return self._call("GET", f"/api/clients/{_path(name)}")
        except AdminError as problem:
            if problem.status == 404:
                return None
            raise

    def clients(self, status: str | None = None, guest: bool | None = None,
                q: str | None = None) -> list[dict[str, Any]]:
        """Every matching record, sorted by name (``GET /api/clients``, all its pages)."""
        query: dict[str, str] = {"limit": str(PAGE)}
        if status is not None:
            query["status"] = status
        if guest is not None:
            query["guest"] = "true" if guest else "false"
        if q:
            query["q"] = q
        found: list[dict[str, Any]] = []
        while True:
            page = self._call("GET", "/api/clients?" + urlencode(query))
            found.extend(page["clients"])
            if not page.get("next"):
                return found
            query["after"] = page["next"]

    # --- admin operations -----------------------------------------------------------------------
    def send(self, name: str, event: str, data: Any = None) -> int:
        """Deliver ``event`` with ``data`` to every socket of client ``name`` (``POST
        /api/clients/<name>/messages``); they get ``{from: "server", data, sentAt}``.

        Returns how many sockets it reached. Raises :class:`NotOnlineError` (409) when the
        client has no live socket (nothing is queued), :class:`SendError` with the server's
        ``code`` for a refused request (400), :class:`AdminError` otherwise (401, 403).
        """
        try:
            body = self._call("POST", f"/api/clients/{_path(name)}/messages",
                              {"event": event, "data": data})
        except AdminError as problem:
            if problem.status in (400, 409):
                raise send_error(problem.code, problem.message, problem.status) from None
            raise
        return int(body["delivered"])

    def kick(self, name: str) -> dict[str, Any] | None:
        """Close the client's sockets and mark it offline (``kicked``): its record, or
        ``None`` when unknown."""
        return self._or_none("POST", f"/api/clients/{_path(name)}/kick")

    def delete_client(self, name: str) -> bool:
        """Delete a client's record and history (its sockets are closed); False if unknown."""
        return self._or_none("DELETE", f"/api/clients/{_path(name)}") is not None

    def delete_guest(self, guest_id: str) -> bool:
        """Disconnect and delete one guest; False when there is no such guest."""
        return self._or_none("DELETE", f"/api/guests/{_path(guest_id)}") is not None

    def cleanup_guests(self, before: datetime | str | None = None) -> int:
        """Delete guests last seen before ``before`` that have no live socket
        (``DELETE /api/guests/cleanup?before=``), or every guest when ``before`` is None
        (``cleanup-all``). Returns how many were deleted."""
        if before is None:
            return int(self._call("DELETE", "/api/guests/cleanup-all")["deleted"])
        if isinstance(before, datetime):
            moment = before if before.tzinfo else before.replace(tzinfo=UTC)
            before = moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return int(self._call("DELETE", "/api/guests/cleanup?" + urlencode(
            {"before": before}))["deleted"])

    # --- the change feed ------------------------------------------------------------------------
    def changes(self, since: int | None = None, *, names: Iterable[str] | None = None,
                statuses: Iterable[str] | None = None, retry: float = 1.0,
                read_timeout: float = 60.0) -> Iterator[FeedEvent]:
        """Every change from now (or after eventId ``since``), in order, forever: ``GET
        /events``. A dropped stream (server restart, network, proxy) is reopened after
        ``retry`` seconds with ``Last-Event-ID`` = the last id seen, so no change is missed or
        repeated while the id is within the server's backlog (else a ``resync`` event carries
        a snapshot). ``names`` / ``statuses`` filter on the server. A stream silent for
        ``read_timeout`` (the server sends a keepalive every 15 s) counts as dropped.

        Stop by leaving the loop (``break``) or closing the generator. Raises
        :class:`AdminError` for a refused request (400: a bad ``since``, name or status).
        """
        query: list[tuple[str, str]] = []
        query += [("name", name) for name in names or ()]
        query += [("status", status) for status in statuses or ()]
        path = "/events" + ("?" + urlencode(query) if query else "")
        last = since
        while True:
            connection = self._connection(read_timeout)
            try:
                headers = {"Accept": "text/event-stream"}
                if last is not None:
                    headers["Last-Event-ID"] = str(last)
                connection.request("GET", self._base + path, headers=headers)
                response = connection.getresponse()
                if response.status == 503:
                    raise OSError("the server is shutting down")
                if response.status != 200:
                    raise _error(response.status, response.read())
                for event in _parse_stream(response):
                    if event.id is not None:
                        last = event.id
                    if event.event:
                        yield event
                log.info("/events stream ended; resuming after %s", last)
            except (OSError, http.client.HTTPException) as problem:
                log.info("/events stream dropped (%s); resuming after %s", problem, last)
            finally:
                connection.close()
            time.sleep(retry)

    # --- HTTP -----------------------------------------------------------------------------------
    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return kind(self._host, self._port, timeout=timeout)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        payload = None
        if body is not None:
            payload = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        connection = self._connection(self.timeout)
        try:
            connection.request(method, self._base + path, body=payload, headers=headers)
            response = connection.getresponse()
            text = response.read()
        finally:
            connection.close()
        if response.status >= 400:
            raise _error(response.status, text)
        return json.loads(text) if text else None

    def _or_none(self, method: str, path: str) -> Any:
        try:
            return self._call(method, path)
        except AdminError as problem:
            if problem.status == 404:
                return None
            raise


def _path(name: str) -> str:
    return quote(name, safe="")


def _error(status: int, text: bytes) -> AdminError:
    try:
        body = json.loads(text)
        return AdminError(status, str(body.get("error")), str(body.get("message")))
    except (ValueError, AttributeError):
        return AdminError(status, "http_error", text[:200].decode("utf-8", "replace"))


def _parse_stream(response: http.client.HTTPResponse) -> Iterator[FeedEvent]:
    """Server-sent events as the WHATWG spec reads them; an `id:` with no data is yielded
    with an empty `event` (it moves the resume position only)."""
    event, data, event_id = "", [], None
    while True:
        line = response.readline()
        if not line:
            return  # the stream ended
        text = line.decode("utf-8").rstrip("\r\n")
        if text == "":
            if data:
                raw = "\n".join(data)
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    parsed = raw
                yield FeedEvent(event_id, event or "message", parsed)
            elif event_id is not None:
                yield FeedEvent(event_id, "", None)
            event, data, event_id = "", [], None
            continue
        if text.startswith(":"):
            continue
        field, _, value = text.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            try:
                event_id = int(value)
            except ValueError:
                raise PresenceError(f"/events sent a non-numeric id {value!r}") from None
