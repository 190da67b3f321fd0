"""The web layer: app factory, Socket.IO event handlers, HTTP API and status page."""

from .app import create_app

__all__ = ["create_app"]
