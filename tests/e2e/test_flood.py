"""While some sockets flood the server (unknown events, malformed packets, oversized polls,
watch spam), a normal client's heartbeats keep being acknowledged (issue 10).

Latencies are printed (run with `-s` to see them), not asserted: a unit test on a shared box is
no benchmark.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from tests.e2e.test_input_limits import seed_records
from tests.support.clients import RecordingClient
from tests.support.server import REPO, wait_for

pytestmark = pytest.mark.timeout(120)

FLOOD_SECONDS = 6.0
LIMIT = 20_000


def flood_events(url: str, stop: threading.Event, kind: str) -> None:
    client = RecordingClient(url, "websocket")
    client.connect()
    try:
        index = 0
        while not stop.is_set():
            index += 1
            if kind == "unknown":
                client.emit(f"nonsense_{index}", {"i": index})
            elif kind == "malformed":
                client.sio.eio.send("%%% not a Socket.IO packet")
            else:
                client.emit("watch", {})
            if index % 50 == 0:
                time.sleep(0.001)  # let the client's own reader run
    finally:
        client.close()


def flood_oversized_polls(url: str, stop: threading.Event) -> None:
    port = int(url.rsplit(":", 1)[1])
    while not stop.is_set():
        with urllib.request.urlopen(f"{url}/socket.io/?EIO=4&transport=polling",
                                    timeout=5) as response:
            sid = json.loads(response.read().decode()[1:])["sid"]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall((f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
                          f"Host: x\r\nContent-Length: {LIMIT * 50}\r\n\r\n").encode())
            try:
                conn.recv(1024)
            except OSError:
                pass


def test_a_normal_client_is_served_during_a_flood(make_server, unique):
    server = make_server({"security": {"max_events_per_second": 10},
                          "socket": {"max_http_buffer_size": LIMIT, "ping_interval": "25s",
                                     "ping_timeout": "20s"},
                          "monitoring": {"heartbeat_interval": "10s",
                                         "connection_check_interval": "30s"}}, start=False)
    seed_records(server, 2000)  # a watch snapshot is 500 records: worth spamming
    server.start()
    name = unique("steady")
    steady = RecordingClient(server.url, "websocket", auth={"clientName": name}).connect()
    # the flooders run in another process: in this one they would starve the steady client's
    # reader of the GIL, and measure the test process instead of the server
    flood = subprocess.Popen([sys.executable, "-m", "tests.e2e.test_flood", server.url],
                             cwd=REPO)
    latencies = []
    try:
        wait_for(lambda: "rate_limited" in server.log_text(), 20, 0.1, "the flood to start")
        deadline = time.monotonic() + FLOOD_SECONDS
        while time.monotonic() < deadline:
            started = time.perf_counter()
            reply = steady.heartbeat(name, timeout=5)
            latencies.append(time.perf_counter() - started)
            assert reply["status"] == "ok", reply
            time.sleep(0.2)  # 5 per second: within the client's own budget
        assert flood.poll() is None, "the flood ended early"
    finally:
        flood.terminate()
        flood.wait(10)
        steady.close()

    assert len(latencies) >= FLOOD_SECONDS, "heartbeat acks stopped coming"
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    print(f"\nheartbeat acks during the flood: {len(latencies)}, p50 {p50:.1f} ms, "
          f"p99 {p99:.1f} ms, max {latencies[-1] * 1000:.1f} ms")
    log = server.log_text()
    assert "Traceback" not in log


def main(url: str) -> None:
    """The flood itself (`python -m tests.e2e.test_flood URL`), until terminated."""
    stop = threading.Event()
    threads = [threading.Thread(target=flood_events, args=(url, stop, kind), daemon=True)
               for kind in ("unknown", "unknown", "malformed", "watch", "watch")]
    threads.append(threading.Thread(target=flood_oversized_polls, args=(url, stop), daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main(sys.argv[1])
