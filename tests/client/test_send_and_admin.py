"""The SDK's targeted delivery (``PresenceClient.send`` / ``on``), ``watch(names=)`` and
``presence_client.Admin`` against the real server process; ``Admin.changes()`` resuming after
its stream is cut by a TCP proxy in between."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime, timedelta

import pytest

import presence_client._admin as admin_module
from presence_client import Admin, AdminError, NotOnlineError, SendError

from .helpers import Recorder, free_port, wait_until

TOKEN = "admin-token-for-sdk-tests"
CONFIG = {"security": {"admin_token": TOKEN},
          "monitoring": {"reconnection_grace_period": "30s"}}


@pytest.fixture
def server(make_server):
    return make_server(CONFIG)


def online(client, timeout: float = 10.0):
    client.start()
    assert client.wait_online(timeout)
    return client


# --- PresenceClient.send / on ------------------------------------------------------------------

def test_send_reaches_on_handlers_of_every_socket_and_errors_raise(server, make_client):
    caller = online(make_client(server.url, "sdk-caller"))
    tabs = [online(make_client(server.url, "sdk-callee")) for _ in range(2)]
    got = [Recorder(), Recorder()]
    for tab, recorder in zip(tabs, got, strict=True):
        tab.on("call_invite", recorder)
    wait_until(lambda: (r := server.client("sdk-callee")) and r["connections"] == 2, 10,
               what="both tabs registered")

    assert caller.send("sdk-callee", "call_invite", {"kind": "video"}) == 2
    for recorder in got:
        message = recorder.wait_for(lambda items: items and items[0])
        assert message["from"] == "sdk-caller" and message["data"] == {"kind": "video"}
        assert message["sentAt"].endswith("Z")

    with pytest.raises(NotOnlineError) as absent:
        caller.send("sdk-nobody", "call_invite")
    assert absent.value.code == "not_online" and absent.value.status is None
    with pytest.raises(SendError) as reserved:
        caller.send("sdk-callee", "client_status_changed", {})
    assert reserved.value.code == "reserved_event"
    assert not isinstance(reserved.value, NotOnlineError)


def test_watch_names_hands_over_only_those_clients(server, make_client):
    watcher = online(make_client(server.url, "sdk-watcher"))
    seen = Recorder()
    snapshot = watcher.watch(seen, names=["sdk-watched"])
    assert snapshot["clients"] == []
    other = online(make_client(server.url, "sdk-other"))
    watched = online(make_client(server.url, "sdk-watched"))
    seen.wait_for(lambda items: any(e["status"] == "online" for e in items))
    other.close()
    watched.close()
    seen.wait_for(lambda items: any(e["status"] == "reconnecting" for e in items))
    assert {event["name"] for event in seen.items} == {"sdk-watched"}


# --- Admin -------------------------------------------------------------------------------------

def test_admin_reads_sends_kicks_and_cleans_up(server, make_client, monkeypatch):
    admin = Admin(server.url, TOKEN)
    bob = online(make_client(server.url, "adm-bob"))
    notes = Recorder()
    bob.on("notice", notes)
    guest = online(make_client(server.url, "Visitor", guest=True))
    names = [f"adm-{index}" for index in range(3)]
    for name in names:
        online(make_client(server.url, name))

    assert admin.health()["status"] == "ok"
    assert admin.status_of("adm-bob")["status"] == "online"
    assert admin.status_of("adm-nobody") is None
    monkeypatch.setattr(admin_module, "PAGE", 2)  # every page is followed
    listed = [record["name"] for record in admin.clients(status="online", guest=False)]
    assert listed == sorted(["adm-bob", *names])
    assert [r["name"] for r in admin.clients(guest=True)] == [guest.guest_id]
    assert [r["name"] for r in admin.clients(q="adm-1")] == ["adm-1"]
    stats = admin.stats()
    assert stats["online"] == 5 and stats["guests"] == 1

    assert admin.send("adm-bob", "notice", {"text": "hello"}) == 1
    note = notes.wait_for(lambda items: items and items[0])
    assert note["from"] == "server" and note["data"] == {"text": "hello"}
    with pytest.raises(NotOnlineError) as absent:
        admin.send("adm-nobody", "notice")
    assert absent.value.status == 409
    with pytest.raises(SendError) as bad:
        admin.send("adm-bob", "heartbeat")
    assert (bad.value.status, bad.value.code) == (400, "reserved_event")

    kicked = admin.kick("adm-0")
    assert (kicked["status"], kicked["reason"]) == ("offline", "kicked")
    assert admin.kick("adm-nobody") is None

    guest.close()
    wait_until(lambda: admin.status_of(guest.guest_id)["status"] == "reconnecting", 10,
               what="the guest's socket closed")
    past = datetime.now(UTC) - timedelta(hours=1)
    assert admin.cleanup_guests(before=past) == 0  # seen since: kept
    assert admin.delete_guest(guest.guest_id) is True
    assert admin.delete_guest(guest.guest_id) is False
    assert admin.cleanup_guests() == 0
    assert admin.delete_client("adm-2") is True and admin.status_of("adm-2") is None

    with pytest.raises(AdminError) as refused:
        Admin(server.url, "wrong").kick("adm-bob")
    assert refused.value.status == 401 and refused.value.code == "unauthorized"
    with pytest.raises(AdminError) as no_token:
        Admin(server.url).send("adm-bob", "notice")
    assert no_token.value.status == 401


def test_admin_routes_are_forbidden_while_no_admin_token_is_set(make_server):
    server = make_server()
    with pytest.raises(AdminError) as refused:
        Admin(server.url, "anything").cleanup_guests()
    assert (refused.value.status, refused.value.code) == (403, "admin_disabled")


class CuttableProxy:
    """A TCP proxy to the server that can cut every connection and refuse new ones."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.blocked = False
        self.accepted = 0
        self.refused = 0
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if self.blocked:
                    self.refused += 1
                    client.close()
                    continue
                self.accepted += 1
                upstream = socket.create_connection(self.target)
                self.open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self, block: bool) -> None:
        with self.lock:
            self.blocked = block
            for end in self.open:
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()
            self.open = []

    def unblock(self) -> None:
        with self.lock:
            self.blocked = False

    def close(self) -> None:
        self.cut(block=True)
        self.listener.close()


