"""The web layer: app factory (`app.create_app`), Socket.IO event handlers, HTTP API and status
page. It talks to presence only through the port described in `port.py`."""
