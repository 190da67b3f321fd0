"""The built wheel: what a `pip install .` puts on a user's sys.path.

Installed top-level packages named `web`, `store`, `actors` or `bench` shadowed users' own
packages (`ImportError: cannot import name 'frames' from 'web'`). The repo keeps those folders;
the wheel ships them inside `presence_server`, and the benchmark harness not at all.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.support.server import REPO

IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "venv", "node_modules", "__pycache__", "*.db", "*.db-*", "*.egg-info",
    "build", "dist", ".pytest_cache", ".ruff_cache", "results")


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> list[str]:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(REPO, source, ignore=IGNORED)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w",
         str(work / "dist"), str(source)],
        capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = (work / "dist").glob("presence_server-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


@pytest.mark.slow
def test_the_wheel_installs_two_top_level_packages_and_no_bench(wheel_names):
    top_level = {name.split("/")[0] for name in wheel_names if not name.split("/")[0].endswith(
        (".dist-info", ".data"))}
    assert top_level == {"presence_server", "presence_client"}, top_level
    assert not any(name.startswith("bench/") or "/bench/" in name for name in wheel_names)


@pytest.mark.slow
def test_the_wheel_carries_the_inner_packages_templates_and_defaults(wheel_names):
    for module in ("presence_server/actors/state.py", "presence_server/store/sqlite.py",
                   "presence_server/web/sockets.py", "presence_server/web/templates/status.html",
                   "presence_server/defaults.yaml"):
        assert module in wheel_names, module
