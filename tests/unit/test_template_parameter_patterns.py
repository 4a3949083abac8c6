"""A template parameter the functions parse at cold start is checked at deploy: its
``AllowedPattern`` takes only values ``load_settings`` accepts (a refused value would stop
every function at start), and the documented forms pass."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streamrec.local.template import TemplateError, load_raw_template, load_template
from streamrec.settings import COUPON_MODEL_SIZE, ConfigurationError, load_settings

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
PARAMETERS = load_raw_template(TEMPLATE)["Parameters"]

GOOD_MODEL = ",".join(["-3.1", "0.4", "1e-3", "+2", ".5", "7.", "0", "-0.25", "1E+2", "3", "4"])
# (parameter, environment variable, values the pattern must take, values it must refuse)
CASES = [
    (
        "CouponReferenceSpend",
        "COUPON_REFERENCE_SPEND",
        ["0", "50", "49.99", "0.5", "1000000000", "999999999.123456"],
        ["-1", "1000000001", "50.", ".5", "1e3", " 50", "050", "50.1234567", ""],
    ),
    (
        "UserRetentionDays",
        "USER_RETENTION_DAYS",
        ["0", "1", "30", "99", "365", "999", "1000", "2999", "3599", "3649", "3650"],
        ["-1", "3651", "4000", "30.0", "1.5", " 30", "030", "1e2", ""],
    ),
    (
        "HistoryLength",
        "HISTORY_LENGTH",
        ["1", "10", "20", "89", "96"],
        ["0", "97", "10.0", "10.5", " 10", "010", ""],
    ),
    (
        "NeighboursPerItem",
        "NEIGHBOURS_PER_ITEM",
        ["1", "9", "50", "99", "100", "499", "500"],
        ["0", "501", "50.5", "1e2", "-5", "050", ""],
    ),
    (
        "CountRowBudgetKB",
        "COUNT_ROW_BUDGET_KB",
        ["0", "4", "9", "16", "99", "100", "399"],
        ["1", "3", "400", "401", "-1", "16.0", "16.5", " 16", "016", "1e2", ""],
    ),
    (
        "EventWeights",
        "EVENT_WEIGHTS",
        [
            "",
            "view=1,add_to_cart=1.5,remove_from_cart=0,purchase=2",
            "purchase=4",
            " view = 0.5 , purchase=10 ",
            "view=.5,view=2.",
            "purchase=1000,view=999.99",
        ],
        [
            "view=1000.5",  # past the largest weight (1,000)
            "purchase=1e3",
            "purchase=999999999999999999999",  # 1e21, once accepted: counts past DynamoDB's range
            "view=-1",
            "click=1",
            "view=1,",
            "view",
            "view=abc",
            "view=1e999",
            "view=1;purchase=2",
            ",",
            "view=" + "9" * 400,
        ],
    ),
    (
        "CouponModel",
        "COUPON_MODEL",
        [
            "",
            GOOD_MODEL,
            " " + GOOD_MODEL.replace(",", " , ") + " ",
            GOOD_MODEL.replace("-3.1", "-" + "9" * 200 + "e-99"),
        ],
        [
            ",".join(["1"] * (COUPON_MODEL_SIZE - 1)),
            ",".join(["1"] * (COUPON_MODEL_SIZE + 1)),
            GOOD_MODEL + ",",
            GOOD_MODEL.replace("-3.1", "x"),
            GOOD_MODEL.replace("-3.1", "1e999"),
            GOOD_MODEL.replace("-3.1", "nan"),
            GOOD_MODEL.replace("-3.1", "9" * 400),  # a float of infinity
        ],
    ),
]


def _accepted_by_functions(variable: str, value: str) -> bool:
    try:
        load_settings({variable: value})
    except ConfigurationError:
        return False
    return True


@pytest.mark.parametrize(("parameter", "variable", "good", "bad"), CASES, ids=[c[0] for c in CASES])
def test_pattern_takes_what_the_functions_accept_and_refuses_what_would_stop_them(
    parameter: str, variable: str, good: list[str], bad: list[str]
) -> None:
    spec = PARAMETERS[parameter]
    assert spec["Type"] == "String"
    pattern = spec["AllowedPattern"]
    assert re.fullmatch(pattern, str(spec["Default"])), "the default must pass its own pattern"
    for value in good:
        assert re.fullmatch(pattern, value), f"{parameter}={value!r} should be allowed"
        assert _accepted_by_functions(variable, value), f"{parameter}={value!r} allowed but refused at start"
    for value in bad:
        assert not re.fullmatch(pattern, value), f"{parameter}={value!r} should be refused at deploy"


def test_the_local_template_loader_checks_the_patterns_with_their_description() -> None:
    other = load_template(TEMPLATE, parameter_overrides={"HistoryLength": "20", "CouponModel": GOOD_MODEL})
    assert other.functions["ApiFunction"].environment["HISTORY_LENGTH"] == "20"
    with pytest.raises(TemplateError, match=r"HistoryLength='10\.5' is not a whole number from 1 to 96"):
        load_template(TEMPLATE, parameter_overrides={"HistoryLength": "10.5"})
    with pytest.raises(TemplateError, match="CouponModel='1,2,3' is not 11 comma-separated numbers"):
        load_template(TEMPLATE, parameter_overrides={"CouponModel": "1,2,3"})


def test_the_local_template_loader_checks_number_bounds_as_cloudformation_does() -> None:
    assert load_template(TEMPLATE, parameter_overrides={"ColdPopularShare": 0.25}).functions
    with pytest.raises(TemplateError, match=r"ColdPopularShare=2 is not within 0\.\.1"):
        load_template(TEMPLATE, parameter_overrides={"ColdPopularShare": 2})
    with pytest.raises(TemplateError, match="ApiThrottlingRateLimit='two' is not a number"):
        load_template(TEMPLATE, parameter_overrides={"ApiThrottlingRateLimit": "two"})
    # float() reads these too, and passed them on to the functions as written.
    for value in ("nan", "inf", "1_000", "1e999"):
        with pytest.raises(TemplateError, match=f"HalfLifeHours='{re.escape(value)}' is not a number"):
            load_template(TEMPLATE, parameter_overrides={"HalfLifeHours": value})
    assert load_template(TEMPLATE, parameter_overrides={"HalfLifeHours": "12.5"}).functions


# (parameter, values its pattern takes, values it refuses): each feeds an integer-only
# property, which a Number parameter would let a fraction reach, failing the deploy midway.
WHOLE_NUMBERS = [
    ("EventStreamShards", ["1", "2", "9", "10", "500", "9999"], ["0", "2.5", "-1", "01", "1e2", ""]),
    ("StreamRetentionHours", ["24", "29", "30", "99", "100", "159", "168"], ["23", "169", "24.5", "024", ""]),
    ("IngestRetryAttempts", ["-1", "0", "1", "5", "9999", "10000"], ["-2", "10001", "2.5", "05", "-0", ""]),
    ("ApiThrottlingBurstLimit", ["1", "20", "2000", "999999999"], ["0", "20.5", "-1", "020", ""]),
]


@pytest.mark.parametrize(("parameter", "good", "bad"), WHOLE_NUMBERS, ids=[c[0] for c in WHOLE_NUMBERS])
def test_integer_only_properties_take_whole_numbers_only(
    parameter: str, good: list[str], bad: list[str]
) -> None:
    spec = PARAMETERS[parameter]
    assert spec["Type"] == "String"
    assert re.fullmatch(spec["AllowedPattern"], spec["Default"])
    for value in good:
        assert load_template(TEMPLATE, parameter_overrides={parameter: value}).functions
    for value in bad:
        with pytest.raises(TemplateError, match=f"{parameter}='{re.escape(value)}' is not a whole number"):
            load_template(TEMPLATE, parameter_overrides={parameter: value})


def test_the_alarm_topic_is_empty_or_an_sns_topic_arn() -> None:
    pattern = PARAMETERS["AlarmTopicArn"]["AllowedPattern"]
    for value in [
        "",
        "arn:aws:sns:us-east-1:123456789012:oncall",
        "arn:aws-cn:sns:cn-north-1:123456789012:a.b-c_d",
    ]:
        assert re.fullmatch(pattern, value), value
    for value in ["oncall", "arn:aws:sqs:us-east-1:123456789012:oncall", "arn:aws:sns:us-east-1:1234:oncall"]:
        assert not re.fullmatch(pattern, value), value


def test_jwt_audiences_are_split_at_commas_without_spaces_or_empty_entries() -> None:
    # The template splits the value at each comma as given: "a, b" would make " b" an audience.
    pattern = PARAMETERS["JwtAudience"]["AllowedPattern"]
    for value in ["", "1example23clientid", "backend-client,shoppers-client", "a,b,c"]:
        assert re.fullmatch(pattern, value), value
    for value in ["a, b", "a,", ",a", "a,,b", " a", "a b"]:
        assert not re.fullmatch(pattern, value), value
    with pytest.raises(TemplateError, match="JwtAudience"):
        load_template(TEMPLATE, parameter_overrides={"JwtAudience": "a, b"})
