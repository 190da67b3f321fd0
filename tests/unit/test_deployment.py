"""The deployment files agree with each other: Procfile, Dockerfile, requirements.txt, setup.py.

(Docker itself is not needed: the image's commands are checked against the repo's files; the
Procfile line itself runs from a plain install in tests/e2e/test_install.py.)
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def procfile_web_line() -> str:
    lines = [line for line in (ROOT / "Procfile").read_text().splitlines()
             if line.startswith("web:")]
    assert len(lines) == 1
    return lines[0].split(":", 1)[1].strip()


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_requirements_txt_installs_the_package_not_editable():
    # Heroku's Python buildpack runs `pip install -r requirements.txt` in the app's directory.
    lines = [line.split("#", 1)[0].strip()
             for line in (ROOT / "requirements.txt").read_text().splitlines()]
    assert [line for line in lines if line] == ["."]


def test_python_version_is_3_11():
    assert (ROOT / ".python-version").read_text().strip() == "3.11"


def test_the_gunicorn_gevent_worker_gets_packaging():
    setup = (ROOT / "setup.py").read_text()
    assert re.search(r'"gunicorn\[gevent\]', setup)


def test_the_dockerfile_runs_the_procfile_command_as_a_non_root_user():
    instructions = dockerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    cmd = json.loads(dict(instructions)["CMD"])
    assert cmd[:2] == ["/bin/sh", "-c"]
    assert cmd[2] == f"exec {procfile_web_line()}"
    assert "0.0.0.0:$PORT" in cmd[2]
    user = dict(instructions)["USER"]
    assert user not in ("root", "0")
    assert keywords.index("USER") < keywords.index("CMD")
    assert "EXPOSE" in keywords and "HEALTHCHECK" in keywords
    assert "/health" in dict(instructions)["HEALTHCHECK"]


def test_the_dockerfile_installs_the_package_not_editable_from_files_that_exist():
    instructions = dockerfile_instructions()
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "pip install /tmp/src" in runs and "-e" not in shlex.split(runs)
    copied = [rest.split()[0] for keyword, rest in instructions if keyword == "COPY"]
    assert copied == ["."]
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    # what setup.py reads while building must reach the image
    for needed in ("setup.py", "pyproject.toml", "README.md", "config.yaml", "presence_server",
                   "presence_client", "actors", "store", "web"):
        assert (ROOT / needed).exists() and needed not in ignored, needed
