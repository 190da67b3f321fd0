"""WebSocket frame decoding in C instead of pure Python (gevent-websocket's hot loop).

Every frame a client sends is masked (RFC 6455 §5.3), and gevent-websocket unmasks it with a
Python loop over each byte, then validates text frames with a pure-Python UTF-8 automaton, twice
(per frame, then per message), per byte in Python. `wsaccel` (a small, maintained C extension
made for this) does both in C (the measured difference: bench/results/design-figures.md).
gevent-websocket already picks up `wsaccel`'s UTF-8 validator by itself when it is installed;
`install()` also routes its unmasking through `wsaccel`'s XOR masker.

Nothing changes on the wire or in what is accepted: the same bytes come out, the same invalid
UTF-8 is refused (tests/unit/test_frames.py checks both against gevent-websocket's own code).
This is the `frames` hook of web/hooks.py: outside the gevent-websocket and wsaccel versions it
was tested with, gevent-websocket's own unmasking stays.
"""

from __future__ import annotations

import logging

from . import hooks

try:
    from wsaccel.xormask import XorMaskerSimple
except ImportError:  # install() says so and keeps gevent-websocket's Python loop
    XorMaskerSimple = None

log = logging.getLogger("presence.sockets")

HOOK = hooks.FRAMES


def install(versions: dict[str, str | None] | None = None) -> bool:
    """Unmask frames with wsaccel (once per process); False when wsaccel is missing.

    `versions` stands in for the installed library versions (tests of the guard).
    """
    if HOOK.status == hooks.ACTIVE:
        return True
    if XorMaskerSimple is None:
        log.warning("wsaccel is not installed: WebSocket frames are unmasked in pure Python")
        HOOK.stock("wsaccel is not installed")
        return False
    if not HOOK.allowed(versions):
        return False
    from geventwebsocket.websocket import Header

    HOOK.patch(Header, "mask_payload", unmask_payload)
    HOOK.patch(Header, "unmask_payload", unmask_payload)
    return True


def unmask_payload(header: object, payload: bytes) -> bytearray:
    """gevent-websocket's `Header.mask_payload` in C: its own inverse, returns a bytearray."""
    return bytearray(XorMaskerSimple(header.mask).process(payload))  # type: ignore[attr-defined]


def accelerated() -> dict[str, bool]:
    """Which of gevent-websocket's per-byte loops run in C (for /api/stats and the bench)."""
    from geventwebsocket import utf8validator

    return {
        "unmask": HOOK.status == hooks.ACTIVE,
        "utf8": utf8validator.Utf8Validator.__module__.startswith("wsaccel"),
    }
