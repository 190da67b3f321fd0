"""``python -m presence_client``: the same as the ``presence-client`` command."""

import sys

from .cli import main

sys.exit(main())
