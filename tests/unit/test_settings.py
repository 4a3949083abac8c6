"""Settings read from the environment: bad values fail at cold start with the variable's name."""

from __future__ import annotations

import re

import pytest

from streamrec.settings import ConfigurationError, Settings, load_settings


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        # NaN would pass every range check (its comparisons are all false).
        ({"HALF_LIFE_HOURS": "nan"}, "HALF_LIFE_HOURS=nan; expected a finite number"),
        ({"HALF_LIFE_HOURS": "inf"}, "HALF_LIFE_HOURS=inf; expected a finite number"),
        ({"HALF_LIFE_HOURS": "0"}, "HALF_LIFE_HOURS=0.0; expected > 0"),
        ({"CATEGORY_BLEND": "nan"}, "CATEGORY_BLEND=nan; expected a finite number"),
        ({"CROSS_SELL_POPULARITY_PENALTY": "-inf"}, "CROSS_SELL_POPULARITY_PENALTY=-inf"),
        ({"EVENT_WEIGHTS": "view=inf"}, "EVENT_WEIGHTS must be finite numbers"),
        ({"EVENT_WEIGHTS": "view=nan"}, "EVENT_WEIGHTS must be finite numbers"),
        ({"EVENT_WEIGHTS": "view=-1"}, "EVENT_WEIGHTS must not be negative"),
        # Counts would pass DynamoDB's largest number (and products of counts overflow).
        ({"EVENT_WEIGHTS": "view=1e155"}, "EVENT_WEIGHTS must be at most 1,000"),
        ({"EVENT_WEIGHTS": "click=1"}, "EVENT_WEIGHTS entry 'click=1'"),
        ({"HISTORY_LENGTH": "ten"}, "HISTORY_LENGTH='ten' is not a valid int"),
        ({"BEHAVIOUR_SLOTS": "2"}, "BEHAVIOUR_SLOTS=2.0; expected 0..1"),
    ],
)
def test_bad_settings_fail_at_cold_start_naming_the_variable(environ, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        load_settings(environ)


def test_good_settings_are_read():
    settings = load_settings({"HALF_LIFE_HOURS": "12.5", "EVENT_WEIGHTS": "view=2"})
    assert settings.half_life_hours == 12.5
    assert settings.event_weights["view"] == 2.0
    assert settings.event_weights["purchase"] == Settings().event_weights["purchase"]


def test_settings_built_in_code_are_checked_too():
    with pytest.raises(ConfigurationError, match="TWO_HOP_WEIGHT=nan"):
        Settings(two_hop_weight=float("nan"))


@pytest.mark.parametrize("name", ["popularity_half_life_hours", "category_half_life_hours"])
@pytest.mark.parametrize("value", [0.0, -24.0])
def test_half_lives_set_in_code_must_be_positive(name, value):
    with pytest.raises(ConfigurationError, match=re.escape(f"{name}={value}; expected > 0")):
        Settings(**{name: value})
