"""The Redis store's scripts against a real redis-server, in process (no server process): what
a commit checks (op id, epoch, owner, version) and what it writes, all or nothing."""

from __future__ import annotations

import json

import pytest
from presence_server.store.records import STATUS_CHANGED, ClientRecord, Transition
from presence_server.store.redis import RedisStore, _Op

pytestmark = pytest.mark.timeout(60)


def record(name: str, status: str, version: int, node: str = "a") -> ClientRecord:
    return ClientRecord(name=name, status=status, reason="connected", since=1000.0 + version,
                        last_seen=None, last_contact=1000.0, ip=None, guest=False, node=node,
                        connections=1 if status == "online" else 0, version=version)


def change_op(store: RedisStore, rec: ClientRecord, op_id: str, take: bool = False) -> _Op:
    history = json.dumps({"status": rec.status, "previous": None, "reason": rec.reason,
                          "at": rec.since, "version": rec.version, "node": rec.node})
    return _Op(op_id, "change", rec, take=take, event=STATUS_CHANGED,
               payload=json.dumps({"name": rec.name, "status": rec.status}), history=history)


def run(store: RedisStore, op: _Op) -> str:
    return store._commit(keys=[store.prefix], args=store._args(op))[0].decode()


@pytest.fixture
def stores(redis_server):
    opened = []

    def open_store(node: str) -> RedisStore:
        store = RedisStore(redis_server.url, node=node, backlog=100, node_timeout=15)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store._closed = True
        store._close()


def test_a_retried_commit_is_applied_once(stores, redis_server):
    store = stores("a")
    op = change_op(store, record("alice", "online", 1), "op-1")
    assert run(store, op) == "ok"
    assert run(store, op) == "dup"  # the same op again (say, retried after a timeout)
    client = redis_server.client()
    assert client.xlen("{presence}:feed") == 1
    assert client.llen("{presence}:history:alice") == 1
    assert client.hget("{presence}:counts", "online") == b"1"


def test_a_commit_checks_version_owner_and_epoch(stores, redis_server):
    a, b = stores("a"), stores("b")
    assert run(a, change_op(a, record("bob", "online", 1), "1")) == "ok"
    # B writes without claiming: A owns the record
    assert run(b, change_op(b, record("bob", "reconnecting", 2, node="b"), "2")) == "deposed"
    # A writes a version that does not follow the stored one
    assert run(a, change_op(a, record("bob", "offline", 5), "3")) == "stale"
    # B claims it (a new actor there): A is told in its inbox
    assert run(b, change_op(b, record("bob", "reconnecting", 2, node="b"), "4",
                            take=True)) == "ok"
    inbox = [json.loads(m) for m in redis_server.client().lrange("{presence}:inbox:a", 0, -1)]
    assert inbox == [{"k": "hello", "node": "b"},  # B registered after A
                     {"k": "deposed", "name": "bob", "by": "b"}]
    assert run(a, change_op(a, record("bob", "offline", 3), "5")) == "deposed"
    # A's previous incarnation is fenced once A registers again
    old_epoch = a.epoch
    a._register()
    assert a.epoch != old_epoch
    a.epoch = old_epoch
    assert run(a, change_op(a, record("carol", "online", 1), "6")) == "fenced"
    assert redis_server.client().hget("{presence}:client:carol", "status") is None


def test_the_queue_waits_for_redis_and_commits_in_order(stores, redis_server):
    store = stores("a")
    for version, status in enumerate(("online", "reconnecting", "online"), start=1):
        rec = record("dave", status, version)
        store.commit_change(rec, Transition("dave", status, None, "x", rec.since, version, "a"),
                            STATUS_CHANGED, {"name": "dave", "status": status})
    assert store.flush()
    entries = redis_server.client().xrange("{presence}:feed")
    assert [fields[b"s"] for _, fields in entries] == [b"online", b"reconnecting", b"online"]
    assert [entry_id for entry_id, _ in entries] == [b"0-1", b"0-2", b"0-3"]
