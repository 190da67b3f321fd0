"""`presence-server`: serve Socket.IO, the HTTP API and the status page with gevent.

The gevent patch runs first, before anything else imports `threading`, `socket` or `ssl`.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402

from .config import ConfigError, load_config  # noqa: E402
from .logs import setup_logging  # noqa: E402

log = logging.getLogger("presence.server")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="presence-server", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML file overlaying config.yaml (or PRESENCE_CONFIG)")
    parser.add_argument("--host", help="listen address (default: config server.host)")
    parser.add_argument("--port", type=int, help="listen port (default: $PORT, else 5000)")
    return parser.parse_args(argv)


def resolve_port(option: int | None) -> int:
    if option is not None:
        port = option
    else:
        raw = os.environ.get("PORT", "5000")
        if not raw.strip().isdigit():
            raise ConfigError(f"PORT: expected a port number, got {raw!r}")
        port = int(raw)
    if not 0 < port < 65536:
        raise ConfigError(f"--port: expected 1-65535, got {port}")
    return port


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args.config)
        port = resolve_port(args.port)
    except ConfigError as problem:
        print(f"presence-server: configuration error: {problem}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    host = args.host or config.server["host"]

    from gevent.pywsgi import WSGIServer

    from .runtime import Runtime
    from .timeouts import handler_class

    try:
        runtime = Runtime(config)
    except Exception as problem:
        print(f"presence-server: cannot start: {problem}", file=sys.stderr)
        return 1
    server = WSGIServer((host, port), runtime.app, handler_class=handler_class(config),
                        log=None)
    try:
        server.init_socket()
    except OSError as problem:
        print(f"presence-server: cannot listen on {host}:{port}: {problem.strerror}",
              file=sys.stderr)
        runtime.close()
        return 1
    runtime.stop_accepting = server.close
    runtime.start()
    finished = Event()

    def graceful() -> None:
        timeout = config.shutdown["timeout"]
        try:
            with gevent.Timeout(timeout, TimeoutError(f"shutdown took over {timeout}s")):
                runtime.shutdown()
        except TimeoutError as problem:
            log.error("graceful shutdown cut short: %s", problem)
            runtime.close()
        finally:
            server.stop(timeout=0.5)
            finished.set()

    def on_signal(signum: int) -> None:
        log.info("received %s: shutting down gracefully", signal.Signals(signum).name)
        if not runtime.shutting_down:
            gevent.spawn(graceful)

    gevent.signal_handler(signal.SIGTERM, on_signal, signal.SIGTERM)
    gevent.signal_handler(signal.SIGINT, on_signal, signal.SIGINT)
    server.start()
    log.info("presence server listening on http://%s:%d (node %s, store %s)",
             host, server.server_port, config.node_id, config.store["url"])
    finished.wait()
    if runtime.store_lost_changes:
        log.error("exiting with status 1: the final store flush failed")
        return 1
    return 0


def _token_lifetime(text: str) -> float:
    """`--expires`: a duration (`90s`, `30m`, `24h`, `7d`), greater than zero."""
    from .config import parse_duration

    days = text.strip()[:-1] if text.strip().endswith("d") else None
    try:
        seconds = float(days) * 86400 if days is not None else parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a duration like 30m, 24h or 7d, got {text!r}") from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"must be greater than zero, got {text!r}")
    return seconds


def token_main(argv: list[str] | None = None) -> int:
    """`presence-token NAME [--expires 24h]`: print an identity token for NAME signed with
    PRESENCE_SECRET."""
    parser = argparse.ArgumentParser(prog="presence-token", description=token_main.__doc__)
    parser.add_argument("name")
    parser.add_argument("--expires", type=_token_lifetime, metavar="DURATION",
                        help="refuse the token after this long (30m, 24h, 7d); default: never")
    args = parser.parse_args(argv)
    secret = os.environ.get("PRESENCE_SECRET")
    if not secret:
        print("presence-token: set PRESENCE_SECRET to the server's security.secret",
              file=sys.stderr)
        return 2
    from presence_server.web.identity import Identities

    print(Identities(secret).issue(args.name, expires_in=args.expires))
    return 0


if __name__ == "__main__":
    sys.exit(main())
