"""gunicorn settings and hooks (`--config python:presence_server.gunicorn_hooks`).

SIGTERM (Heroku sends it to every process of the dyno, then SIGKILL after 30 s) runs the same
graceful shutdown as `presence-server`: notice, wait, store everyone as reconnecting, close. Once
that is done the worker ends its remaining HTTP connections at once (an idle keep-alive or an
abandoned long-poll would otherwise hold it for gunicorn's whole `graceful_timeout`), so the
process exits within `shutdown.timeout`.
"""

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
