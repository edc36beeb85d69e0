"""The open model's shapes beyond a constant rate: ramping stages (k6's ramping-arrival-rate) and a sale-opening
spike, as schedules (no clock involved); the shape a load configuration holds, and the one `flashsale load` makes
from its options."""

import argparse

import numpy as np
import pytest

from flashsale.cli.load import shape_from
from flashsale.cli.main import build_parser
from flashsale.load import LoadConfig
from flashsale.load.config import default_workers
from flashsale.load.shapes import Closed, Open, Ramping, Spike


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
    def test_the_shape_gives_the_model(self):
        assert LoadConfig().shape == Closed(vus=10, think_ms=100.0)  # the seed's k6 test
        assert LoadConfig().model == "closed"
        assert LoadConfig(shape=Open(rate=10.0)).model == "open"
        assert LoadConfig(shape=Ramping(((0, 0), (1, 100))), duration_s=1).model == "open"
        assert LoadConfig(shape=Spike(50, 1.0), duration_s=1, users=50).model == "open"

    def test_a_shape_is_one_of_the_shapes(self):
        with pytest.raises(ValueError, match="shape must be one of Closed, Open, Ramping, Spike"):
            LoadConfig(shape=(50, 1.0))

    @pytest.mark.parametrize(
        ("make", "message"),
        [
            (lambda: Closed(vus=0), "vus must be at least 1"),
            (lambda: Closed(think_ms=-1), "think time must be 0 or more"),
            (lambda: Closed(think_jitter=-0.1), "think jitter must be between 0 and 1"),
            (lambda: Open(rate=0), "rate must be positive"),
            (lambda: Open(rate=10, max_inflight=0), "max in-flight must be at least 1"),
            (lambda: Ramping(((1, 10), (2, 10))), "stages must start at 0s"),
            (lambda: Spike(0, 1.0), "at least one buyer"),
        ],
    )
    def test_each_shape_refuses_its_own_bad_parameters(self, make, message):
        with pytest.raises(ValueError, match=message):
            make()

    def test_stages_and_spikes_are_kept_as_numbers_of_one_kind(self):
        """As LoadConfig kept them: the parameters (and the keys of measured cells) do not depend on how they were
        written."""
        assert Ramping([[0, 0], [1, 100]]).params()["stages"] == ((0.0, 0.0), (1.0, 100.0))
        assert Spike(50.0, 1).params()["spike"] == (50, 1.0)

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"shape": Spike(100, 2.0), "duration_s": 1.0, "users": 100}, "longer than the run"),
            ({"shape": Spike(100, 1.0), "duration_s": 1.0, "users": 10}, "needs as many users"),
            ({"sale_opens_s": -1.0}, "opens at 0 s or later"),
        ],
    )
    def test_contradictions_are_refused(self, changes, message):
        with pytest.raises(ValueError, match=message):
            LoadConfig(**changes)

    def test_a_spike_on_the_sale_as_it_is_needs_no_count_of_users(self):
        assert LoadConfig(shape=Spike(100, 1.0), duration_s=1.0, users=10, reset=False).shape.buyers == 100

    def test_default_workers_follow_the_peak_rate(self):
        config = LoadConfig(shape=Ramping(((0, 0), (2, 3500), (4, 3500))), duration_s=4)
        assert default_workers(config, cores=64) == 4


def load_options(*options: str) -> argparse.Namespace:
    return build_parser().parse_args(["load", *options])


class TestShapeOptions:
    """`flashsale load` makes the shape from its options, and refuses two at once."""

    @pytest.mark.parametrize(
        ("options", "shape"),
        [
            ([], Closed(vus=10, think_ms=100.0)),
            (["--vus", "4", "--think-ms", "5", "--think-jitter", "0.5"], Closed(vus=4, think_ms=5.0, think_jitter=0.5)),
            (["--rate", "250", "--max-inflight", "64"], Open(rate=250.0, max_inflight=64)),
            (["--stages", "0s:0,2s:2000"], Ramping(((0, 0), (2, 2000)))),
            (["--spike", "500:2s", "--max-inflight", "100"], Spike(500, 2.0, max_inflight=100)),
        ],
    )
    def test_each_shape_from_its_options(self, options, shape):
        assert shape_from(load_options(*options)) == shape

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            (
                ["--rate", "10", "--stages", "0s:0,1s:10"],
                "give one of --rate, --stages and --spike .* --rate and --stages",
            ),
            (["--stages", "0s:0,1s:10", "--spike", "5:1s"], "not --stages and --spike"),
            (["--rate", "10", "--think-jitter", "0.5"], "think jitter is for the closed model"),
        ],
    )
    def test_two_shapes_are_refused(self, options, message):
        with pytest.raises(ValueError, match=message):
            shape_from(load_options(*options))


class TestRetryAfterOptions:
    """`--honour-retry-after`, for the closed model's virtual users of the http target, and its cap."""

    def test_the_options_reach_the_config(self):
        args = load_options("--target", "http", "--honour-retry-after", "--retry-after-max", "500ms")
        assert (args.honour_retry_after, args.retry_after_max) == (True, 0.5)
        assert load_options("--target", "http", "--honor-retry-after").honour_retry_after  # either spelling
        assert (load_options().honour_retry_after, load_options().retry_after_max) == (False, None)

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({}, "needs --target http"),
            ({"target": "http", "shape": Open(rate=10.0)}, "closed model"),
            ({"target": "http", "shape": Spike(10, 1.0), "duration_s": 1.0, "users": 10}, "closed model"),
            ({"target": "http", "retry_after_max_s": 0.0}, "--retry-after-max must be positive, got 0"),
            ({"target": "http", "honour_retry_after": False, "retry_after_max_s": 5.0}, "give both"),
        ],
    )
    def test_what_it_cannot_mean_is_refused_naming_the_option(self, changes, message):
        with pytest.raises(ValueError, match=message):
            LoadConfig(**{"honour_retry_after": True, **changes})

    def test_a_closed_http_run_takes_it(self):
        config = LoadConfig(target="http", honour_retry_after=True, retry_after_max_s=5.0)
        assert (config.honour_retry_after, config.retry_after_max_s) == (True, 5.0)
