"""The flood scenario's attacker: a few hostile sockets against one server, then a JSON report.

``python -m bench.attacker SPEC_JSON`` (stdlib only; the harness starts it pinned to the load CPU).
It speaks raw HTTP/1.1, RFC 6455 and the Engine.IO 4 / Socket.IO 5 text encodings over asyncio
streams: every attack packet is encoded once up front and sent as prebuilt bytes in batches, so a
packet costs the attacker about one memcpy, far less than a socket.io-client emit in Node.

The SPEC is ``{"url", "cases": [...], "seconds", "source", "tag", "params": {case: {...}}}``.
Cases (each runs its ``sockets`` concurrently, at ``rate`` attack packets per second in all):

- ``unknown``: events no handler knows (``42["flood_unknown_3",{}]``);
- ``malformed``: broken Socket.IO packets (truncated JSON, no event name, bad types, unknown
  namespace, bad packet types);
- ``oversized_post``: long-polling POSTs whose Content-Length is over the server's
  ``max_http_buffer_size``, one fresh Engine.IO session and TCP connection each;
- ``binary``: events with ``attachments`` binary attachments of ``attachment_kib`` KiB each;
- ``watch``: ``watch`` with an ack id, answered with a snapshot of every stored record;
- ``register``: a new connection per new client name (connect auth ``clientName``), closed at once;
- ``slow``: ``sockets`` connections held open without a name: a third send half an HTTP request,
  a third open the Engine.IO websocket but never the namespace, a third join the namespace but
  never name themselves; counts how many the server closes by itself.

Loops are bounded by count (``rate × seconds``, ``max_reconnects``) and by time (``seconds``, and
a hard stop a little later); every socket goes to the server's loopback address. The report
counts what was sent and what came back: ``error`` events by ``code``, HTTP statuses, sockets the
server closed, snapshots served, the attacker's own CPU seconds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

TICK_S = 0.02  # a batch of attack packets every 20 ms
CODE = re.compile(rb'"code":\s*"([A-Za-z0-9_]{1,40})"')
MALFORMED = [  # what a Socket.IO 5 server must refuse without harm (Engine.IO 4 text frames)
    b'42["heartbeat"',  # truncated JSON
    b'42{"not":"an array"}',  # payload is not an array
    b"42[]",  # no event name
    b"42[1,2,3]",  # event name not a string
    b'42["x",' + b"[" * 64 + b"]" * 64 + b"]",  # deep nesting
    b"4",  # empty Socket.IO packet
    b"49",  # unknown Socket.IO packet type
    b'42/nowhere,["x",{}]',  # namespace never joined
    b"43",  # ack without id
    b'42["heartbeat",{"clientName":{"a":1}}]',  # wrong types
    b"4\xc3\xa9",  # Socket.IO type out of range (non-digit)
    b"9",  # unknown Engine.IO packet type
]


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One client frame (FIN, masked with the all-zero key: the payload goes as is)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + b"\x00\x00\x00\x00" + payload


PONG = ws_frame(b"3")
NET_ERRORS = (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError)


class Stats:
    """What one attacker run counts, per case."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()
        self.bytes_sent: Counter[str] = Counter()
        self.codes: dict[str, Counter[str]] = {}
        self.http: dict[str, Counter[str]] = {}
        self.other: dict[str, Counter[str]] = {}

    def code(self, case: str, code: str) -> None:
        self.codes.setdefault(case, Counter())[code] += 1

    def status(self, case: str, status: str) -> None:
        self.http.setdefault(case, Counter())[status] += 1

    def count(self, case: str, what: str, n: int = 1) -> None:
        self.other.setdefault(case, Counter())[what] += n


