"""The client under a gevent-patched program, and the ``presence-client`` command."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .helpers import PYTHON, REPO, LineProcess, free_port
from .tiny_server import TinyServer

HERE = Path(__file__).resolve().parent


def test_works_in_a_program_that_monkey_patched_gevent(tiny_server: TinyServer) -> None:
    program = LineProcess([PYTHON, str(HERE / "gevent_program.py"), tiny_server.url],
                          env={"PYTHONPATH": str(REPO)})
    try:
        program.expect(r"^patched True True$")
        program.expect(r"^online$")
        program.expect(r"^beats$")
        tiny_server.disconnect_all()
        program.expect(r"^reconnected$")
        program.expect(r"^closed stopped$")
        assert program.wait() == 0
        assert tiny_server.seen("reconnection_success")[0].data == {"clientName": "green"}
    finally:
        program.kill()


def cli(url: str, *args: str) -> LineProcess:
    return LineProcess([PYTHON, "-m", "presence_client", "--url", url, *args],
                       env={"PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_prints_state_changes_and_notices_and_exits_0(
        tiny_server: TinyServer, signum: int) -> None:
    proc = cli(tiny_server.url, "--name", "cli-1", "--heartbeat-interval", "0.2",
               "--max-delay", "0.5")
    try:
        proc.expect(r" start cli-1 -> http://")
        proc.expect(r"Z state online \(connected\)$")
        tiny_server.wait_count("heartbeat", 2)
        tiny_server.emit_all("error", {"code": "bad", "message": "nope", "event": "x"})
        proc.expect(r' notice error \{"code": "bad"')
        tiny_server.emit_all("server_shutdown", {"message": "bye", "reconnectAfter": 100})
        proc.expect(r' notice server_shutdown \{"message": "bye"')
        proc.expect(r" state reconnecting \(server shutdown; reconnecting in ")
        proc.expect(r" state online \(reconnected\)$")
        tiny_server.disconnect_all()
        proc.expect(r" state reconnecting \(connection closed")
        proc.expect(r" state online \(reconnected\)$")
        proc.signal(signum)
        proc.expect(r" state stopped \(closed\)$")
        assert proc.wait() == 0
    finally:
        proc.kill()


def test_cli_keeps_retrying_while_there_is_no_server() -> None:
    port = free_port()
    proc = cli(f"http://127.0.0.1:{port}", "--name", "lonely", "--guest", "--max-delay", "0.3")
    try:
        for _ in range(3):
            proc.expect(r" retry .*; next try in 0\.\d\ds$")
        server = TinyServer().start(port)
        try:
            proc.expect(r' notice guest_registered \{"guestId": "guest-1", "name": "lonely", '
                        r'"resumeToken": "token-guest-1"\}')
            proc.expect(r" state online \(connected\)$")
        finally:
            proc.signal(signal.SIGTERM)
            assert proc.wait() == 0
            server.stop()
    finally:
        proc.kill()


def test_cli_resumes_a_guest_id_with_its_token(tiny_server: TinyServer) -> None:
    proc = cli(tiny_server.url, "--name", "back", "--guest", "--guest-id", "guest-9",
               "--guest-token", "token-guest-9")
    try:
        proc.expect(r' notice guest_registered \{"guestId": "guest-9", ')
        proc.expect(r" state online \(connected\)$")
        assert tiny_server.seen("connect")[0].data == {
            "guest": True, "name": "back", "guestId": "guest-9", "resumeToken": "token-guest-9"}
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
    finally:
        proc.kill()


def test_cli_rejects_a_bad_url() -> None:
    proc = cli("localhost:5000", "--name", "x")
    assert proc.wait() == 2
    proc.drain()
    assert "url must be" in "".join(proc.stderr)


def test_cli_rejects_a_bad_max_delay() -> None:
    proc = cli("http://127.0.0.1:1", "--name", "x", "--max-delay", "0")
    assert proc.wait() == 2
    proc.drain()
    assert "--max-delay must be > 0" in "".join(proc.stderr)


def test_the_package_imports_neither_gevent_nor_flask_nor_pykka() -> None:
    code = ("import sys, presence_client, presence_client.cli; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('gevent', 'flask', 'flask_socketio', 'pykka', 'presence_server', 'web', 'actors')); "
            "print('imported:', bad)")
    proc = LineProcess([PYTHON, "-c", code], env={"PYTHONPATH": str(REPO)})
    proc.expect(r"^imported: \[\]$")
    assert proc.wait() == 0
