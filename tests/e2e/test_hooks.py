"""/api/stats reports each third-party hook (web/hooks.py): all active on a real server."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(60)

HOOK_NAMES = {"writer", "pings", "ping_timeout", "frames", "replies", "rooms"}


@pytest.mark.parametrize("procfile", [False, True], ids=["presence-server", "procfile"])
def test_every_hook_is_active_with_the_versions_it_met(make_server, connect, unique, procfile):
    server = make_server(procfile=procfile)
    name = unique("hooked")
    client = connect(server.url, "websocket", auth={"clientName": name})
    assert client.heartbeat(name)["status"] == "ok"  # through ReplyServer, writer and frames

    stats = server.get("/api/stats")
    hooks = stats["hooks"]
    assert set(hooks) == HOOK_NAMES
    for hook, body in hooks.items():
        assert body["status"] == "active", (hook, body)
        assert body["versions"] and all(body["versions"].values()), (hook, body)
        assert body["tested"], (hook, body)
    assert stats["websocket_accelerated"] == {"unmask": True, "utf8": True}
    assert "hook (" not in server.log_text()  # no guard warning
