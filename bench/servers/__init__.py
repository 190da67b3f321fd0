"""The servers under test and how to start them (see :mod:`bench.servers.launcher`)."""
