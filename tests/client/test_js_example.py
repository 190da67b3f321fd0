"""The README's JavaScript example, run with the official socket.io-client against the server.

The example is read from the documentation itself (the ```js block that starts with
``// presence-example.js`` in README.md and docs/clients.md), so the docs cannot drift from what
works. Needs ``node`` and ``npm``; ``npm install`` fills tests/client/js/node_modules once.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from presence_client import State

from .helpers import REPO, LineProcess, wait_until

JS_DIR = Path(__file__).resolve().parent / "js"
MARKER = "// presence-example.js"
BLOCK = re.compile(r"```(?:js|javascript)\n(" + re.escape(MARKER) + r".*?)```", re.S)


def documented_examples() -> list[tuple[str, str]]:
    """(where, code) of every distinct copy of the example in the docs."""
    found: dict[str, str] = {}
    for doc in (REPO / "README.md", REPO / "docs" / "clients.md"):
        if doc.exists():
            for code in BLOCK.findall(doc.read_text(encoding="utf-8")):
                found.setdefault(code, str(doc.relative_to(REPO)))
    return [(where, code) for code, where in found.items()]


EXAMPLES = documented_examples()


@pytest.fixture(scope="module")
def node_modules() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the JavaScript example test needs node and npm on PATH "
                    f"(node: {node or 'missing'}, npm: {npm or 'missing'})")
    modules = JS_DIR / "node_modules"
    if not (modules / "socket.io-client").is_dir():
        done = subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=JS_DIR,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"npm install failed:\n{done.stdout}\n{done.stderr}"
    return modules


def test_the_docs_hold_the_example() -> None:
    assert EXAMPLES, f"no ```js block starting with {MARKER!r} in README.md or docs/clients.md"


@pytest.mark.slow
@pytest.mark.parametrize("where,code", EXAMPLES, ids=[where for where, _ in EXAMPLES])
def test_js_example_registers_heartbeats_watches_and_survives_a_restart(
        where: str, code: str, node_modules: Path, make_server, make_client, tmp_path) -> None:
    server = make_server({"monitoring": {"reconnection_grace_period": "15s"}})
    script = tmp_path / "presence-example.js"
    script.write_text(code, encoding="utf-8")
    name = "js-example"
    node = LineProcess(["node", str(script)], cwd=tmp_path, env={
        "PRESENCE_URL": server.url, "PRESENCE_NAME": name, "NODE_PATH": str(node_modules)})
    try:
        node.expect(r"^online$")
        node.expect(r"^clients: \d+$")  # the watch snapshot
        first = wait_until(lambda: (r := server.client(name)) and r["status"] == "online" and r,
                           15, what="the JS client online")
        # heartbeats keep coming at the advised 1 s: last_seen moves on
        wait_until(lambda: server.client(name)["last_seen"] > first["last_seen"], 15,
                   what="a second heartbeat")

        other = make_client(server.url, "js-watched").start()  # the watch reports changes
        assert other.wait_online(10)
        node.expect(r"^status: js-watched online ")

        assert server.stop(signal.SIGTERM) == 0
        waited = int(node.expect(r"^server_shutdown: reconnecting in (\d+) ms$").group(1))
        notice_at = node.last_at
        assert waited >= 1000  # reconnectAfter (1 s in the test overlay) plus jitter
        assert other.wait_for(State.RECONNECTING, 10)
        server.start()
        node.expect(r"^online$", timeout=30)
        assert node.last_at - notice_at >= 1.0  # nobody came back before reconnectAfter
        record = wait_until(
            lambda: (r := server.client(name)) and r["status"] == "online" and r, 15,
            what="the JS client back online")
        assert "offline" not in [t["status"] for t in record["transitions"]]
        wait_until(lambda: f"client reports a successful reconnection: {name}"
                   in server.log_text(), 10, what="reconnection_success")

        node.signal(signal.SIGTERM)
        assert node.wait() == 0
    finally:
        node.kill()


def test_js_example_notices_a_hung_server(node_modules: Path, tmp_path) -> None:
    """The example's heartbeat ack deadline, against the tiny server that stops acking."""
    from .tiny_server import TinyServer

    examples = [code for _, code in EXAMPLES]
    assert examples
    code = examples[0].replace("socket.timeout(10000)", "socket.timeout(500)")
    assert "socket.timeout(500)" in code
    script = tmp_path / "presence-example.js"
    script.write_text(code, encoding="utf-8")
    server = TinyServer(next_heartbeat_in_ms=100).start()
    node = LineProcess(["node", str(script)], cwd=tmp_path, env={
        "PRESENCE_URL": server.url, "PRESENCE_NAME": "js-hung", "NODE_PATH": str(node_modules)})
    try:
        node.expect(r"^online$")
        server.wait_count("heartbeat", 2)
        server.ack_heartbeats = False
        node.expect(r"^reconnecting: ")
        server.ack_heartbeats = True
        node.expect(r"^online$")
        connects = server.wait_count("connect", 2)
        assert connects[1].data == {"clientName": "js-hung"}
    finally:
        node.kill()
        server.stop()


GUEST_SCRIPT = """
const { io } = require("socket.io-client");
// As the docs' guest paragraph says: keep guestId and resumeToken in socket.auth.
const socket = io(process.env.PRESENCE_URL,
                  { auth: { guest: true, name: "Visitor" }, transports: ["websocket"] });
socket.on("guest_registered", ({ guestId, resumeToken }) => {
  socket.auth.guestId = guestId;
  socket.auth.resumeToken = resumeToken;
  console.log("guest " + guestId);
});
socket.on("error", (e) => console.log("error " + e.code));
process.on("SIGTERM", () => { socket.disconnect(); process.exit(0); });
"""


@pytest.mark.slow
def test_js_guest_keeps_its_id_across_a_restart_that_purged_guests(
        node_modules: Path, make_server, tmp_path) -> None:
    server = make_server({"guests": {"purge_on_startup": True}})
    script = tmp_path / "guest.js"
    script.write_text(GUEST_SCRIPT, encoding="utf-8")
    node = LineProcess(["node", str(script)], cwd=tmp_path, env={
        "PRESENCE_URL": server.url, "NODE_PATH": str(node_modules)})
    try:
        guest_id = node.expect(r"^guest (guest-\w+)$").group(1)
        wait_until(lambda: (r := server.client(guest_id)) and r["status"] == "online", 15,
                   what="the JS guest online")
        server.kill()  # the connection just dies; socket.io-client reconnects by itself
        server.start()  # purges the guest's record at start-up
        assert node.expect(r"^guest (guest-\w+)$", timeout=30).group(1) == guest_id
        wait_until(lambda: (r := server.client(guest_id)) and r["status"] == "online", 15,
                   what="the JS guest back under its id")
        node.signal(signal.SIGTERM)
        assert node.wait() == 0
        assert not any(line.startswith("error") for line in node.text()), node.text()
    finally:
        node.kill()
