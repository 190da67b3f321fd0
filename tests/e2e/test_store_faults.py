"""Store faults with real server processes (issue 10, bugs 2 and 9).

- a record the store cannot write (a lone surrogate in a name) never stops the others being
  saved, and `/`, `/api/clients`, `/api/stats` keep answering 200;
- the SQLite file deleted under a running server is recreated (nothing lost at the restart);
  when it cannot be, `/health` says `degraded` with the reason and the exit status is 1;
- a read-only file or folder refuses the start with one clear line and a non-zero status;
- a real write failure (the file size limit, RLIMIT_FSIZE, reached: the kernel answers EFBIG
  as a full disk would answer ENOSPC) makes `/health` degraded with SQLite's own error, and a
  final flush that fails makes the exit status 1.

Read-only means read-only for root too (`tests/support/files.py`: `chattr +i` as root).
"""

from __future__ import annotations

import os
import sys

import pytest

from tests.support.files import make_read_only, make_writable
from tests.support.server import ServerProcess, wait_for

from .helpers import http, stored

pytestmark = pytest.mark.timeout(120)

EVIL = "evil\ud800"  # SQLite cannot encode a lone surrogate


def db_path(server) -> str:
    return server.config["store"]["url"][len("sqlite:///"):]


def register(connect, server, name: str) -> None:
    client = connect(server.url, "websocket", auth={"clientName": name})
    assert client.heartbeat(name)["status"] == "ok"


def test_a_record_the_store_cannot_write_does_not_stop_the_others(make_server, connect):
    server = make_server()
    register(connect, server, "alice")
    try:  # the socket edge may refuse the name; what follows must hold either way
        evil = connect(server.url, "websocket", auth={"clientName": EVIL})
        evil.heartbeat(EVIL, timeout=5)
    except Exception:  # noqa: BLE001 - refused at the edge: fine
        pass
    register(connect, server, "bob")
    wait_for(lambda: {"alice", "bob"} <= stored(server).keys(), 10,
             message="alice and bob written to the file")
    register(connect, server, "carol")  # and writes go on after the bad record
    wait_for(lambda: "carol" in stored(server), 10, message="carol written to the file")
    for path in ("/", "/api/clients", "/api/stats", "/api/clients?status=online"):
        status, _, body = http(server, "GET", path)
        assert status == 200, (path, body[:500])
    health = server.get("/health")
    assert health["status"] == "ok" and health["store"]["ok"] is True
    assert server.stop() == 0
    server.start()
    assert {"alice", "bob", "carol"} <= {c["name"] for c in server.get("/api/clients")["clients"]}


def test_a_deleted_store_file_is_recreated_and_nothing_is_lost(make_server, connect):
    server = make_server()
    register(connect, server, "alice")
    wait_for(lambda: "alice" in stored(server), 10, message="alice written")
    path = db_path(server)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    wait_for(lambda: os.path.exists(path), 10, message="the file recreated")
    register(connect, server, "bob")
    wait_for(lambda: {"alice", "bob"} <= stored(server).keys(), 10,
             message="both in the recreated file")
    assert server.get("/health")["store"]["ok"] is True
    assert "recreated it" in server.log_text()
    assert server.stop() == 0
    server.start()
    names = {c["name"] for c in server.get("/api/clients")["clients"]}
    assert {"alice", "bob"} <= names


@pytest.mark.parametrize("procfile", [False, True], ids=["presence-server", "procfile"])
def test_a_store_that_cannot_be_kept_makes_health_degraded_and_the_exit_status_1(
        make_server, connect, procfile):
    server = make_server(procfile=procfile)
    register(connect, server, "alice")
    folder = os.path.dirname(db_path(server))
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db_path(server) + suffix):
            os.remove(db_path(server) + suffix)
    make_read_only(type(server.workdir)(folder))
    try:
        def degraded():
            health = server.get("/health")
            error = health["store"]["error"] or ""
            return health if "cannot recreate" in error else None

        health = wait_for(degraded, 10, message="/health degraded: cannot recreate")
        assert health["status"] == "degraded" and health["store"]["ok"] is False
        assert "deleted" in health["store"]["error"]
        assert server.stop() == 1
    finally:
        make_writable(type(server.workdir)(folder))
    assert "final store flush failed" in server.log_text()


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_read_only_store_refuses_to_start_with_one_clear_line(make_server, what):
    server = make_server(start=False)
    path = db_path(server)
    if what == "file":
        server.start()
        assert server.stop() == 0
        target = type(server.workdir)(path)
    else:
        target = server.workdir / "ro"
        target.mkdir()
        server.config["store"]["url"] = f"sqlite:///{target / 'presence.db'}"
        import yaml

        server.config_path.write_text(yaml.safe_dump(server.config))
    make_read_only(target)
    try:
        with pytest.raises(AssertionError, match="exited with 1"):
            server.start(timeout=20)
    finally:
        make_writable(target)
    lines = [line for line in server.log_text().splitlines()
             if line.startswith("presence-server: cannot start")]
    assert len(lines) == 1 and "cannot write" in lines[0], server.log_text()[-2000:]
    assert "Traceback" not in server.log_text().split("===== start")[-1]


class SizeLimitedServer(ServerProcess):
    """A server whose process may not write any file past `limit` bytes (its log included)."""

    limit = 128 * 1024

    def command(self) -> list[str]:
        limit = ("import os, resource, sys; "
                 "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]),) * 2); "
                 "os.execv(sys.argv[2], sys.argv[2:])")
        return [sys.executable, "-c", limit, str(self.limit), *super().command()]


def test_a_failing_write_makes_health_degraded_and_a_lost_final_flush_exit_1(
        tmp_path, connect):
    server = SizeLimitedServer(tmp_path / "limited").start()
    try:
        names = iter(range(10_000))

        def degraded():  # every new client is a write; the WAL grows until the limit
            register(connect, server, f"c{next(names)}")
            health = server.get("/health")
            return health if health["status"] == "degraded" else None

        health = wait_for(degraded, 60, 0.0, message="the WAL to reach the size limit")
        assert health["store"]["ok"] is False
        assert "disk I/O error" in health["store"]["error"]  # SQLite's error, not ROLLBACK's
        assert "rollback" not in health["store"]["error"].lower()
        status, _, _ = http(server, "GET", "/api/stats")
        assert status == 200
        assert server.stop() == 1
    finally:
        server.kill()
    assert "final store flush failed" in server.log_text()
