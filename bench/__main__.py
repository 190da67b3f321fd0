"""``python -m bench``: run benchmark scenarios (see bench/README.md)."""

from bench.cli import main

raise SystemExit(main())
