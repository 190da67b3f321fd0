"""Budgets against floods: rejected inputs logged once per period, new records per address.

`Complaints` keeps the log readable under a flood (one line per socket per period, with a count);
`NewRecordBudget` bounds how many client records one address may create (a token bucket each).
"""

from __future__ import annotations

import logging
import time

from .validation import printable

log = logging.getLogger("presence.sockets")

COMPLAINT_LOG_PERIOD = 10.0  # at most one "rejected ..." line per socket per period
MAX_EVENT_NAME = 64  # unknown event names are echoed back and logged cut to this length


class Complaints:
    """One socket's rejected inputs, logged as one line per `COMPLAINT_LOG_PERIOD` with a count.

    The first rejection of a period is logged as it happens; the rest of that period only add
    to a count, logged with the next rejection after the period (or when the socket closes).
    """

    __slots__ = ("since", "count", "codes")

    def __init__(self) -> None:
        self.since = 0.0  # start of the current period; 0 while none is open
        self.count = 0  # rejections not logged yet
        self.codes: dict[str, int] = {}

    def note(self, sid: str, event: str | None, code: str, message: str) -> None:
        now = time.monotonic()
        if self.since and now - self.since >= COMPLAINT_LOG_PERIOD:
            self.flush(sid)
        if not self.since:
            self.since = now
            log.info("rejected %s from %s: %s (%s)", printable(str(event)[:MAX_EVENT_NAME]),
                     sid, printable(message), code)
            return
        self.count += 1
        self.codes[code] = self.codes.get(code, 0) + 1

    def flush(self, sid: str) -> None:
        """Log what was left unlogged, and close the period."""
        if self.count:
            kinds = ", ".join(f"{code} x{count}" for code, count in self.codes.items())
            log.info("rejected %d more events from %s in the last %.0fs (%s)", self.count, sid,
                     time.monotonic() - self.since, kinds)
        self.since, self.count, self.codes = 0.0, 0, {}


# Refusals with no Socket.IO session to charge them to: one log line per period for them all.
transport_complaints = Complaints()


class NewRecordBudget:
    """How many new client records each IP address may still create (a token bucket per IP).

    `per_minute` 0 means no limit. Buckets that have refilled are forgotten once there are many,
    so an address costs memory only while it is creating records.
    """

    PRUNE_AT = 4096

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str | None, tuple[float, float]] = {}

    def spend(self, ip: str | None) -> bool:
        """Take one new record for `ip`; False when it has created too many lately."""
        if self.per_minute <= 0:
            return True
        now = time.monotonic()
        capacity, rate = float(self.per_minute), self.per_minute / 60.0
        tokens, at = self._buckets.get(ip, (capacity, now))
        tokens = min(capacity, tokens + (now - at) * rate)
        if tokens < 1.0:
            self._buckets[ip] = (tokens, now)
            return False
        if ip not in self._buckets and len(self._buckets) >= self.PRUNE_AT:
            self._buckets = {key: (left, when) for key, (left, when) in self._buckets.items()
                             if left + (now - when) * rate < capacity}
        self._buckets[ip] = (tokens - 1.0, now)
        return True
