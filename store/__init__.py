"""Storage behind one small interface: `Store`, with one module per backend."""

from .base import Store, StoreError
from .records import OFFLINE, ONLINE, RECONNECTING, ClientRecord, Transition

REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://")


def open_store(url: str, runner=None, backlog: int = 10000, node: str = "node",
               node_timeout: float = 15.0) -> Store:
    """The backend for `url` (`sqlite:///…` for one node; `redis://…` shared by several, this
    one being `node`), keeping at least `backlog` changes of its feed (`events.backlog`)."""
    if url.startswith("sqlite:///"):
        from .sqlite import SqliteStore

        return SqliteStore(url, runner=runner, backlog=backlog)
    if url.startswith(REDIS_SCHEMES):
        from .redis import RedisStore

        return RedisStore(url, node=node, backlog=backlog, node_timeout=node_timeout)
    raise StoreError(f"store.url: no backend for {url.split(':', 1)[0]!r} in this version")


__all__ = ["OFFLINE", "ONLINE", "RECONNECTING", "ClientRecord", "Store", "StoreError",
           "Transition", "open_store"]
