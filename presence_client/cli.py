"""The ``presence-client`` command: run one presence client until Ctrl-C or SIGTERM.

Prints one line per state change, per failed connection attempt and per server notice on stdout:
``<UTC time> <kind> <details>``, e.g. ``2025-01-01T12:00:00.000Z state online (connected)``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from ._backoff import Backoff
from ._client import PresenceClient, _now_iso
from ._state import StateChange

NOTICES = ("server_shutdown", "connection_check", "error", "guest_registered")
TRANSPORTS = {"websocket": ("websocket",), "polling": ("polling",), "auto": None}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="presence-client",
        description="Run one presence client: register, heartbeat, reconnect forever.")
    p.add_argument("--url", required=True, help="server URL, e.g. http://127.0.0.1:5000")
    p.add_argument("--name", required=True, help="client name (a guest's display name)")
    p.add_argument("--token", default=os.environ.get("PRESENCE_TOKEN"),
                   help="identity token (default: $PRESENCE_TOKEN)")
    p.add_argument("--guest", action="store_true", help="register as a guest")
    p.add_argument("--guest-id", help="keep this guest id from an earlier run")
    p.add_argument("--guest-token", default=os.environ.get("PRESENCE_GUEST_TOKEN"),
                   help="the resumeToken that came with --guest-id (default: "
                        "$PRESENCE_GUEST_TOKEN)")
    p.add_argument("--heartbeat-interval", type=float, metavar="SECONDS",
                   help="override the server's advised heartbeat interval")
    p.add_argument("--heartbeat-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="reply deadline of a heartbeat (default 10)")
    p.add_argument("--max-delay", type=float, default=30.0, metavar="SECONDS",
                   help="largest delay between reconnect attempts (default 30)")
    p.add_argument("--transport", choices=sorted(TRANSPORTS), default="websocket",
                   help="Engine.IO transport (default websocket; auto = polling, then upgrade)")
    p.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    return p


class _Printer:
    """Writes the status lines; one lock so lines from several threads never interleave."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def line(self, kind: str, text: str) -> None:
        with self._lock:
            sys.stdout.write(f"{_now_iso()} {kind} {text}\n")
            sys.stdout.flush()

    def state(self, change: StateChange) -> None:
        self.line("state", f"{change.state.value} ({change.reason})")

    def notice(self, event: str) -> Any:
        def show(data: Any) -> None:
            self.line("notice", f"{event} {json.dumps(data, default=str)}")
        return show

    def heartbeat(self, reply: Any) -> None:
        if not (isinstance(reply, dict) and reply.get("status") == "ok"):
            self.line("notice", f"heartbeat_response {json.dumps(reply, default=str)}")

    def retry(self, data: Any) -> None:
        self.line("retry", f"{data['message']}; next try in {data['retryIn']:.2f}s")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``presence-client``; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not args.max_delay > 0:
        print("presence-client: --max-delay must be > 0", file=sys.stderr)
        return 2
    try:
        client = PresenceClient(
            args.url, args.name, token=args.token, guest=args.guest, guest_id=args.guest_id,
            guest_resume_token=args.guest_token,
            heartbeat_interval=args.heartbeat_interval, heartbeat_timeout=args.heartbeat_timeout,
            backoff=Backoff(initial=min(0.5, args.max_delay), max_delay=args.max_delay),
            transports=TRANSPORTS[args.transport])
    except ValueError as exc:
        print(f"presence-client: {exc}", file=sys.stderr)
        return 2

    printer = _Printer()
    client.on_state_change(printer.state)
    for event in NOTICES:
        client.on(event, printer.notice(event))
    client.on("heartbeat_response", printer.heartbeat)
    client.on("connect_error", printer.retry)

    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    printer.line("start", f"{args.name} -> {args.url}")
    client.start()
    while not stop.wait(1.0):
        pass
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
