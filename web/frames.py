"""WebSocket frame decoding in C instead of pure Python (gevent-websocket's hot loop).

Every frame a client sends is masked (RFC 6455 §5.3), and gevent-websocket unmasks it with a
Python loop over each byte, then validates text frames with a pure-Python UTF-8 automaton, twice
(per frame, then per message): ~26 µs of a ~70-byte heartbeat on a slow 2-vCPU box, per message.
`wsaccel` (a small, maintained C extension made for this) does both in under 1.5 µs.
gevent-websocket already picks up `wsaccel`'s UTF-8 validator by itself when it is installed;
`install()` also routes its unmasking through `wsaccel`'s XOR masker.

Nothing changes on the wire or in what is accepted: the same bytes come out, the same invalid
UTF-8 is refused (tests/unit/test_frames.py checks both against gevent-websocket's own code).
"""

from __future__ import annotations

import logging

log = logging.getLogger("presence.sockets")

_installed = False


def install() -> bool:
    """Unmask frames with wsaccel (once per process); False when wsaccel is missing."""
    global _installed
    if _installed:
        return True
    try:
        from wsaccel.xormask import XorMaskerSimple
    except ImportError:
        log.warning("wsaccel is not installed: WebSocket frames are unmasked in pure Python")
        return False
    from geventwebsocket.websocket import Header

    def unmask_payload(header: Header, payload: bytes) -> bytearray:
        # same contract as Header.mask_payload (it is its own inverse): a bytearray
        return bytearray(XorMaskerSimple(header.mask).process(payload))

    Header.mask_payload = unmask_payload
    Header.unmask_payload = unmask_payload
    _installed = True
    return True


def accelerated() -> dict[str, bool]:
    """Which of gevent-websocket's per-byte loops run in C (for /api/stats and the bench)."""
    from geventwebsocket import utf8validator

    return {
        "unmask": _installed,
        "utf8": utf8validator.Utf8Validator.__module__.startswith("wsaccel"),
    }
