"""docs/call-flow.md's two examples (official socket.io-client, and the Python SDK), read from the
document itself and run against a real server: the invite reaches the callee, the answer comes
back, an absent callee is `not_online`, and the caller learns when the callee drops."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from .helpers import PYTHON, REPO, LineProcess

DOC = REPO / "docs" / "call-flow.md"
JS_DIR = Path(__file__).resolve().parent / "js"
CONFIG = {"monitoring": {"reconnection_grace_period": "20s"}}


def block(language: str, marker: str) -> str:
    found = re.findall(r"```" + language + r"\n(" + re.escape(marker) + r".*?)```",
                       DOC.read_text(encoding="utf-8"), re.S)
    assert len(found) == 1, f"docs/call-flow.md needs one ```{language} block starting {marker}"
    return found[0]


@pytest.fixture(scope="module")
def node_modules() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the JavaScript call example needs node and npm on PATH "
                    f"(node: {node or 'missing'}, npm: {npm or 'missing'})")
    modules = JS_DIR / "node_modules"
    if not (modules / "socket.io-client").is_dir():
        done = subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=JS_DIR,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"npm install failed:\n{done.stdout}\n{done.stderr}"
    return modules


def runner(kind: str, tmp_path: Path, node_modules: Path | None):
    """A function starting one participant of the example: (role, env) -> LineProcess."""
    if kind == "js":
        script = tmp_path / "call-flow.js"
        script.write_text(block("js", "// call-flow.js"), encoding="utf-8")
        command, extra = ["node", str(script)], {"NODE_PATH": str(node_modules)}
    else:
        script = tmp_path / "call_flow.py"
        script.write_text(block("python", "# call_flow.py"), encoding="utf-8")
        command, extra = [PYTHON, str(script)], {"PYTHONPATH": str(REPO)}

    def start(url: str, role: str, **env: str) -> LineProcess:
        return LineProcess(command, cwd=tmp_path,
                           env={"PRESENCE_URL": url, "CALL_ROLE": role, **extra, **env})

    return start


@pytest.fixture(params=["js", "python"])
def participant(request, tmp_path):
    modules = request.getfixturevalue("node_modules") if request.param == "js" else None
    return runner(request.param, tmp_path, modules)


@pytest.mark.slow
def test_the_call_flow_example(participant, make_server) -> None:
    server = make_server(CONFIG)
    started: list[LineProcess] = []

    def start(role: str, **env: str) -> LineProcess:
        process = participant(server.url, role, **env)
        started.append(process)
        return process

    try:
        callee = start("callee")
        callee_id = callee.expect(r"^guest (guest-\w+)$").group(1)
        caller = start("caller", CALL_TARGET=callee_id)
        caller_id = caller.expect(r"^guest (guest-\w+)$").group(1)
        caller.expect(rf"^watching {callee_id}: \W*online\W*$")
        caller.expect(rf"^ringing {callee_id} on 1 socket\(s\)$")
        callee.expect(rf"^invite from {caller_id}: video$")
        caller.expect(rf"^call accepted by {callee_id}$")

        callee.kill()  # the callee's process dies: its connection drops with no goodbye
        caller.expect(rf"^{callee_id} dropped: reconnecting \(disconnect\)$", timeout=20)

        decliner = start("callee", CALL_ANSWER="decline")
        decliner_id = decliner.expect(r"^guest (guest-\w+)$").group(1)
        second = start("caller", CALL_TARGET=decliner_id)
        second.expect(rf"^call declined by {decliner_id}$")

        absent = start("caller", CALL_TARGET="guest-0000000000000000")
        absent.expect(r"^cannot call guest-0000000000000000: not_online$")

        for process in (caller, decliner, second, absent):
            process.signal(signal.SIGTERM)
            assert process.wait() == 0
        assert not [line for p in started if p is not absent
                    for line in p.text() if line.startswith("error")]
    finally:
        for process in started:
            process.kill()
