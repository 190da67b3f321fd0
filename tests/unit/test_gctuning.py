"""presence_server/gctuning.py: young collections on a clock, survivors frozen, periodic thaw."""

from __future__ import annotations

import gc

from presence_server.actors.clock import ManualClock

from presence_server.gctuning import GcMonitor, GcPacer


class FakeGc:
    """Records what the pacer asks of the collector."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.calls: list[str] = []
        self.fail_on = fail_on

    def collect(self, generation: int = 2) -> int:
        self.calls.append(f"collect{generation}")
        if self.fail_on is not None and len(self.calls) == self.fail_on:
            raise RuntimeError("boom")
        return 0

    def freeze(self) -> None:
        self.calls.append("freeze")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")


def test_young_every_period_and_freeze_every_nth_time() -> None:
    clock, fake = ManualClock(), FakeGc()
    pacer = GcPacer(clock, young_every=0.5, freeze_every=3, collector=fake).start()
    clock.advance(0.49)
    assert fake.calls == []
    clock.advance(0.01)
    assert fake.calls == ["collect0"]
    clock.advance(2.5)
    assert fake.calls == ["collect0", "collect0", "collect0", "freeze",
                          "collect0", "collect0", "collect0", "freeze"]
    assert pacer.freezes == 2 and pacer.thaws == 0


def test_thaw_collects_everything_then_freezes_again() -> None:
    clock, fake = ManualClock(), FakeGc()
    pacer = GcPacer(clock, young_every=1.0, freeze_every=100, thaw_every=3.0,
                    collector=fake).start()
    clock.advance(6.0)
    assert fake.calls == ["collect0", "collect0", "unfreeze", "collect2", "freeze",
                          "collect0", "collect0", "unfreeze", "collect2", "freeze"]
    assert pacer.thaws == 2


def test_stop_cancels_the_next_collection() -> None:
    clock, fake = ManualClock(), FakeGc()
    pacer = GcPacer(clock, young_every=1.0, collector=fake).start()
    clock.advance(2.0)
    pacer.stop()
    clock.advance(10.0)
    assert fake.calls == ["collect0", "collect0"]
    assert clock.pending() == 0


def test_a_failing_collection_does_not_stop_the_pacer() -> None:
    clock, fake = ManualClock(), FakeGc(fail_on=1)
    GcPacer(clock, young_every=1.0, freeze_every=100, collector=fake).start()
    clock.advance(3.0)
    assert fake.calls == ["collect0", "collect0", "collect0"]


def test_the_real_collector_is_paced_frozen_and_timed() -> None:
    clock, monitor = ManualClock(), GcMonitor().install()
    try:
        pacer = GcPacer(clock, young_every=1.0, freeze_every=2).start()
        before = monitor.collections[0]
        survivor = [object() for _ in range(10)]  # noqa: F841 - kept alive to be frozen
        clock.advance(2.0)
        pacer.stop()
        assert monitor.collections[0] - before >= 2
        assert gc.get_freeze_count() > 0 and pacer.freezes == 1
        assert gc.isenabled()
    finally:
        monitor.uninstall()
        gc.unfreeze()
