"""The open model's shapes beyond a constant rate: ramping stages (k6's ramping-arrival-rate) and a sale-opening
spike, as schedules (no clock involved), and how a load configuration chooses them."""

import numpy as np
import pytest

from flashsale.load import LoadConfig
from flashsale.load.config import default_workers
from flashsale.load.workloads import Open, Ramping, Spike


def offsets(workload, duration_s, seed=0):
    arrivals = workload.arrivals(duration_s, seed)
    return np.array([arrivals.offset(i) for i in range(arrivals.count)], dtype=np.int64), arrivals


class TestRamping:
    def test_arrivals_follow_the_integral_of_the_rate(self):
        # 0 -> 2000/s over 2 s (2000 arrivals: 500 in the first second, 1500 in the second), then 2000/s for 10 s
        starts, _ = offsets(Ramping(((0, 0), (2, 2000), (12, 2000))), 12.0)
        per_second = np.bincount(starts // 1_000_000_000, minlength=12)
        assert len(starts) == 22_000
        assert per_second[0] == 500
        assert per_second[1] == 1500
        assert set(per_second[2:]) == {2000}
        assert np.all(np.diff(starts) > 0)

    def test_a_constant_stage_is_the_constant_rate_schedule(self):
        ramp, _ = offsets(Ramping(((0, 100), (1, 100))), 1.0)
        flat, _ = offsets(Open(rate=100), 1.0)
        assert np.abs(ramp - flat).max() <= 1  # rounding of the same instants

    def test_after_the_last_point_the_rate_holds_and_a_short_run_cuts_the_schedule(self):
        assert len(offsets(Ramping(((0, 10), (1, 10))), 3.0)[0]) == 30
        assert len(offsets(Ramping(((0, 0), (2, 2000))), 1.0)[0]) == 500

    @pytest.mark.parametrize(
        ("stages", "message"),
        [
            (((1, 10),), "start at 0s"),
            (((0, 10), (2, 10), (1, 5)), "times must increase"),
            (((0, 0), (1, 0)), "not all 0"),
            (((0, -1), (1, 5)), "0 or more"),
        ],
    )
    def test_bad_stages_are_refused(self, stages, message):
        with pytest.raises(ValueError, match=message):
            Ramping(stages)


class TestSpike:
    def test_every_buyer_arrives_once_within_the_window_the_seed_replays_it(self):
        starts, arrivals = offsets(Spike(buyers=500, window_s=2.0), 5.0, seed=3)
        assert arrivals.count == 500
        assert sorted(arrivals.users(i) for i in range(500)) == list(range(500))
        assert starts.min() >= 0
        assert starts.max() < 2_000_000_000
        assert np.all(np.diff(starts) >= 0)
        assert np.array_equal(starts, offsets(Spike(buyers=500, window_s=2.0), 5.0, seed=3)[0])
        assert not np.array_equal(starts, offsets(Spike(buyers=500, window_s=2.0), 5.0, seed=4)[0])


class TestLoadConfigShapes:
    def test_stages_and_spike_select_the_open_model(self):
        assert LoadConfig(stages=((0, 0), (1, 100)), duration_s=1).model == "open"
        assert LoadConfig(spike=(50, 1.0), duration_s=1, users=50).model == "open"
        assert isinstance(LoadConfig(spike=(50, 1.0), duration_s=1, users=50).workload, Spike)

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"rate": 10.0, "stages": ((0, 0), (1, 10))}, "one of rate, stages and spike"),
            ({"spike": (100, 2.0), "duration_s": 1.0, "users": 100}, "longer than the run"),
            ({"spike": (100, 1.0), "duration_s": 1.0, "users": 10}, "needs as many users"),
            ({"sale_opens_s": -1.0}, "opens at 0 s or later"),
        ],
    )
    def test_contradictions_are_refused(self, changes, message):
        with pytest.raises(ValueError, match=message):
            LoadConfig(**changes)

    def test_default_workers_follow_the_peak_rate(self):
        config = LoadConfig(stages=((0, 0), (2, 3500), (4, 3500)), duration_s=4)
        assert default_workers(config, cores=64) == 4
