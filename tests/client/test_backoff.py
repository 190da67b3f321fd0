"""Pure tests of the reconnect delays: exponential backoff with jitter, shutdown spread."""

from __future__ import annotations

import random

import pytest

from presence_client import Backoff, shutdown_delay
from presence_client._backoff import shutdown_spread


def const(value: float):
    return lambda: value


def test_ceiling_grows_exponentially_up_to_max_delay() -> None:
    b = Backoff(initial=0.5, factor=2.0, max_delay=30.0, jitter=0.5)
    assert [b.ceiling(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


def test_ceiling_never_overflows_on_long_outages() -> None:
    b = Backoff(initial=0.5, factor=2.0, max_delay=60.0)
    assert b.ceiling(10_000) == 60.0
    assert b.ceiling(10**12) == 60.0


def test_factor_one_is_a_constant_delay() -> None:
    b = Backoff(initial=2.0, factor=1.0, max_delay=10.0, jitter=0.0)
    assert {b.delay(n, random.random) for n in (1, 5, 500)} == {2.0}


def test_jitter_bounds_follow_the_random_source() -> None:
    b = Backoff(initial=1.0, factor=2.0, max_delay=30.0, jitter=0.5)
    assert b.delay(3, const(0.0)) == 4.0  # rand 0 -> the ceiling itself
    assert b.delay(3, const(0.5)) == 3.0
    assert b.delay(3, const(0.999999)) == pytest.approx(2.0, abs=1e-5)  # never below half


def test_zero_jitter_is_deterministic_and_full_jitter_reaches_near_zero() -> None:
    assert Backoff(initial=1.0, jitter=0.0).delay(2, const(0.7)) == 2.0
    assert Backoff(initial=1.0, jitter=1.0).delay(2, const(0.99)) == pytest.approx(0.02)


def test_delays_never_exceed_max_and_stay_positive_for_any_draw() -> None:
    rng = random.Random(42)
    b = Backoff(initial=0.1, factor=3.0, max_delay=5.0, jitter=0.9)
    for attempt in range(1, 200):
        d = b.delay(attempt, rng.random)
        assert 0 < d <= 5.0
        assert d >= b.ceiling(attempt) * (1 - 0.9)


def test_jitter_spreads_a_crowd() -> None:
    rng = random.Random(7)
    b = Backoff(initial=1.0, max_delay=30.0, jitter=0.5)
    delays = [b.delay(4, rng.random) for _ in range(1000)]
    assert min(delays) >= 4.0 and max(delays) <= 8.0
    assert max(delays) - min(delays) > 3.0  # spread over most of the [4, 8] window
    assert len({round(d, 3) for d in delays}) > 500  # not a handful of identical instants


@pytest.mark.parametrize("kwargs", [
    {"initial": 0}, {"initial": -1}, {"factor": 0.5}, {"max_delay": 0.1, "initial": 1.0},
    {"jitter": -0.1}, {"jitter": 1.5},
])
def test_invalid_settings_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_attempt_counts_from_one() -> None:
    with pytest.raises(ValueError):
        Backoff().delay(0, random.random)


def test_a_bad_random_source_is_rejected() -> None:
    with pytest.raises(ValueError):
        Backoff().delay(1, const(1.5))
    with pytest.raises(ValueError):
        shutdown_delay(1.0, const(-0.1))


def test_shutdown_delay_is_never_before_reconnect_after() -> None:
    assert shutdown_delay(5.0, const(0.0)) == 5.0
    assert shutdown_delay(5.0, const(0.5)) == 7.5  # default spread: reconnectAfter again
    assert shutdown_delay(0.2, const(0.5)) == pytest.approx(0.7)  # spread at least 1 s
    assert shutdown_delay(5.0, const(0.5), spread=2.0) == 6.0
    assert shutdown_delay(5.0, const(0.9), spread=0.0) == 5.0


def test_shutdown_spread_default() -> None:
    assert shutdown_spread(0) == 1.0
    assert shutdown_spread(5.0) == 5.0


def test_shutdown_delays_of_a_thousand_clients_spread_out() -> None:
    rng = random.Random(3)
    delays = [shutdown_delay(5.0, rng.random) for _ in range(1000)]
    assert min(delays) >= 5.0
    assert max(delays) - min(delays) > 4.0
    per_ms = {}
    for d in delays:
        per_ms[int(d * 1000)] = per_ms.get(int(d * 1000), 0) + 1
    assert max(per_ms.values()) <= 5  # no millisecond gets a crowd


def test_negative_inputs_are_rejected() -> None:
    with pytest.raises(ValueError):
        shutdown_delay(-1.0, random.random)
    with pytest.raises(ValueError):
        shutdown_delay(1.0, random.random, spread=-1.0)
