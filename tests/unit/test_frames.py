"""web/frames.py: gevent-websocket's unmasking and UTF-8 checks in C, with unchanged results."""

from __future__ import annotations

import io
import os
import random
import struct

import pytest
from geventwebsocket.websocket import Header, WebSocket
from presence_server.web import frames


def rfc6455_unmask(payload: bytes, mask: bytes) -> bytes:
    """RFC 6455 §5.3, byte by byte: the reference."""
    return bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


def masked_frame(payload: bytes, opcode: int = 0x1, fin: bool = True) -> bytes:
    """A client frame as a browser sends it: masked, with the length in 7, 16 or 64 bits."""
    mask = os.urandom(4)
    first = (0x80 if fin else 0) | opcode
    if len(payload) < 126:
        head = struct.pack("!BB", first, 0x80 | len(payload))
    elif len(payload) < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, len(payload))
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, len(payload))
    return head + mask + rfc6455_unmask(payload, mask)


class _Stream:
    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int) -> bytes:
        return self._data.read(size)

    def write(self, data: bytes) -> None:
        raise AssertionError("nothing should be written")


class _Socket(WebSocket):
    """gevent-websocket's WebSocket over bytes in memory, recording close codes."""

    def __init__(self, data: bytes) -> None:
        super().__init__(environ={}, stream=_Stream(data), handler=None)
        self.closed_with: list[int] = []

    def close(self, code: int = 1000, message: bytes = b"") -> None:
        self.closed_with.append(code)


def read_messages(data: bytes) -> list[object]:
    """Decode client frames with gevent-websocket's own reader (as the server does)."""
    ws = _Socket(data)
    out = []
    while True:
        message = ws.read_message()
        if message is None:
            return out
        out.append(message)


@pytest.fixture(scope="module", autouse=True)
def accelerated():
    assert frames.install(), "wsaccel must be installed (setup.py requires it)"


def test_both_per_byte_loops_run_in_c():
    assert frames.accelerated() == {"unmask": True, "utf8": True}


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 69, 125, 126, 1000, 65535, 65536, 70001])
def test_unmasking_matches_the_rfc_at_every_length(size):
    rng = random.Random(size)
    payload = bytes(rng.randrange(256) for _ in range(size))
    mask = bytes(rng.randrange(256) for _ in range(4))
    header = Header(fin=True, opcode=2, length=size)
    header.mask = mask
    out = header.unmask_payload(rfc6455_unmask(payload, mask))
    assert isinstance(out, bytearray)
    assert bytes(out) == payload


def test_a_heartbeat_frame_decodes_to_the_same_text():
    text = '42["heartbeat",{"clientName":"Jürgen-ü-😀","timestamp":1795433336215}]'
    close = masked_frame(struct.pack("!H", 1000), opcode=0x8)
    assert read_messages(masked_frame(text.encode()) + close) == [text]


def test_a_message_in_several_frames_decodes_whole_even_split_inside_a_character():
    text = "présence " * 50 + "😀"
    raw = text.encode()
    cut1, cut2 = raw.index("é".encode()) + 1, len(raw) - 2  # both cuts split a character
    data = (masked_frame(raw[:cut1], opcode=0x1, fin=False)
            + masked_frame(raw[cut1:cut2], opcode=0x0, fin=False)
            + masked_frame(raw[cut2:], opcode=0x0, fin=True)
            + masked_frame(b"", opcode=0x8))
    assert read_messages(data) == [text]


@pytest.mark.parametrize("bad", [b"\xff", b"ok \xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"])
def test_invalid_utf8_is_refused_with_close_code_1007(bad):
    ws = _Socket(masked_frame(bad))
    assert ws.receive() is None
    assert ws.closed_with == [1007]
