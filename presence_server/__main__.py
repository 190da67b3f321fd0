"""`python -m presence_server` runs the server (same as `presence-server`)."""

import sys

from presence_server.cli import main

sys.exit(main())
