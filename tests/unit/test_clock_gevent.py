"""RealScheduler under gevent: hub timers whose callbacks run in their own greenlet.

Runs in a child interpreter because the test process is not gevent-patched.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import gevent
    from actors.clock import RealScheduler

    scheduler = RealScheduler()
    seen = []

    def slow():
        gevent.sleep(0.05)  # would fail in the hub: proves it runs in a greenlet of its own
        seen.append("slow")

    scheduler.call_later(0.02, slow)
    scheduler.call_later(0.01, lambda: seen.append("first"))
    cancelled = scheduler.call_later(0.01, lambda: seen.append("cancelled"))
    cancelled.cancel()
    late = scheduler.call_later(0.03, lambda: seen.append("late"))
    gevent.sleep(0.2)
    late.cancel()  # after it fired: nothing happens
    assert seen == ["first", "late", "slow"], seen
    print("ok")
""")


def test_gevent_timers_fire_in_order_cancel_and_may_block() -> None:
    result = subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
