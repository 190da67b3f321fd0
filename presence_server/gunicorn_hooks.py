"""gunicorn settings and hooks (`--config python:presence_server.gunicorn_hooks`).

SIGTERM (Heroku sends it to every process of the dyno, then SIGKILL after 30 s) runs the same
graceful shutdown as `presence-server`: notice, wait, store everyone as reconnecting, close. Once
that is done the worker ends its remaining HTTP connections at once (an idle keep-alive or an
abandoned long-poll would otherwise hold it for gunicorn's whole `graceful_timeout`), so the
process exits within `shutdown.timeout`.

When the final store flush failed (changes lost), the worker exits 1 and so does the master
(which would otherwise exit 0 after any SIGTERM): the worker tells it through one shared byte.
"""

import mmap
import os
import signal
import weakref

from gevent.pywsgi import WSGIServer

worker_class = "geventwebsocket.gunicorn.workers.GeventWebSocketWorker"
workers = 1
bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
graceful_timeout = 25  # below Heroku's 30 s; our own shutdown.timeout is shorter still
accesslog = None
control_socket_disable = True  # gunicorn 27+: no shared control socket in ~/.gunicorn

# gunicorn's gevent worker looks at `alive` once a second: keep that much of shutdown.timeout
# for the worker to notice the end and exit.
WORKER_LOOP_PERIOD = 1.0

# Created in the master when it reads this module, shared with the workers it forks.
_LOST_CHANGES = mmap.mmap(-1, 1)


class TrackedWSGIServer(WSGIServer):
    """gevent's WSGI server, remembered so the worker can end its connections after shutdown."""

    running: "weakref.WeakSet[TrackedWSGIServer]" = weakref.WeakSet()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        TrackedWSGIServer.running.add(self)

    @classmethod
    def end_all_connections(cls) -> None:
        for server in list(cls.running):
            server.stop(timeout=0)


def post_worker_init(worker):
    import gevent

    from presence_server.timeouts import handler_class
    from presence_server.wsgi import runtime

    worker.server_class = TrackedWSGIServer  # read by the worker's run(), which comes next
    worker.wsgi_handler = handler_class(runtime.config)  # read timeouts: see timeouts.py

    def graceful():
        timeout = runtime.config.shutdown["timeout"]
        budget = max(timeout - WORKER_LOOP_PERIOD, timeout / 2)
        try:
            with gevent.Timeout(budget, TimeoutError(f"shutdown took over {budget:g}s")):
                runtime.shutdown()
        except TimeoutError as problem:
            worker.log.error("graceful shutdown cut short: %s", problem)
            runtime.close()
        finally:
            worker.alive = False
            TrackedWSGIServer.end_all_connections()

    def on_term(signum, frame):
        if not runtime.shutting_down:
            gevent.spawn(graceful)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGQUIT, on_term)


def worker_exit(server, worker):
    """In the worker, last thing: exit 1 (and tell the master) if the final flush failed."""
    import sys

    runtime = sys.modules.get("presence_server.wsgi")
    runtime = getattr(runtime, "runtime", None)
    if runtime is not None and runtime.store_lost_changes:
        _LOST_CHANGES[0] = 1
        worker.log.error("exiting with status 1: the final store flush failed")
        raise SystemExit(1)


def on_exit(server):
    """In the master, last thing: exit 1 when a worker lost store changes."""
    if _LOST_CHANGES[0]:
        server.log.error("exiting with status 1: a worker's final store flush failed")
        raise SystemExit(1)