def test_admin_changes_resume_after_a_dropped_stream(server, make_client):
    proxy = CuttableProxy(server.port)
    admin = Admin(proxy.url, TOKEN)
    first = online(make_client(server.url, "feed-a"))
    since = Admin(server.url).status_of("feed-a")["transitions"][-1]["eventId"]
    stream = admin.changes(since=since, names=["feed-a", "feed-b"], retry=0.05)
    try:
        second = online(make_client(server.url, "feed-b"))
        got = [next(stream)]
        assert (got[0].data["name"], got[0].data["status"]) == ("feed-b", "online")

        proxy.cut(block=True)  # the stream drops; reconnects are refused for now
        first.close()  # changes made while the stream is down
        wait_until(lambda: Admin(server.url).status_of("feed-a")["status"] == "reconnecting",
                   10, what="feed-a reconnecting")
        second.close()
        wait_until(lambda: Admin(server.url).status_of("feed-b")["status"] == "reconnecting",
                   10, what="both changes made")

        rest: list = []
        reader = threading.Thread(target=lambda: rest.extend([next(stream), next(stream)]),
                                  daemon=True)
        reader.start()
        wait_until(lambda: proxy.refused >= 2, 10, what="the stream to retry while refused")
        proxy.unblock()
        reader.join(15)
        assert not reader.is_alive(), "the stream did not resume"
        got += rest
        assert [(e.data["name"], e.data["status"]) for e in got] == [
            ("feed-b", "online"), ("feed-a", "reconnecting"), ("feed-b", "reconnecting")]
        ids = [event.id for event in got]
        assert ids == sorted(set(ids)) and ids[0] > since
        assert all(event.event == "client_status_changed" for event in got)
        assert proxy.accepted >= 2
    finally:
        stream.close()
        proxy.close()


def test_admin_changes_from_a_position_older_than_the_backlog_starts_with_resync(make_server,
                                                                                 make_client):
    server = make_server({"events": {"backlog": 2}})
    for index in range(3):
        online(make_client(server.url, f"old-{index}"))
    admin = Admin(server.url)
    wait_until(lambda: admin.stats()["online"] == 3, 10, what="three clients online")
    stream = admin.changes(since=0, statuses=["online"])
    try:
        first = next(stream)
        assert first.event == "resync"
        assert sorted(c["name"] for c in first.data["clients"]) == ["old-0", "old-1", "old-2"]
        assert first.id == first.data["eventId"]
        online(make_client(server.url, "new-one"))
        after = next(stream)
        assert (after.event, after.data["name"]) == ("client_status_changed", "new-one")
        assert after.id > first.id
    finally:
        stream.close()