class Conn:
    """One raw websocket to the server: handshake, Engine.IO open, frames in and out."""

    def __init__(self, case: str, stats: Stats) -> None:
        self.case = case
        self.stats = stats
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.closed_by_server = False
        self.reader_task: asyncio.Task[None] | None = None
        self.sio_connected = asyncio.Event()
        self.sio_refused = False
        self.acks = 0
        self.received = 0  # bytes

    async def open(self, host: str, port: int, source: str, auth: dict[str, Any] | None = None,
                   namespace: bool = True, timeout: float = 5.0) -> bool:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=(source, 0)), timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            (f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}:{port}\r\n"
             f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
             f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        status = head.split(b" ", 2)[1].decode(errors="replace") if b" " in head else "?"
        self.stats.status(self.case, f"upgrade {status}")
        if status != "101":
            self.close()
            return False
        opcode, payload = await asyncio.wait_for(self._frame(), timeout)
        if opcode is None or not payload.startswith(b"0"):
            self.close()
            return False
        self.reader_task = asyncio.ensure_future(self._read_loop())
        if namespace:
            body = b"40" + (json.dumps(auth).encode() if auth else b"")
            self.writer.write(ws_frame(body))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.sio_connected.wait(), timeout)
            return self.sio_connected.is_set() and not self.sio_refused
        return True

    async def _frame(self) -> tuple[int | None, bytes]:
        assert self.reader is not None
        try:
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(await self.reader.readexactly(2), "big")
            elif n == 127:
                n = int.from_bytes(await self.reader.readexactly(8), "big")
            if b1 & 0x80:
                await self.reader.readexactly(4)  # a server never masks; tolerate it
            return b0 & 0x0F, await self.reader.readexactly(n)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return None, b""

    async def _read_loop(self) -> None:
        """Answer pings, count `error` codes and acks, notice the server closing us.

        Reads whatever has arrived in one chunk and parses every whole frame in it without
        awaiting per frame: a reply costs the attacker a few microseconds."""
        assert self.reader is not None
        buf = b""
        for _ in range(100_000_000):  # bounded: ends with the connection in any case
            try:
                chunk = await self.reader.read(1 << 18)
            except (ConnectionError, OSError):
                chunk = b""
            if not chunk:
                self.closed_by_server = True
                return
            self.received += len(chunk)
            buf = buf + chunk if buf else chunk
            pos, size = 0, len(buf)
            while size - pos >= 2:
                b0, b1 = buf[pos], buf[pos + 1]
                n, head = b1 & 0x7F, 2
                if n == 126:
                    if size - pos < 4:
                        break
                    n, head = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
                elif n == 127:
                    if size - pos < 10:
                        break
                    n, head = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
                if b1 & 0x80:
                    head += 4  # a server never masks; skip a key if one came
                if size - pos < head + n:
                    break
                opcode = b0 & 0x0F
                if opcode == 0x8:
                    self.closed_by_server = True
                    return
                if opcode == 0x1:
                    self._packet(buf[pos + head:pos + head + min(n, 400)], n)
                else:
                    self.stats.count(self.case, "bytes_received", n)
                pos += head + n
            buf = buf[pos:]

    def _packet(self, payload: bytes, size: int) -> None:
        """One Engine.IO text packet from the server (``payload``: its first 400 bytes)."""
        case, stats = self.case, self.stats
        stats.count(case, "bytes_received", size)
        if payload == b"2":
            self.send(PONG)
        elif payload.startswith(b'42["error"'):
            m = CODE.search(payload)
            stats.code(case, m.group(1).decode() if m else "error_without_code")
        elif payload.startswith(b"43"):
            self.acks += 1
            if b'"clients"' in payload:
                stats.count(case, "snapshots_served")
                stats.count(case, "snapshot_bytes", size)
            elif b'"code"' not in payload:
                stats.count(case, "acks_other")
        elif payload.startswith(b"40"):
            self.sio_connected.set()
        elif payload.startswith(b"44"):
            self.sio_refused = True
            stats.code(case, "connect_refused")
            self.sio_connected.set()
        elif payload.startswith(b"41"):
            stats.count(case, "namespace_disconnects")
        elif payload == b"1":
            stats.count(case, "engineio_close")

    def send(self, data: bytes) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(data)

    async def drain(self) -> None:
        if self.writer is not None:
            await self.writer.drain()

    @property
    def alive(self) -> bool:
        return (self.writer is not None and not self.writer.is_closing()
                and not self.closed_by_server)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.reader_task is not None:
            self.reader_task.cancel()


