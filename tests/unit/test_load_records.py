"""Per-request records stay compact and convert losslessly to a DataFrame."""

import tracemalloc

import pytest

from flashsale.load.outcomes import KNOWN, OTHER_ERROR, Outcomes
from flashsale.load.records import COLUMNS, RecordBuffer


class TestOutcomes:
    def test_known_outcomes_have_stable_ids(self):
        assert [Outcomes().id(name) for name in KNOWN] == list(range(len(KNOWN)))

    def test_domain_codes_share_outcomes(self):
        outcomes = Outcomes()
        assert outcomes.for_code("sale_not_found") == outcomes.for_code("user_not_found") == outcomes.id("not_found")
        assert outcomes.name(outcomes.for_code("invalid_quantity")) == "invalid"
        assert outcomes.name(outcomes.for_code("busy")) == "busy"

    def test_error_classes_are_added_as_they_appear(self):
        outcomes = Outcomes()
        first = outcomes.id("PoolTimeout")
        assert outcomes.id("PoolTimeout") == first
        assert outcomes.name(first) == "PoolTimeout"

    def test_ids_fit_one_byte(self):
        outcomes = Outcomes()
        ids = {outcomes.id(f"Error{i}") for i in range(400)}
        assert max(ids) <= 255
        assert outcomes.name(outcomes.id("Error399")) == OTHER_ERROR


class TestRecordBuffer:
    def test_frame_round_trip(self):
        outcomes = Outcomes()
        records = RecordBuffer()
        records.add(0, 1_500_000, outcomes.id("created"), 201)
        records.add(2_000_000_000, 250_000, outcomes.id("sold_out"), 409)
        records.add(3_000_000_000, 1_000, outcomes.id("ClientConnectorError"), 0)
        frame = records.to_frame(outcomes, warmup_s=1.0)
        assert tuple(frame.columns) == COLUMNS
        assert frame["start_s"].tolist() == [0.0, 2.0, 3.0]
        assert frame["latency_ms"].tolist() == pytest.approx([1.5, 0.25, 0.001])
        assert frame["outcome"].astype(str).tolist() == ["created", "sold_out", "ClientConnectorError"]
        assert frame["status"].tolist() == [201, 409, 0]
        assert frame["warmup"].tolist() == [True, False, False]

    def test_a_million_requests_take_under_100_mb(self):
        records = RecordBuffer()
        add = records.add
        tracemalloc.start()
        try:
            for i in range(1_000_000):
                add(i * 1000, 123_456, i & 7, 201)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(records) == 1_000_000
        assert records.nbytes == 19_000_000
        assert peak < 100 * 2**20


class TestPublicApi:
    def test_every_exported_name_resolves(self):
        import flashsale.load

        assert sorted(flashsale.load.__all__) == sorted(flashsale.load._EXPORTS)
        for name in flashsale.load.__all__:
            assert getattr(flashsale.load, name) is not None
