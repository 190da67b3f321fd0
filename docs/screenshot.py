"""Make docs/status-page.png: the live status page with a few real clients, its timeline open.

`python docs/screenshot.py` from a checkout with the test extra and Debian's `chromium`: starts
a real server (tests/support/server.py), connects real clients (some stay, one flaps, one
leaves, a guest), opens `/` in headless Chromium and screenshots it after the sparkline has a
few samples (about 40 s).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser.conftest import CHROMIUM_ARGS, chromium_path  # noqa: E402
from tests.support.clients import RecordingClient  # noqa: E402
from tests.support.server import ServerProcess, wait_for  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        server = ServerProcess(Path(directory), {
            "monitoring": {"heartbeat_interval": "60s", "reconnection_grace_period": "20s"},
        }).start()
        clients = []
        try:
            def join(name: str) -> RecordingClient:
                client = RecordingClient(server.url, auth={"clientName": name}).connect()
                client.heartbeat(name)
                clients.append(client)
                return client

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium_path(),
                                                     args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 760})
                page.goto(server.url + "/")
                page.wait_for_function("() => document.getElementById('live').textContent"
                                       " === 'live'")
                for name in ("alice", "bob", "carol", "dave", "erin", "frank"):
                    join(name)
                guest = RecordingClient(server.url, auth={"guest": True, "name": "Visitor"})
                clients.append(guest.connect())
                page.wait_for_timeout(11_000)
                for _ in range(2):  # mallory flaps twice
                    join("mallory").drop()
                    page.wait_for_timeout(1_500)
                join("mallory")
                join("trent").drop()  # trent leaves: reconnecting, offline after 20 s
                join("peggy").drop()
                page.wait_for_timeout(11_000)
                clients[1].drop()  # bob drops
                page.wait_for_timeout(15_000)
                wait_for(lambda: server.client("trent")["status"] == "offline", 30)
                page.locator("#rows tr", has_text="mallory").click()
                page.wait_for_selector("#timeline-list li")
                page.wait_for_timeout(800)
                page.screenshot(path=str(ROOT / "docs" / "status-page.png"))
                browser.close()
        finally:
            for client in clients:
                client.close()
            server.stop()


if __name__ == "__main__":
    main()
