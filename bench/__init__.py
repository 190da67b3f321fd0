"""Benchmark harness: our presence server against bare Flask-SocketIO and Node socket.io servers."""
