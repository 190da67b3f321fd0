"""The Redis store: one presence shared by several nodes (CONTRACT §8).

Writes: every status change is one atomic, fenced, versioned commit (store/redis_scripts.py
COMMIT) that writes the record, the status sets and counters, the bounded history and appends
the change to one stream, `{presence}:feed`, whose entry id `0-<n>` gives the `eventId` n. The
actors never wait for Redis: `commit_change`/`save`/`commit_removal` queue an operation, one
committer greenlet sends what is queued as one pipeline; contact times (the heartbeat path) are
batched about once a second and never go through the feed. A commit carries an op id, so one
retried after a timeout is not applied twice. A commit refused (another node owns the record, it
moved past the version the actor knew, the node was fenced) is reported to the presence layer
(`StoreEvents`), which stands the actor down.

Reads: every node keeps a mirror of all records (`RecordIndex`) and the last `backlog` changes,
both loaded at open and then applied from the stream by one reader greenlet, in feed order,
which then tells the node's listeners (the local watchers, `/events`): records and feed position
read together are consistent, as on SQLite (web/watch.py relies on it). Counts come from the
mirror (O(1), cluster-wide); `{presence}:counts` holds the same counters kept by the scripts,
for `redis-cli` and for checks.

Nodes: each node registers with a new epoch (its previous incarnation is fenced at once) and
renews a lease every `node_timeout / 3` (Redis `TIME` is the clock); a survivor that finds a
lapsed lease claims that node atomically (`REAP`) and is told its clients (`owned:<node>`).

Outages: queued operations stay queued (bounded; contact times are dropped first) and are sent
when Redis is back; `health()` says what is wrong meanwhile. A Redis that comes back empty (the
data set id is gone) is re-registered, with the feed counter kept above every id already given,
and the presence layer re-announces its live clients and tells watchers to resync.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import redis

from . import redis_scripts as scripts
from .base import Store, StoreError
from .feed import ChangeLog
from .index import RecordIndex
from .records import REMOVED, STATUSES, Change, ClientRecord, FeedPage, Transition

log = logging.getLogger("presence.store")

PREFIX = "{presence}:"
HISTORY_PER_CLIENT = 200
PIPELINE = 500  # operations sent in one round trip
BLOCK_MS = 1000  # how long the feed reader blocks in XREAD
RETRY_MAX = 2.0  # seconds between two attempts while Redis is unreachable, at most
BUFFER_LIMIT = 200_000  # queued operations kept while Redis is unreachable
CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


class StoreEvents(Protocol):
    """What the Redis store tells the presence layer (from its own greenlets)."""

    def rejected(self, name: str, outcome: str, owner: str | None) -> None:
        """A commit for `name` was refused (`deposed`, `stale`, `moved`; `owner`: the record's
        owner then): stand its actor down."""

    def inbox(self, payload: dict[str, Any]) -> None:
        """Another node sent this node `payload` (`store.send`)."""

    def nodes_gone(self, nodes: frozenset[str]) -> None:
        """These nodes are no longer registered (reaped, or gone)."""

    def fenced(self) -> None:
        """This node lost its lease (it re-registered under a new epoch): re-announce."""

    def nodes_lost(self, lost: list[tuple[str, float, list[str]]]) -> None:
        """This node claimed lapsed nodes: (node, lapsed at, the names it owned)."""

    def reset(self, reannounce: bool) -> None:
        """The feed had a gap (the reader fell behind the backlog, or Redis lost its data):
        the mirror was reloaded and watchers must resync; with `reannounce` (Redis came back
        empty) the live clients must be written again."""


@dataclass
class _Op:
    """One queued write of one client."""

    op_id: str
    mode: str  # "change" | "touch" | "delete"
    record: ClientRecord
    take: bool = False
    if_owner: str | None = None
    event: str = ""
    payload: str = ""
    history: str = ""


def connect(url: str, **options: Any) -> redis.Redis:
    """A client for `redis://`, `rediss://`, `unix://` or `redis+sentinel://[:pw@]host:port[,
    host:port…]/service[/db]` (the master of `service`, found through the sentinels)."""
    if url.startswith("redis+sentinel://"):
        from redis.sentinel import Sentinel

        parts = urlsplit("redis://" + url[len("redis+sentinel://"):])
        hosts = []
        for host in parts.netloc.rsplit("@", 1)[-1].split(","):
            address, _, port = host.rpartition(":")
            hosts.append((address or host, int(port or 26379)))
        path = [part for part in parts.path.split("/") if part]
        if not path:
            raise StoreError("store.url: redis+sentinel:// needs a service name: "
                             "redis+sentinel://host:26379/mymaster")
        password = unquote(parts.password) if parts.password else None
        sentinel = Sentinel(hosts, socket_timeout=options.get("socket_timeout"),
                            sentinel_kwargs={"password": password} if password else None)
        return sentinel.master_for(path[0], password=password,
                                   db=int(path[1]) if len(path) > 1 else 0, **options)
    return redis.Redis.from_url(url, **options)


def masked(url: str) -> str:
    """The URL with its password hidden, for logs."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(":" + parts.password + "@", ":***@", 1)
    return url


