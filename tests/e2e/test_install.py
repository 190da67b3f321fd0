"""`pip install . && presence-server` in a fresh virtual environment."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import urllib.request

import pytest

from tests.support.server import REPO, free_port, wait_for

NETWORK_TROUBLE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
    r"resolution|Network is unreachable|ProxyError|ConnectTimeout|Read timed out")


def page(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except OSError:
        return None


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_pip_install_then_presence_server_serves_the_status_page(tmp_path):
    # A copy of the sources, so that building leaves nothing (build/, *.egg-info) in the repo.
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "venv", ".tox", "node_modules", "__pycache__", "*.db", "*.db-*",
        "*.egg-info", "build", "dist", ".pytest_cache", ".ruff_cache", "results"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", str(source)],
                         capture_output=True, text=True, timeout=540)
    if pip.returncode != 0 and NETWORK_TROUBLE.search(pip.stdout + pip.stderr):
        pytest.skip(f"pip could not reach a package index:\n{pip.stderr[-2000:]}")
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]

    executable = venv / "bin" / "presence-server"
    assert executable.exists(), "pip installed no presence-server command"
    run_dir = tmp_path / "run"  # not the repo: the installed defaults must be enough
    run_dir.mkdir()
    port = free_port()
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([str(executable), "--port", str(port)], cwd=run_dir,
                              stdout=log, stderr=subprocess.STDOUT,
                              env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin"})
    try:
        def answered():
            if server.poll() is not None:
                raise AssertionError(f"presence-server exited with {server.returncode}:\n"
                                     f"{(tmp_path / 'server.log').read_text()}")
            return page(f"http://127.0.0.1:{port}/")

        status, content_type, body = wait_for(answered, 30, 0.2, "presence-server to answer /")
        assert status == 200 and content_type.startswith("text/html")
        assert b"<html" in body.lower()
        server.send_signal(signal.SIGTERM)
        assert server.wait(15) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(5)
        log.close()
    assert (run_dir / "presence.db").exists()  # the default store, relative to the directory
