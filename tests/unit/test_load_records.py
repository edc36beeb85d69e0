"""Per-request records stay compact and convert losslessly to a DataFrame."""

import tracemalloc

import numpy as np
import pytest

from flashsale.contract import KNOWN, OTHER_ERROR
from flashsale.load.outcomes import Outcomes
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
        """Columns and their DataFrame together; filled in bulk, since `add` appends to the same arrays."""
        outcomes = Outcomes()
        records = RecordBuffer()
        million = 1_000_000
        tracemalloc.start()
        try:
            records.start_ns.frombytes(np.arange(0, million * 1000, 1000, dtype=np.int64).tobytes())
            records.latency_ns.frombytes(np.full(million, 123_456, dtype=np.int64).tobytes())
            records.outcome.frombytes(bytes(million))
            records.status.frombytes(bytes(2 * million))
            records.sent_ns.frombytes(records.start_ns.tobytes())
            frame = records.to_frame(outcomes, warmup_s=1.0)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(records) == len(frame) == million
        assert records.nbytes == 27 * million
        assert peak < 100 * 2**20


class TestPublicApi:
    def test_every_exported_name_resolves(self):
        import flashsale.load

        assert sorted(flashsale.load.__all__) == sorted(flashsale.load._EXPORTS)
        for name in flashsale.load.__all__:
            assert getattr(flashsale.load, name) is not None
