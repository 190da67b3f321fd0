"""gunicorn settings and hooks (`--config python:presence_server.gunicorn_hooks`).

SIGTERM (Heroku sends it to every process of the dyno, then SIGKILL after 30 s) runs the same
graceful shutdown as `presence-server`: notice, wait, store everyone as reconnecting, close.
"""

import os
import signal

worker_class = "geventwebsocket.gunicorn.workers.GeventWebSocketWorker"
workers = 1
bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
graceful_timeout = 25  # below Heroku's 30 s; our own shutdown.timeout is shorter still
accesslog = None
control_socket_disable = True  # gunicorn 27+: no shared control socket in ~/.gunicorn


def post_worker_init(worker):
    import gevent

    from presence_server.wsgi import runtime

    def graceful():
        timeout = runtime.config.shutdown["timeout"]
        try:
            with gevent.Timeout(timeout, TimeoutError(f"shutdown took over {timeout}s")):
                runtime.shutdown()
        except TimeoutError as problem:
            worker.log.error("graceful shutdown cut short: %s", problem)
            runtime.close()
        finally:
            worker.alive = False

    def on_term(signum, frame):
        if not runtime.shutting_down:
            gevent.spawn(graceful)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGQUIT, on_term)
