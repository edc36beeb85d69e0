"""Command-line overrides of a sweep: a notebook they do not suit is adapted (fault times scaled with the run) or
left out with its reason, never the reason the whole sweep stops."""

from flashsale.experiments.sweep import Sweep


def faults_run(sweep):
    return next(run for run in sweep.runs if run.notebook == "4.0-faults")


class TestFaultTimes:
    def test_a_shorter_run_moves_its_faults_with_it(self):
        sweep = Sweep.load().override(duration_s=2.0)
        run = faults_run(sweep)
        assert run.parameters["faults"] == ["db-restart@0.8s", "db-stop@0.8s:0.4s"]  # 4s and 2s of a 10 s run
        assert run.notes == [
            "faults scaled to the 2 s run: db-restart@4s, db-stop@4s:2s -> db-restart@0.8s, db-stop@0.8s:0.4s"
        ]
        assert sweep.skip_unplannable() == []

    def test_the_same_duration_leaves_the_faults_alone(self):
        run = faults_run(Sweep.load().override(duration_s=10.0))
        assert run.parameters["faults"] == ["db-restart@4s", "db-stop@4s:2s"]
        assert run.notes == []

    def test_no_duration_leaves_the_faults_alone(self):
        run = faults_run(Sweep.load().override(vus=[1, 2]))
        assert run.parameters["faults"] == ["db-restart@4s", "db-stop@4s:2s"]


class TestSkipping:
    def test_a_notebook_that_cannot_run_is_skipped_with_its_reason_and_the_others_are_kept(self, tmp_path):
        path = tmp_path / "odd.yaml"
        path.write_text(
            "notebooks:\n"
            "  - notebook: 3.0-lock-contention\n    parameters: {duration_s: 1.0}\n"
            "  - notebook: 4.0-faults\n    parameters: {faults: [db-restart@30s], duration_s: 5.0}\n"
        )
        sweep = Sweep.load(path)
        skipped = sweep.skip_unplannable()
        assert [run.notebook for run in skipped] == ["4.0-faults"]
        assert "after the run's end" in skipped[0].skipped
        assert faults_run(sweep).skipped is not None
        assert sweep.runs[0].skipped is None
