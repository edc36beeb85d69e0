"""Flash-sale traffic against the real database: a ramping arrival rate and a sale-opening spike, latency from each
request's scheduled start, and the audit."""

import numpy as np
import pytest

from flashsale.load import LoadConfig, Ramping, Spike, run_load_async

pytestmark = pytest.mark.slow


class TestFlashSaleTraffic:
    async def test_a_ramp_makes_exactly_its_schedule_of_orders(self, database_url):
        result = await run_load_async(
            LoadConfig(
                database_url=database_url, shape=Ramping(((0, 0), (1, 200), (2, 200))), duration_s=2.0,
                inventory=100_000, per_user_limit=100_000,
            )
        )  # fmt: skip
        records = result.records
        assert result.ok, result.summary["meta"]["audit_problems"]
        assert len(records) == 300  # 100 while ramping up, 200 at the plateau
        per_second = np.bincount((records["start_s"].to_numpy() // 1).astype(int), minlength=2)
        assert list(per_second) == [100, 200]
        assert result.summary["meta"]["stages"] == [[0.0, 0.0], [1.0, 200.0], [2.0, 200.0]]

    async def test_a_spike_at_the_opening_refuses_only_orders_checked_before_it(self, database_url):
        opens_s = 0.3
        result = await run_load_async(
            LoadConfig(
                database_url=database_url, shape=Spike(200, 1.0), duration_s=1.0, users=200, inventory=60,
                per_user_limit=1, sale_opens_s=opens_s,
            )
        )  # fmt: skip
        summary, records = result.summary, result.records
        assert result.ok, summary["meta"]["audit_problems"]
        assert summary["requests"] == 200  # one order a buyer
        assert "per_user_limit_exceeded" not in summary["outcomes"]  # no buyer ordered twice
        refused = records[records["outcome"] == "sale_not_active"]
        # A refusal was decided before the opening, so its (scheduled) start came before it too; and some were.
        assert len(refused) > 0
        assert (refused["start_s"] < opens_s).all()
        assert summary["audit"]["orders"] == 60  # 140 buyers left after the opening: it sold out
        assert summary["meta"]["sale_opens_at"]