class RedisStore(Store):
    kind = "redis"
    shared = True
    contact_flush_interval = 1.0

    def __init__(self, url: str, node: str, backlog: int = 10000, node_timeout: float = 15.0,
                 prefix: str = PREFIX, buffer_limit: int = BUFFER_LIMIT) -> None:
        super().__init__(backlog)
        self.url = url
        self.node = node
        self.node_timeout = node_timeout
        self.prefix = prefix
        self.backlog = backlog
        self.buffer_limit = buffer_limit
        self.events: StoreEvents | None = None
        self.node_info: Any = dict  # () -> the JSON-able info this node renews with its lease
        self._client = connect(url, socket_timeout=5, socket_connect_timeout=3,
                               health_check_interval=10)
        self._reader = connect(url, socket_timeout=BLOCK_MS / 1000 + 5,
                               socket_connect_timeout=3, health_check_interval=10)
        self._inbox_reader = connect(url, socket_timeout=BLOCK_MS / 1000 + 5,
                                     socket_connect_timeout=3, health_check_interval=10)
        # /health asks this one: a hung Redis answers "degraded" in half a second, not five
        self._probe = connect(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._commit = self._client.register_script(scripts.COMMIT)
        self._contacts_script = self._client.register_script(scripts.CONTACTS)
        self._register_script = self._client.register_script(scripts.REGISTER)
        self._renew_script = self._client.register_script(scripts.RENEW)
        self._reap_script = self._client.register_script(scripts.REAP)
        self._queue: deque[_Op] = deque()
        self._latest: dict[str, ClientRecord] = {}  # the newest queued record of each name
        self._claims: dict[str, str | None] = {}  # name -> owner to claim from (None: anyone)
        self._contact_batch: dict[str, ClientRecord] = {}
        self._outbox: deque[tuple[str, str]] = deque()  # (node, JSON) for other nodes' inboxes
        self.alive: frozenset[str] = frozenset()  # registered nodes, as of the last renewal
        self._node_infos: dict[str, dict[str, Any]] = {}  # what each renews its lease with
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._fence_lock = threading.Lock()
        self._index = RecordIndex()
        self.epoch = ""
        self.dataset = ""
        self.redis_ok = True
        self.dropped = 0  # operations dropped because the buffer was full
        self.feed_lag = 0.0  # seconds from the last applied change's status change to then
        self.fenced_count = 0
        try:
            self._client.ping()
            self._register()
            self._load()
        except CONNECTION_ERRORS as error:
            raise StoreError(f"store: cannot reach Redis at {masked(url)} ({error})") from error

    # --- keys -----------------------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # --- node registration and the mirror ---------------------------------------------------------
    def _load_scripts(self) -> None:
        for script in (self._commit, self._contacts_script):
            self._client.script_load(script.script)

    def _register(self) -> None:
        self._load_scripts()
        floor = self.feed.position if self.feed is not None else 0
        epoch, dataset, _now = self._register_script(
            keys=[self.prefix], args=[self.node, int(self.node_timeout * 1000),
                                      json.dumps(self._info()), uuid.uuid4().hex, floor])
        self.epoch = _text(epoch)
        self.dataset = _text(dataset)
        log.info("redis store: node %s registered with epoch %s at %s", self.node, self.epoch,
                 masked(self.url))

    def _info(self) -> dict[str, Any]:
        try:
            info = dict(self.node_info())
        except Exception:
            log.exception("node info failed")
            info = {}
        info.setdefault("started", time.time())
        info["epoch"] = self.epoch
        return info

    def _load(self) -> None:
        """Read every record and the last `backlog` changes: the mirror starts at the feed
        position read first (changes after it are applied by the reader, idempotently)."""
        client = self._client
        position = int(client.get(self.key("feed", "seq")) or 0)
        names: set[str] = set()
        for status in STATUSES:
            names |= {_text(name) for name in client.smembers(self.key("status", status))}
        index = RecordIndex()
        ordered = sorted(names)
        for start in range(0, len(ordered), PIPELINE):
            pipe = client.pipeline(transaction=False)
            for name in ordered[start:start + PIPELINE]:
                pipe.hgetall(self.key("client", name))
            for fields in pipe.execute():
                record = _record(fields)
                if record is not None:
                    index.put(record)
        last_touch = client.xrevrange(self.key("touches"), count=1)
        self._touches_at = _text(last_touch[0][0]) if last_touch else "0-0"
        entries = client.xrevrange(self.key("feed"), count=self.backlog)
        changes = [_change(entry_id, fields) for entry_id, fields in reversed(entries)]
        changes = [change for change in changes if change.event_id <= position]
        self._index = index
        self.feed = ChangeLog(self.backlog, position=position, loaded=changes)

    # --- writes (queued) ------------------------------------------------------------------------
    def claim(self, name: str, from_owner: str | None = None) -> None:
        """The next write of `name` takes ownership of its record (a new actor on this node),
        from `from_owner` only when given (a reaped node's client)."""
        self._claims[name] = from_owner

    def _enqueue(self, op: _Op) -> None:
        if op.mode != "delete":
            if op.record.name in self._claims:
                op.take = True
                op.if_owner = self._claims.pop(op.record.name)
            self._latest[op.record.name] = op.record
        if len(self._queue) >= self.buffer_limit:
            self.dropped += 1
            dropped = self._queue.popleft()
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("redis store: the write buffer is full (%d operations; Redis "
                          "unreachable?): dropped the oldest (%s of %s), %d dropped so far",
                          self.buffer_limit, dropped.mode, dropped.record.name, self.dropped)
        self._queue.append(op)
        self._wake.set()

    def commit_change(self, record: ClientRecord, transition: Transition, event: str,
                      payload: dict[str, Any]) -> None:
        """Queue a status change: record, history entry and feed entry in one commit."""
        history = json.dumps({"status": transition.status, "previous": transition.previous,
                              "reason": transition.reason, "at": transition.at,
                              "version": transition.version, "node": transition.node},
                             separators=(",", ":"))
        self._contact_batch.pop(record.name, None)
        self._enqueue(_Op(uuid.uuid4().hex, "change", record, event=event,
                          payload=json.dumps(payload, separators=(",", ":")), history=history))

    def commit_removal(self, record: ClientRecord, payload: dict[str, Any]) -> None:
        """Queue the deletion of a record (and its history) with its `client_removed` entry."""
        self._contact_batch.pop(record.name, None)
        self._latest.pop(record.name, None)
        self._claims.pop(record.name, None)
        self._enqueue(_Op(uuid.uuid4().hex, "delete", record, event=REMOVED,
                          payload=json.dumps(payload, separators=(",", ":"))))

    def save(self, record: ClientRecord, transition: Transition | None = None) -> None:
        """A change with no status change (connections, ip): written, not in the feed."""
        self._contact_batch.pop(record.name, None)
        self._enqueue(_Op(uuid.uuid4().hex, "touch", record))

    def save_contact(self, record: ClientRecord) -> None:
        """Contact times only: batched, written about once a second."""
        self._contact_batch[record.name] = record
        if record.name in self._latest:
            self._latest[record.name] = record
        mirrored = self._index.get(record.name)
        if mirrored is not None and mirrored.version == record.version:
            self._index.put(record)  # fresher contact times, same status: still consistent

    def send(self, node: str, payload: dict[str, Any]) -> None:
        """Queue `payload` for `node`'s inbox (sent with the next commits; never waits)."""
        if len(self._outbox) >= self.buffer_limit:
            self._outbox.popleft()
            self.dropped += 1
        self._outbox.append((node, json.dumps(payload, separators=(",", ":"))))
        self._wake.set()

    def log_change(self, event: str, payload: dict[str, object]) -> Change:
        raise StoreError("the Redis store gives event ids at commit (commit_change)")

    def delete(self, names: Iterable[str]) -> int:
        raise StoreError("the Redis store deletes with commit_removal (one feed entry each)")

    # --- the committer --------------------------------------------------------------------------
    def _run_committer(self) -> None:
        delay = 0.05
        contacts_due = time.monotonic() + self.contact_flush_interval
        while not self._closed or self._queue:
            timeout = max(0.0, contacts_due - time.monotonic())
            if not self._queue and not self._outbox:
                self._wake.wait(timeout)
            self._wake.clear()
            try:
                self._send_outbox()
                self._send_queued()
                if time.monotonic() >= contacts_due or self._closed:
                    self._send_contacts()
                    contacts_due = time.monotonic() + self.contact_flush_interval
                self._recovered()
                delay = 0.05
            except CONNECTION_ERRORS as error:
                self._failed(error)
                if self._closed:
                    return
                time.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)
            except Exception:
                log.exception("redis store: the committer failed; retrying")
                time.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)

    def _send_outbox(self) -> None:
        while self._outbox:
            batch = [self._outbox[i] for i in range(min(PIPELINE, len(self._outbox)))]
            pipe = self._client.pipeline(transaction=False)
            for node, message in batch:
                pipe.rpush(self.key("inbox", node), message)
            pipe.execute()
            for item in batch:
                if self._outbox and self._outbox[0] is item:
                    self._outbox.popleft()

    def _send_queued(self) -> None:
        while self._queue:
            ops = [self._queue[i] for i in range(min(PIPELINE, len(self._queue)))]
            epoch = self.epoch
            pipe = self._client.pipeline(transaction=False)
            for op in ops:
                # EVALSHA, not redis-py's Script in a pipeline (which asks SCRIPT EXISTS first:
                # a second round trip per batch); scripts are loaded at every registration
                pipe.evalsha(self._commit.sha, 1, self.prefix, *self._args(op))
            results = pipe.execute(raise_on_error=False)
            if any(isinstance(result, redis.exceptions.NoScriptError) for result in results):
                self._load_scripts()  # Redis lost them (restarted): the batch again (op ids)
                continue
            for op in ops:  # (a fence may have emptied the queue meanwhile)
                if self._queue and self._queue[0] is op:
                    self._queue.popleft()
            refused: set[str] = set()  # one report per client and batch
            for op, result in zip(ops, results, strict=True):
                if op.record.name in refused:
                    continue
                if not self._settle(op, result, epoch):
                    refused.add(op.record.name)

    def _args(self, op: _Op) -> list[Any]:
        record = op.record
        expected = record.version - 1 if op.mode == "change" else record.version
        data = json.dumps(record.to_dict(), separators=(",", ":"))
        return [op.op_id, op.mode, self.node, self.epoch, "1" if op.take else "0",
                "" if op.mode == "delete" else expected, record.status,
                "1" if record.guest else "0", record.connections, record.version, data,
                _number(record.last_seen), _number(record.last_contact), op.event, op.payload,
                op.history, self.backlog, HISTORY_PER_CLIENT, op.if_owner or "", record.name]

    def _settle(self, op: _Op, result: Any, epoch: str) -> bool:
        """Answers False when the commit was refused for its client (reported once)."""
        name = op.record.name
        if self._latest.get(name) is op.record:
            del self._latest[name]
        if isinstance(result, CONNECTION_ERRORS):
            raise result
        if isinstance(result, Exception):
            log.error("redis store: the write of %r was refused by Redis (%s); dropped",
                      name, result)
            return True
        outcome = _text(result[0])
        if outcome in ("ok", "dup"):
            return True
        owner = _text(result[2]) if len(result) > 2 and result[2] else None
        if outcome == "fenced":
            self._fenced(epoch)
            return True
        log.warning("redis store: %s of %r refused (%s; owner %s): its actor stands down",
                    op.mode, name, outcome, owner)
        if self.events is not None:
            self.events.rejected(name, outcome, owner)
        return False

    def owns_or_claims(self, name: str) -> bool:
        """Whether this node holds `name` now (Redis names it, under our epoch) or has a claim
        of it waiting to be written: a refusal or `deposed` notice about an earlier actor
        must not stop the actor that claimed it since."""
        if name in self._claims or any(op.take and op.record.name == name
                                       for op in list(self._queue)):
            return True
        try:
            node, epoch = self._client.hmget(self.key("client", name), "node", "epoch")
        except CONNECTION_ERRORS:
            return False
        return node is not None and _text(node) == self.node and _text(epoch) == self.epoch

    def _send_contacts(self) -> None:
        batch, self._contact_batch = self._contact_batch, {}
        if not batch:
            return
        try:
            records = list(batch.values())
            epoch = self.epoch
            pipe = self._client.pipeline(transaction=False)
            for start in range(0, len(records), PIPELINE):
                args: list[Any] = [self.node, self.epoch]
                for record in records[start:start + PIPELINE]:
                    args += [record.name, _number(record.last_seen),
                             _number(record.last_contact)]
                pipe.evalsha(self._contacts_script.sha, 1, self.prefix, *args)
            results = pipe.execute(raise_on_error=False)
            if any(isinstance(result, redis.exceptions.NoScriptError) for result in results):
                self._load_scripts()  # Redis lost them (restarted): at the next flush
                for name, record in batch.items():
                    self._contact_batch.setdefault(name, record)
                return
            failed = next((r for r in results if isinstance(r, Exception)), None)
            if failed is not None:
                raise failed
        except CONNECTION_ERRORS:
            for name, record in batch.items():  # keep them, unless something newer came
                self._contact_batch.setdefault(name, record)
            raise
        if any(result == -1 for result in results):
            self._fenced(epoch)

    def _fenced(self, epoch: str | None = None) -> None:
        """Our epoch was taken (our lease lapsed and a survivor reaped us, or we restarted
        elsewhere under our id): drop what was queued under it, register anew, re-announce.
        `epoch`: the one that was refused (already replaced: nothing to do)."""
        with self._fence_lock:
            if epoch is not None and epoch != self.epoch:
                return
            self._fence()

    def _fence(self) -> None:
        self.fenced_count += 1
        dropped = len(self._queue)
        self._queue.clear()
        self._latest.clear()
        self._claims.clear()
        self._contact_batch.clear()
        log.error("redis store: node %s was fenced (its lease lapsed and another node took "
                  "its clients); %d queued writes dropped; registering anew and re-announcing "
                  "live sockets", self.node, dropped)
        self._register()
        if self.events is not None:
            self.events.fenced()

    def _failed(self, error: BaseException) -> None:
        message = f"{type(error).__name__}: {error}"
        if self.redis_ok:
            log.error("redis store: Redis unreachable (%s); %d writes queued, serving from "
                      "memory", message, len(self._queue))
        self.redis_ok = False
        self.last_error = message

    def _recovered(self) -> None:
        if not self.redis_ok:
            log.warning("redis store: Redis reachable again (after %s)", self.last_error)
        self.redis_ok = True
        self.last_error = None

    # --- the feed reader -------------------------------------------------------------------------
    def _run_reader(self) -> None:
        delay = 0.05
        stream, touches = self.key("feed"), self.key("touches")
        while not self._closed:
            try:
                answer = self._reader.xread({stream: f"0-{self.feed.position}",
                                             touches: self._touches_at},
                                            count=PIPELINE, block=BLOCK_MS)
                for name, entries in sorted(answer or (), key=lambda item: _text(item[0])
                                            != stream):  # the feed first, then touches
                    if _text(name) == stream:
                        for entry_id, fields in entries:
                            self._apply(_change(entry_id, fields), fields)
                    else:
                        for entry_id, fields in entries:
                            self._touched(fields)
                            self._touches_at = _text(entry_id)
                delay = 0.05
            except CONNECTION_ERRORS as error:
                if self._closed:
                    return
                self._failed(error)
                time.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)
            except Exception:
                log.exception("redis store: the feed reader failed; resuming")
                time.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)

    def _apply(self, change: Change, fields: dict[Any, Any]) -> None:
        """One feed entry: into the mirror and the change log, then to the listeners."""
        if change.event_id <= self.feed.position:
            return
        if change.event_id != self.feed.position + 1:  # ids are consecutive: changes are gone
            self._reset(f"the feed skipped from {self.feed.position} to {change.event_id}",
                        reannounce=False)
            return
        if change.event == REMOVED:
            self._index.remove(change.name)
        else:
            record = ClientRecord.from_dict(json.loads(_text(fields[b"r"])))
            mirrored = self._index.get(record.name)
            if mirrored is None or mirrored.version <= record.version:
                self._index.put(record)
            self.feed_lag = max(0.0, time.time() - record.since)
        self.feed.append(change)
        if self.listener is not None:
            self.listener(change)

    listener: Any = None  # (change) -> None: the presence feed's local fan-out

    def _touched(self, fields: dict[Any, Any]) -> None:
        """A write with no status change (sockets, owner, ip): this node's copy follows, when it
        holds that very version (a later change already applied, or not yet: it waits)."""
        record = ClientRecord.from_dict(json.loads(_text(fields[b"r"])))
        mirrored = self._index.get(record.name)
        if mirrored is not None and mirrored.version == record.version:
            self._index.put(record)

    def _reset(self, why: str, reannounce: bool) -> None:
        log.warning("redis store: %s: reloading every record; watchers resync", why)
        self._load()
        if self.events is not None:
            self.events.reset(reannounce)

    # --- the inbox (messages from other nodes) ----------------------------------------------------
    def _run_inbox(self) -> None:
        delay = 0.05
        inbox = self.key("inbox", self.node)
        while not self._closed:
            try:
                popped = self._inbox_reader.blpop([inbox], timeout=BLOCK_MS / 1000)
                if popped is None:
                    continue
                messages = [popped[1], *(self._inbox_reader.lpop(inbox, PIPELINE) or ())]
                for raw in messages:
                    try:
                        payload = json.loads(_text(raw))
                    except ValueError:
                        log.error("redis store: unreadable inbox message %r dropped", raw[:200])
                        continue
                    if self.events is not None:
                        self.events.inbox(payload)
                delay = 0.05
            except CONNECTION_ERRORS as error:
                if self._closed:
                    return
                self._failed(error)
                time.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)
            except Exception:
                log.exception("redis store: the inbox reader failed; resuming")
                time.sleep(delay)

    # --- leases -------------------------------------------------------------------------------
    def _run_leases(self) -> None:
        period = self.node_timeout / 3
        while not self._closed:
            started = time.monotonic()
            try:
                self.renew()
                self.reap()
                self._track_nodes()
            except CONNECTION_ERRORS as error:
                self._failed(error)
            except Exception:
                log.exception("redis store: lease renewal failed")
            remaining = period - (time.monotonic() - started)
            if remaining > 0 and self._sleep_unless_closed(remaining):
                return

    def _sleep_unless_closed(self, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while not self._closed and time.monotonic() < end:
            time.sleep(min(0.1, end - time.monotonic()))
        return self._closed

    def renew(self) -> None:
        epoch = self.epoch
        outcome, _now = self._renew_script(
            keys=[self.prefix], args=[self.node, epoch, int(self.node_timeout * 1000),
                                      json.dumps(self._info()), self.dataset])
        outcome = _text(outcome)
        if outcome == "empty":
            log.error("redis store: Redis lost its data (the data set id is gone): "
                      "registering anew, re-announcing live clients, watchers resync")
            self._queue.clear()  # versions restart from what the actors hold: re-announce
            self._latest.clear()
            self._register()
            self._reset("Redis came back empty", reannounce=True)
        elif outcome == "fenced":
            self._fenced(epoch)

    def reap(self) -> None:
        answer = self._reap_script(keys=[self.prefix], args=[self.node])
        lost = []
        for i in range(0, len(answer), 2):
            node, lapsed_ms = _text(answer[i]), float(answer[i + 1])
            names = sorted(_text(name) for name in
                           self._client.smembers(self.key("owned", node)))
            log.warning("node %s lost: its lease lapsed %.1fs ago; this node takes its %d "
                        "clients", node, time.time() - lapsed_ms / 1000, len(names))
            lost.append((node, lapsed_ms / 1000, names))
        if lost and self.events is not None:
            self.events.nodes_lost(lost)

    def note_alive(self, node: str) -> None:
        """`node` just proved alive (it wrote under its epoch): count it before the next look."""
        if node not in self.alive:
            self.alive = self.alive | {node}

    def _track_nodes(self) -> None:
        infos = {}
        for node, raw in self._client.hgetall(self.key("nodes")).items():
            try:
                infos[_text(node)] = json.loads(_text(raw))
            except ValueError:
                infos[_text(node)] = {}
        self._node_infos = infos
        alive = frozenset(infos)
        gone = self.alive - alive
        self.alive = alive
        if gone and self.events is not None:
            self.events.nodes_gone(gone)

    def nodes(self) -> list[dict[str, Any]]:
        """The registered nodes and the age of each lease (`GET /api/nodes`)."""
        client = self._client
        pipe = client.pipeline(transaction=False)
        pipe.time()
        pipe.hgetall(self.key("nodes"))
        pipe.zrange(self.key("node", "leases"), 0, -1, withscores=True)
        (seconds, micros), infos, leases = pipe.execute()
        now = seconds + micros / 1e6
        expiries = {_text(node): score / 1000 for node, score in leases}
        answer = []
        for node, raw in sorted((_text(k), v) for k, v in infos.items()):
            info = json.loads(_text(raw))
            expiry = expiries.get(node)
            renewed = expiry - self.node_timeout if expiry is not None else None
            answer.append({"node": node, "started": info.get("started"),
                           "lease_age": None if renewed is None else round(now - renewed, 3),
                           "connections": info.get("connections", 0),
                           "responsive": info.get("responsive", 0),
                           "alive": expiry is not None and expiry > now})
        return answer

    # --- reads ----------------------------------------------------------------------------------
    def get(self, name: str) -> ClientRecord | None:
        return self._index.get(name)

    def load(self, name: str, fresh: bool = True) -> ClientRecord | None:
        """The record for a new actor: as queued here when a write of it waits, else as Redis
        holds it now (`fresh`: one round trip) or as this node's copy has it (none)."""
        queued = self._latest.get(name)
        if queued is not None:
            return queued
        if not fresh:
            return self._index.get(name)
        try:
            return _record(self._client.hgetall(self.key("client", name)))
        except CONNECTION_ERRORS:
            return self._index.get(name)

    def all(self) -> list[ClientRecord]:
        return self._index.values()

    def by_status(self, status: str) -> list[ClientRecord]:
        return self._index.by_status(status)

    def guests(self) -> list[ClientRecord]:
        return self._index.guests()

    def of_node(self, node: str) -> list[ClientRecord]:
        return self._index.of_node(node)

    def counts(self) -> dict[str, int]:
        """Per status from the mirror (O(1)); `connections`: the sockets every node reported
        with its last lease renewal (a record's count moves without a feed entry)."""
        counts = self._index.counts()
        if self._node_infos:
            counts["connections"] = sum(int(info.get("connections", 0))
                                        for info in self._node_infos.values())
        return counts

    def responsive(self, now: float, window: float) -> int:
        """The responsive clients every node counted among its own at its last renewal
        (contact times never go through the feed, so only the owner knows them)."""
        if not self._node_infos:
            return self._index.responsive(now, window)
        return sum(int(info.get("responsive", 0)) for info in self._node_infos.values())

    def transitions(self, name: str, limit: int = 50) -> list[Transition]:
        try:
            entries = self._client.lrange(self.key("history", name), 0, limit - 1)
        except CONNECTION_ERRORS:
            return []
        history = []
        for entry in reversed(entries):
            event_id, _, data = _text(entry).partition(" ")
            item = json.loads(data)
            history.append(Transition(name=name, status=item["status"],
                                      previous=item["previous"], reason=item["reason"],
                                      at=item["at"], version=item["version"],
                                      node=item["node"], event_id=int(event_id)))
        return history

    def changes_since(self, event_id: int, limit: int) -> FeedPage:
        return self.feed.since(event_id, limit)

    def feed_position(self) -> int:
        return self.feed.position

    def recount(self) -> dict[str, int]:
        """The counters the scripts keep in `{presence}:counts` (for checks and operators)."""
        raw = self._client.hgetall(self.key("counts"))
        return {_text(key): int(value) for key, value in raw.items()}

    # --- settings -------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        value = self._client.hget(self.key("meta"), key)
        return None if value is None else _text(value)

    def set_meta(self, key: str, value: str) -> None:
        self._client.hset(self.key("meta"), key, value)

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self, scheduler: Any) -> None:
        self._track_nodes()
        for target, label in ((self._run_committer, "committer"), (self._run_reader, "reader"),
                              (self._run_leases, "leases"), (self._run_inbox, "inbox")):
            thread = threading.Thread(target=target, name=f"redis-{label}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def flush(self, contacts: bool = True) -> bool:
        """Send what is queued now (shutdown, tests); answers whether all of it was sent."""
        try:
            self._send_outbox()
            self._send_queued()
            if contacts:
                self._send_contacts()
            self._recovered()
            return True
        except CONNECTION_ERRORS as error:
            self._failed(error)
            return False

    def close(self) -> bool:
        self._closed = True
        self._wake.set()
        flushed = self.flush()
        if not flushed:
            log.error("store: the final flush failed (%s): %d writes are lost",
                      self.last_error, len(self._queue))
        for thread in self._threads:
            thread.join(timeout=BLOCK_MS / 1000 + 1)
        self._close()
        return flushed

    def health(self) -> dict[str, Any]:
        ok = self.healthy()
        return {"kind": self.kind, "ok": ok, "error": None if ok else self.last_error,
                "queued": len(self._queue), "dropped": self.dropped,
                "quarantined": len(self.quarantined)}

    def healthy(self) -> bool:
        try:
            self._probe.ping()
        except CONNECTION_ERRORS as error:
            self._failed(error)
            return False
        return self.redis_ok

    # --- what the base class asks of a backend (the buffer above replaces its own) ----------------
    def _write(self, records, transitions, deletes, contacts, changes=()) -> dict[str, str]:
        raise StoreError("the Redis store writes through its committer")

    def _read_one(self, name: str) -> ClientRecord | None:
        return self._index.get(name)

    def _read_all(self) -> list[ClientRecord]:
        return self._index.values()

    def _read_transitions(self, name: str, limit: int) -> list[Transition]:
        return self.transitions(name, limit)

    def _ping(self) -> None:
        self._client.ping()

    def _close(self) -> None:
        for client in (self._client, self._reader, self._inbox_reader, self._probe):
            try:
                client.close()
            except Exception:
                log.debug("closing a Redis connection failed", exc_info=True)


def _text(value: Any) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def _number(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _record(fields: dict[Any, Any]) -> ClientRecord | None:
    """A record from its hash (the JSON of the last commit, plus the contact times written
    since)."""
    if not fields:
        return None
    data = json.loads(_text(fields[b"data"]))
    for key in ("last_seen", "last_contact"):
        raw = fields.get(key.encode())
        if raw is not None:
            data[key] = float(raw)
    return ClientRecord.from_dict(data)


def _change(entry_id: Any, fields: dict[Any, Any]) -> Change:
    event_id = int(_text(entry_id).rpartition("-")[2])
    payload = json.loads(_text(fields[b"d"]))
    payload["eventId"] = event_id
    return Change(event_id, _text(fields[b"e"]), _text(fields[b"n"]), _text(fields[b"s"]),
                  json.dumps(payload, separators=(",", ":")))
