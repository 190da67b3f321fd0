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
    from presence_server.actors.clock import RealScheduler

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


NOTICED = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import time
    import gevent
    from presence_server.actors.clock import RealScheduler, SystemClock

    clock, scheduler = SystemClock(), RealScheduler()
    gevent.sleep(0.01)  # a loop iteration: the loop's time is fresh
    polled = clock.noticed()
    assert abs(polled - clock.now()) < 0.05, (polled, clock.now())
    busy_until = time.time() + 0.3
    while time.time() < busy_until:  # a long iteration, as in a storm of socket events
        pass
    # events handled now were reported by the poll before the busy stretch
    assert clock.noticed() == polled, (clock.noticed(), polled)
    assert clock.now() - clock.noticed() >= 0.29
    # a timer armed now counts its delay from now, not from the stale loop time
    armed, fired = time.time(), []
    scheduler.call_later(0.2, lambda: fired.append(time.time()))
    gevent.sleep(0.5)
    assert len(fired) == 1 and fired[0] - armed >= 0.2, (fired, armed)
    gevent.sleep(0.01)
    assert clock.now() - clock.noticed() < 0.05  # fresh again after an iteration
    print("ok")
""")


def test_noticed_is_the_loop_poll_time_and_timers_are_not_early() -> None:
    result = subprocess.run([sys.executable, "-c", NOTICED], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
