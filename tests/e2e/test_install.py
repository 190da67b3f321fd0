"""A plain (non-editable) `pip install .` in a fresh virtual environment, run as users run it.

One install per module, into a venv outside the repo; then the README's `presence-server` and the
Procfile's exact `web:` line (what Heroku runs), each from a directory outside the repo.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.server import REPO, free_port, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

NETWORK_TROUBLE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
    r"resolution|Network is unreachable|ProxyError|ConnectTimeout|Read timed out")


def page(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except OSError:
        return None


def procfile_web_line() -> str:
    for line in (REPO / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("the Procfile has no web: line")


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv with the package installed from a copy of the sources (not editable)."""
    tmp = tmp_path_factory.mktemp("install")
    # A copy of the sources, so that building leaves nothing (build/, *.egg-info) in the repo.
    source = tmp / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "venv", ".tox", "node_modules", "__pycache__", "*.db", "*.db-*",
        "*.egg-info", "build", "dist", ".pytest_cache", ".ruff_cache", "results"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", str(source)],
                         capture_output=True, text=True, timeout=540)
    if pip.returncode != 0 and NETWORK_TROUBLE.search(pip.stdout + pip.stderr):
        pytest.skip(f"pip could not reach a package index:\n{pip.stderr[-2000:]}")
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    return venv


def serve(command: list[str], run_dir: Path, log_path: Path, env: dict[str, str]):
    log = open(log_path, "w")
    try:
        return subprocess.Popen(command, cwd=run_dir, stdout=log, stderr=subprocess.STDOUT,
                                env=env)
    finally:
        log.close()


def answered(server: subprocess.Popen, url: str, log_path: Path):
    if server.poll() is not None:
        raise AssertionError(f"the server exited with {server.returncode}:\n"
                             f"{log_path.read_text()}")
    return page(url)


def stop(server: subprocess.Popen, log_path: Path) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        code = server.wait(20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(5)
        raise AssertionError(f"no exit within 20 s of SIGTERM:\n{log_path.read_text()}") from None
    assert code == 0, log_path.read_text()


def test_pip_install_then_presence_server_serves_the_status_page(venv, tmp_path):
    executable = venv / "bin" / "presence-server"
    assert executable.exists(), "pip installed no presence-server command"
    run_dir = tmp_path / "run"  # not the repo: the installed defaults must be enough
    run_dir.mkdir()
    port = free_port()
    log_path = tmp_path / "server.log"
    server = serve([str(executable), "--port", str(port)], run_dir, log_path,
                   {"PATH": f"{venv / 'bin'}:/usr/bin:/bin"})
    try:
        status, content_type, body = wait_for(
            lambda: answered(server, f"http://127.0.0.1:{port}/", log_path), 30, 0.2,
            "presence-server to answer /")
        assert status == 200 and content_type.startswith("text/html")
        assert b"<html" in body.lower()
        stop(server, log_path)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(5)
    assert (run_dir / "presence.db").exists()  # the default store, relative to the directory


def test_the_procfile_web_line_runs_from_a_plain_install(venv, tmp_path):
    # Exactly what Heroku does: the web: line through a shell, $PORT set, the venv on PATH,
    # and nothing of the repo (or of the test environment, e.g. pytest's `packaging`) around.
    run_dir = tmp_path / "app"
    run_dir.mkdir()
    port = free_port()
    log_path = tmp_path / "procfile.log"
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "PORT": str(port), "HOME": str(tmp_path)}
    server = serve(["/bin/sh", "-c", f"exec {procfile_web_line()}"], run_dir, log_path, env)
    try:
        status, content_type, body = wait_for(
            lambda: answered(server, f"http://127.0.0.1:{port}/health", log_path), 60, 0.2,
            "the Procfile's gunicorn to answer /health")
        assert status == 200 and content_type.startswith("application/json")
        assert b'"status":"ok"' in body.replace(b" ", b"")
        stop(server, log_path)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(5)
    assert (run_dir / "presence.db").exists()
    assert "Traceback" not in log_path.read_text()

