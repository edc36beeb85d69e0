"""A scenario's parameters are checked before anything is written, as bad input (a ValueError), never as a refused
order (a DomainError), so that the CLI answers them with exit status 2."""

from datetime import timedelta

import pytest

from flashsale.domain import DomainError
from flashsale.services.scenario import InvalidScenario, validate

GOOD = {"users": 10, "inventory": 5, "per_user_limit": 1, "window": timedelta(hours=1)}


class TestValidate:
    def test_good_parameters_pass(self):
        validate(**GOOD)

    @pytest.mark.parametrize(
        "bad",
        [
            {"users": 0},
            {"inventory": -1},
            {"per_user_limit": 0},
            {"per_user_limit": 2**31},
            {"window": timedelta(0)},
            {"shards": 0},
        ],
    )
    def test_bad_parameters_are_invalid_scenarios_not_domain_errors(self, bad):
        with pytest.raises(InvalidScenario) as raised:
            validate(**{**GOOD, **bad})
        assert isinstance(raised.value, ValueError)
        assert not isinstance(raised.value, DomainError)
