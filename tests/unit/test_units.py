import pytest

from flashsale.units import parse_seconds


class TestParseSeconds:
    """Durations are written as on the command line of k6."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [("30s", 30.0), ("100ms", 0.1), ("2m", 120.0), ("1h", 3600.0), ("1.5", 1.5), (10, 10.0), ("0s", 0.0)],
    )
    def test_parses(self, text, expected):
        assert parse_seconds(text) == pytest.approx(expected)

    @pytest.mark.parametrize("text", ["", "abc", "10 parsecs", "1s2"])
    def test_rejects(self, text):
        with pytest.raises(ValueError, match="not a duration"):
            parse_seconds(text)
