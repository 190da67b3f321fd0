"""Storage behind one small interface: `Store`, with one module per backend."""

from .base import Store, StoreError
from .records import OFFLINE, ONLINE, RECONNECTING, ClientRecord, Transition


def open_store(url: str, runner=None) -> Store:
    """The backend for `url` (`sqlite:///…`; Redis arrives with the multi-node work)."""
    if url.startswith("sqlite:///"):
        from .sqlite import SqliteStore

        return SqliteStore(url, runner=runner)
    raise StoreError(f"store.url: no backend for {url.split(':', 1)[0]!r} in this version")


__all__ = ["OFFLINE", "ONLINE", "RECONNECTING", "ClientRecord", "Store", "StoreError",
           "Transition", "open_store"]