class Attack:
    """One run of every requested case until its deadline."""

    def __init__(self, spec: dict[str, Any]) -> None:
        url = urlsplit(spec["url"])
        self.host = url.hostname or "127.0.0.1"
        if not self.host.startswith("127."):
            raise SystemExit("attacker: loopback targets only (127.0.0.0/8)")
        self.port = int(url.port or 80)
        self.source = spec.get("source", "127.0.0.1")
        self.seconds = float(spec["seconds"])
        self.linger_s = float(spec.get("linger", 2.0))
        self.tag = spec.get("tag", "x")
        self.params: dict[str, dict[str, Any]] = spec.get("params", {})
        self.cases: list[str] = spec["cases"]
        self.stats = Stats()
        self.started_at = 0.0
        self.deadline = 0.0
        self.started = 0.0

    def p(self, case: str, key: str, default: Any) -> Any:
        return self.params.get(case, {}).get(key, default)

    def budget(self, case: str, default_rate: float) -> tuple[int, float]:
        """(sockets, packets per second per socket) of a case."""
        sockets = max(1, int(self.p(case, "sockets", 4)))
        return sockets, float(self.p(case, "rate", default_rate)) / sockets

    async def run(self) -> dict[str, Any]:
        self.started = time.monotonic()
        self.deadline = self.started + self.seconds
        self.started_at = time.time()  # wall clock, for the harness's windows
        runners = {"unknown": self.stream, "malformed": self.stream, "binary": self.stream,
                   "watch": self.stream, "oversized_post": self.oversized_post,
                   "register": self.register, "slow": self.slow}
        tasks = [asyncio.ensure_future(runners[case](case)) for case in self.cases]
        try:
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True),
                                   self.seconds + 15.0)
        except TimeoutError:
            for task in tasks:
                task.cancel()
        cpu = os.times()
        return {
            "ev": "done", "cases": self.cases, "seconds": round(time.monotonic() - self.started, 3),
            "started_at": self.started_at, "stopped_sending_at": self.started_at + self.seconds,
            "sent": dict(self.stats.sent), "bytes_sent": dict(self.stats.bytes_sent),
            "error_codes": {k: dict(v) for k, v in self.stats.codes.items()},
            "http": {k: dict(v) for k, v in self.stats.http.items()},
            "other": {k: dict(v) for k, v in self.stats.other.items()},
            "cpu_s": round(cpu.user + cpu.system, 3),
        }

    # --- packets over a few long-lived sockets ----------------------------------------------------
    def packets(self, case: str) -> list[bytes]:
        """The prebuilt wire bytes of one attack packet of ``case`` (cycled through)."""
        if case == "unknown":
            return [ws_frame(f'42["flood_unknown_{i}",{{"n":{i}}}]'.encode()) for i in range(10)]
        if case == "malformed":
            return [ws_frame(m) for m in MALFORMED]
        if case == "watch":
            return [ws_frame(f'42{i}["watch",{{}}]'.encode()) for i in range(1, 51)]
        if case == "binary":
            count = int(self.p(case, "attachments", 8))
            size = int(self.p(case, "attachment_kib", 256)) * 1024
            holders = ",".join(f'{{"_placeholder":true,"num":{i}}}' for i in range(count))
            blob = ws_frame(b"\x00" * size, opcode=0x2)
            return [ws_frame(f'45{count}-["flood_blob",{holders}]'.encode()) + blob * count]
        raise ValueError(case)

    async def stream(self, case: str) -> None:
        defaults = {"unknown": 2000.0, "malformed": 1000.0, "watch": 40.0, "binary": 4.0}
        sockets, per_socket = self.budget(case, defaults[case])
        packets = self.packets(case)
        limit = int(per_socket * self.seconds) + 1
        await asyncio.gather(*(self._stream_one(case, i, packets, per_socket, limit)
                               for i in range(sockets)), return_exceptions=True)

    async def _stream_one(self, case: str, index: int, packets: list[bytes], rate: float,
                          limit: int) -> None:
        stats = self.stats
        reconnects = int(self.p(case, "max_reconnects", 200))
        sent = 0
        conn: Conn | None = None
        credit = 1.0  # the first packet goes at once
        last = time.monotonic()
        for _ in range(reconnects + 1):
            if time.monotonic() >= self.deadline or sent >= limit:
                break
            conn = Conn(case, stats)
            try:
                ok = await conn.open(self.host, self.port, self.source)
            except NET_ERRORS:
                ok = False
            stats.count(case, "connections")
            if not ok:
                stats.count(case, "connect_failed")
                conn.close()
                await asyncio.sleep(0.2)
                continue
            last = time.monotonic()
            while conn.alive and sent < limit:
                now = time.monotonic()
                if now >= self.deadline:
                    break
                credit = min(credit + (now - last) * rate, rate * 0.5 + 1)
                last = now
                batch = min(int(credit), limit - sent)
                if batch > 0:
                    credit -= batch
                    data = b"".join(packets[(sent + j) % len(packets)] for j in range(batch))
                    conn.send(data)
                    sent += batch
                    stats.sent[case] += batch
                    stats.bytes_sent[case] += len(data)
                    try:
                        await asyncio.wait_for(conn.drain(), max(0.01, self.deadline - now))
                    except (OSError, TimeoutError):
                        break
                await asyncio.sleep(TICK_S)
            if conn.closed_by_server:
                stats.count(case, "closed_by_server")
            if time.monotonic() >= self.deadline or sent >= limit:
                break
            conn.close()
        if conn is not None:
            await self.linger(conn)
            conn.close()

    async def linger(self, conn: Conn) -> None:
        """After the deadline: keep reading (not sending) while answers still come, at most
        ``linger`` s, so what the server answered late is counted too."""
        end = self.deadline + self.linger_s
        quiet_since, seen = time.monotonic(), conn.received
        for _ in range(10_000):  # bounded; ends at ``end`` anyway
            now = time.monotonic()
            if now >= end or not conn.alive or now - quiet_since >= 0.5:
                return
            await asyncio.sleep(0.1)
            if conn.received != seen:
                quiet_since, seen = time.monotonic(), conn.received

    # --- long-polling POSTs over the size limit ---------------------------------------------------
    async def oversized_post(self, case: str) -> None:
        sockets, per_socket = self.budget(case, 20.0)
        limit = int(per_socket * self.seconds) + 1
        await asyncio.gather(*(self._post_loop(case, per_socket, limit) for _ in range(sockets)),
                             return_exceptions=True)

    async def _post_loop(self, case: str, rate: float, limit: int) -> None:
        declared = int(self.p(case, "content_length", 2_000_000))
        body_sent = int(self.p(case, "body_bytes", 65536))
        for _ in range(limit):
            t0 = time.monotonic()
            if t0 >= self.deadline:
                return
            await self._one_post(case, declared, body_sent)
            await asyncio.sleep(max(0.0, 1.0 / rate - (time.monotonic() - t0)))

    async def _http(self, request: bytes, body: bytes = b"",
                    timeout: float = 1.0) -> tuple[str, bytes]:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, local_addr=(self.source, 0)), timeout)
        try:
            writer.write(request + body)
            await asyncio.wait_for(writer.drain(), timeout)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            status = head.split(b" ", 2)[1].decode(errors="replace")
            length = re.search(rb"(?i)content-length:\s*(\d+)", head)
            data = b""
            if length:
                data = await asyncio.wait_for(reader.readexactly(min(int(length.group(1)),
                                                                     1 << 20)), timeout)
            return status, data
        finally:
            writer.close()

    async def _one_post(self, case: str, declared: int, body_sent: int) -> None:
        stats = self.stats
        host = f"{self.host}:{self.port}"
        try:
            status, body = await self._http(
                f"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: {host}\r\n"
                f"Connection: close\r\n\r\n".encode())
            m = re.search(rb'"sid":"([^"]+)"', body)
            if status != "200" or not m:
                stats.status(case, f"open {status}")
                return
            sid = m.group(1).decode()
            request = (f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
                       f"Host: {host}\r\nContent-Type: text/plain;charset=UTF-8\r\n"
                       f"Content-Length: {declared}\r\nConnection: close\r\n\r\n").encode()
            stats.sent[case] += 1
            stats.bytes_sent[case] += len(request) + body_sent
            status, body = await self._http(request, b"4" * body_sent)
            stats.status(case, status)
            m2 = CODE.search(body[:400])
            if m2:
                stats.code(case, m2.group(1).decode())
        except TimeoutError:
            stats.status(case, "no answer within 1 s")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, IndexError):
            stats.status(case, "connection error")

    # --- new names ------------------------------------------------------------------------------
    async def register(self, case: str) -> None:
        sockets, per_socket = self.budget(case, 100.0)
        limit = int(per_socket * self.seconds) + 1
        await asyncio.gather(*(self._register_loop(case, i, per_socket, limit)
                               for i in range(sockets)), return_exceptions=True)

    async def _register_loop(self, case: str, index: int, rate: float, limit: int) -> None:
        stats = self.stats
        for n in range(limit):
            t0 = time.monotonic()
            if t0 >= self.deadline:
                return
            conn = Conn(case, stats)
            stats.sent[case] += 1
            try:
                ok = await conn.open(self.host, self.port, self.source,
                                     auth={"clientName": f"flood-{self.tag}-{index}-{n:06d}"})
                stats.count(case, "registered" if ok else "refused")
            except NET_ERRORS:
                stats.count(case, "connect_failed")
            finally:
                conn.close()
            await asyncio.sleep(max(0.0, 1.0 / rate - (time.monotonic() - t0)))

    # --- sockets held open without a name ---------------------------------------------------------
    async def slow(self, case: str) -> None:
        total = int(self.p(case, "sockets", 150))
        kinds = ["half_request", "engineio_only", "unnamed"]
        held: list[tuple[str, float, Any]] = []
        host = f"{self.host}:{self.port}"
        gate = asyncio.Semaphore(16)  # opened 16 at a time, not one after the other

        async def open_one(i: int) -> None:
            kind = kinds[i % 3]
            async with gate:
                if time.monotonic() >= self.deadline:
                    return
                self.stats.sent[case] += 1
                try:
                    if kind == "half_request":
                        reader, writer = await asyncio.wait_for(asyncio.open_connection(
                            self.host, self.port, local_addr=(self.source, 0)), 5.0)
                        writer.write(f"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n"
                                     f"Host: {host}\r\nX-Slow: ".encode())
                        held.append((kind, time.monotonic(), (reader, writer)))
                        return
                    conn = Conn(case, self.stats)
                    if await conn.open(self.host, self.port, self.source,
                                       namespace=kind == "unnamed"):
                        held.append((kind, time.monotonic(), conn))
                    else:
                        self.stats.count(case, f"{kind}_refused")
                        conn.close()
                except NET_ERRORS:
                    self.stats.count(case, f"{kind}_connect_failed")

        await asyncio.gather(*(open_one(i) for i in range(total)), return_exceptions=True)
        closed: dict[int, float] = {}

        async def watch_one(i: int, t: float, obj: Any) -> None:
            if isinstance(obj, tuple):
                with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                    await obj[0].read(1)  # an answer (e.g. 408) or EOF: the server gave up
            elif obj.reader_task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await obj.reader_task
            closed[i] = time.monotonic() - t

        watchers = [asyncio.ensure_future(watch_one(i, t, obj))
                    for i, (_kind, t, obj) in enumerate(held)]
        if watchers:
            await asyncio.wait(watchers, timeout=max(0.0, self.deadline - time.monotonic()))
        for task in watchers:
            task.cancel()
        by_kind: Counter[str] = Counter(kind for kind, _t, _o in held)
        shut: Counter[str] = Counter(held[i][0] for i in closed)
        for kind in kinds:
            self.stats.count(case, f"{kind}_held", by_kind[kind])
            self.stats.count(case, f"{kind}_closed_by_server", shut[kind])
        if closed:
            self.stats.count(case, "first_close_after_ms", int(min(closed.values()) * 1000))
        for _kind, _t, obj in held:
            if isinstance(obj, tuple):
                obj[1].close()
            else:
                obj.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    spec = json.loads(args[0])
    attack = Attack(spec)
    print(json.dumps({"ev": "started", "cases": attack.cases, "pid": os.getpid()}), flush=True)
    report = asyncio.run(attack.run())
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
