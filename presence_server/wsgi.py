"""The WSGI app for gunicorn (see the Procfile): `presence_server.wsgi:app`.

gunicorn's gevent worker has already patched the process when it imports this module.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from .config import ConfigError, load_config  # noqa: E402
from .logs import setup_logging  # noqa: E402

try:
    config = load_config()
except ConfigError as problem:
    print(f"presence-server: configuration error: {problem}", file=sys.stderr)
    raise SystemExit(2) from None
setup_logging(config.log_level)

from .runtime import Runtime  # noqa: E402

runtime = Runtime(config)
runtime.start()
app = runtime.app
