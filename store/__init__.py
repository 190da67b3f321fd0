"""Storage behind one small interface: `Store`, with one module per backend."""

from .base import Store, StoreError
from .records import OFFLINE, ONLINE, RECONNECTING, ClientRecord, Transition


def open_store(url: str, runner=None, backlog: int = 10000) -> Store:
    """The backend for `url` (`sqlite:///…`; Redis arrives with the multi-node work), keeping
    at least `backlog` changes of its feed (`events.backlog`)."""
    if url.startswith("sqlite:///"):
        from .sqlite import SqliteStore

        return SqliteStore(url, runner=runner, backlog=backlog)
    raise StoreError(f"store.url: no backend for {url.split(':', 1)[0]!r} in this version")


__all__ = ["OFFLINE", "ONLINE", "RECONNECTING", "ClientRecord", "Store", "StoreError",
           "Transition", "open_store"]
