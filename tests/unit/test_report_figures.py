"""What the reports draw, as a reader sees it: tick labels, legends, axes and table cells, checked on the figures
and tables themselves (changes made after looking at the HTML reports in a browser)."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection

from flashsale.experiments import notebook
from flashsale.reports import figures


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def requests(outcomes: dict[str, int], *, span_s: float) -> pd.DataFrame:
    """Requests of each outcome spread evenly over `span_s`, answered in 1 ms."""
    rows = []
    for outcome, count in outcomes.items():
        rows += [{"start_s": span_s * i / count, "latency_ms": 1.0, "outcome": outcome} for i in range(count)]
    frame = pd.DataFrame(rows)
    frame["outcome"] = frame["outcome"].astype("category")
    frame["warmup"] = False
    return frame


def labels(axis) -> list[str]:
    axis.figure.canvas.draw()
    return [t.get_text() for t in (*axis.get_majorticklabels(), *axis.get_minorticklabels()) if t.get_text()]


class TestLogAxes:
    @pytest.mark.parametrize(("low", "high", "expected"), [(0.15, 70, "0.2"), (5_000, 60_000, "20,000")])
    def test_labels_are_plain_numbers_below_one_and_above_ten_thousand(self, low, high, expected):
        ax = plt.subplots()[1]
        ax.set_yscale("log")
        ax.set_ylim(low, high)
        figures._plain_log(ax.yaxis)
        shown = labels(ax.yaxis)
        assert expected in shown
        assert not any("e" in label for label in shown), shown


class TestAnswersOverTime:
    def test_totals_in_the_legend_so_that_a_few_orders_among_many_refusals_are_told(self):
        frame = requests({"created": 3, "queue_full": 3_000, "sold_out": 40}, span_s=8.0)
        ax = figures.answers_over_time(frame, title="t")
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend == [
            "orders (created or replayed): 3",
            "refused by the sale: 40",
            "refused for now (429, 503): 3,000",
        ]
        assert ax.get_ylabel() == "answers per second (400 ms buckets)"  # a twentieth of 8 s

    def test_the_groups_are_the_contracts(self):
        """Accepted orders apart from the others, `unavailable` among the refusals for now, errors in red."""
        frame = requests({"accepted": 5, "unavailable": 4, "http_500": 2, "busy": 1}, span_s=8.0)
        ax = figures.answers_over_time(frame, title="t")
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend == ["accepted (202, settled later): 5", "refused for now (429, 503): 5", "errors: 2"]

    def test_a_short_run_gets_finer_buckets_and_the_sale_opening_marked(self):
        frame = requests({"sale_not_active": 50, "created": 50, "sold_out": 100}, span_s=2.0)
        ax = figures.answers_over_time(frame, title="t", sale_opens_s=0.5)
        assert ax.get_ylabel() == "answers per second (100 ms buckets)"
        (opening,) = [line for line in ax.get_lines() if line.get_label() == "the sale opens"]
        assert list(opening.get_xdata()) == [0.5, 0.5]

    def test_a_run_with_nothing_measured_draws_empty_axes(self):
        frame = requests({"created": 3}, span_s=1.0)
        frame["warmup"] = True
        ax = figures.answers_over_time(frame, title="nothing measured")
        assert ax.get_title() == "nothing measured"
        assert not ax.collections


def test_a_fault_run_draws_accepted_orders_as_successes_and_each_failure_by_name():
    frame = requests({"created": 3, "accepted": 2, "unavailable": 4, "busy": 1}, span_s=2.0)
    ax = figures.outcomes_over_time(frame, {"injected_s": None}, title="t")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["orders (created or replayed)", "accepted (202, settled later)", "busy", "unavailable"]


def test_queue_depth_axis_starts_at_zero():
    timeline = pd.DataFrame({"t_s": [0.0, 0.1, 0.2, 0.3], "queue_depth": [99.0, 100.0, 100.0, 60.0]})
    ax = figures.queue_depth_over_time({"queue": timeline}, capacity=100, title="t")
    assert ax.get_ylim() == (0, pytest.approx(110))
    summed = pd.DataFrame({"t_s": [0.0, 0.1], "queue_depth": [150.0, 200.0]})  # the queues of two processes
    assert figures.queue_depth_over_time({"q": summed}, capacity=100, title="t").get_ylim() == (0, pytest.approx(220))


def test_outcome_latency_bars_are_horizontal_in_the_order_given():
    frames = {"b, 32 VUs": requests({"created": 5}, span_s=1.0), "a, 32 VUs": requests({"busy": 5}, span_s=1.0)}
    ax = figures.outcome_latency(frames, title="t")
    assert ax.get_xlabel() == "p95 latency (ms)"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a, 32 VUs", "b, 32 VUs"]  # the first at the top


def test_metric_table_formats_each_row_as_what_it_holds():
    side = pd.DataFrame(
        {
            "metric": ["requests", "p95", "accepted", "queue full"],
            "published": [2661.0, 26.96, "n/a", None],
            "measured": [2840.0, 10.0712, 0.97, 0.03],
        }
    )
    html = notebook.metric_table(side, counts=("requests",), shares=("accepted", "queue full")).to_html()
    for text in ("2,661", "2,840", "26.96", "10.07", "97.0%", "3.0%", "n/a", "–"):
        assert f">{text}<" in html, text
    assert "2,661.00" not in html


class TestRedisFront:
    def test_admitted_orders_are_set_against_the_limit_and_the_limit_times_the_processes(self):
        runs = pd.DataFrame(
            [
                {"label": "local admission, 2 processes", "admitted": 19.8, "limit": 10.0, "processes": 2},
                {"label": "local admission, 2 processes", "admitted": 20.2, "limit": 10.0, "processes": 2},
                {"label": "Redis admission, 2 processes", "admitted": 10.0, "limit": 10.0, "processes": 2},
            ]
        )
        ax = figures.admitted_per_user(runs, title="t")
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend == ["the limit (10 orders/s per user)", "2 processes x the limit"]
        assert [t.get_text() for t in ax.texts] == ["2.00x the limit", "1.00x the limit"]
        assert [t.get_text() for t in ax.get_xticklabels()] == list(dict.fromkeys(runs["label"]))
        assert ax.get_ylim()[1] > 20.2  # the range of the repeats and the dotted line both fit

    def test_the_gate_panels_draw_each_sale_per_strategy_and_the_reference_on_requests_only(self):
        rows = []
        for strategy, sale in [(s, sale) for s in ("redis_gate", "pessimistic") for sale in ("sale of 50", "never")]:
            rows.append({"label": f"{strategy}, {sale}", "cell_id": f"{strategy}-{sale}", "strategy": strategy,
                         "rps": 100.0, "latency_ms.p95": 2.0, "meta.pg_transactions.per_request": 1.0})  # fmt: skip
        cells = pd.DataFrame(rows)
        reference = pd.DataFrame([{"cell_id": "pessimistic-never", "strategy": "pessimistic", "tps": 300.0}])
        fig = figures.gate_against(cells, reference, title="t")
        requests, _, transactions = fig.axes
        assert [ax.get_title() for ax in fig.axes] == [
            "requests/s",
            "p95 latency",
            "PostgreSQL transactions per request",
        ]
        assert [t.get_text() for t in requests.get_xticklabels()] == ["redis_gate", "pessimistic"]
        assert len(requests.patches) == len(transactions.patches) == 4  # two sales a strategy
        ticks = [c for ax in fig.axes for c in ax.collections if isinstance(c, PathCollection)]
        assert all(c.axes is requests for c in ticks)  # the reference line is a number of requests/s
        drawn = [list(point) for c in ticks for point in np.ma.getdata(c.get_offsets()) if np.isfinite(point[1])]
        assert drawn == [[pytest.approx(1.2), 300.0]]  # pessimistic's, on its second sale
        assert (requests.get_yscale(), transactions.get_yscale()) == ("log", "linear")
        legend = [t.get_text() for t in fig.legends[0].get_texts()]
        assert legend == ["sale of 50", "never", "reference line"]

    def test_a_redis_fault_is_shaded_as_redis_down(self):
        ax = plt.subplots()[1]
        figures.mark_fault(ax, {"injected_s": 1.0, "down_s": 1.0, "up_s": 2.0, "server": "Redis"})
        assert "Redis down" in [artist.get_label() for artist in ax.patches]
        figures.mark_fault(ax, {"injected_s": 1.0, "down_s": 1.0, "up_s": 2.0})
        assert "database down" in [artist.get_label() for artist in ax.patches]
