"""The presence server: configuration, runtime wiring and entry points.

Nothing is imported here on purpose: the entry points must run `gevent.monkey.patch_all()`
before anything imports `threading`, `socket` or `ssl`.
"""
