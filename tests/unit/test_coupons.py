"""Coupon rules and scoring (pure), the category affinity kept by the ingest, exactly-once
redemptions on both adapters, and ``streamrec coupons load``."""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest
from jsonschema import Draft202012Validator
from streamrec_core import coupon_propensity, coupon_scores

from streamrec.cli import main
from streamrec.cli.coupons import read_coupon_file
from streamrec.domain.coupons import (
    COUPON_FEATURES,
    DUPLICATE,
    EXHAUSTED,
    REDEEMED,
    UNKNOWN,
    Coupon,
    CouponScope,
    CouponService,
    CouponSpec,
    InvalidCoupon,
    category_affinities,
    category_reason,
    coupon_record,
    parse_coupon,
    rank_coupons,
    scope_features,
)
from streamrec.domain.ingest import IngestService, SequencedEvent
from streamrec.domain.model import (
    POPULAR_CATEGORIES_ROW,
    CategoryAffinity,
    HistoryItem,
    PopularList,
    UserState,
    popularity_increment,
    sequence_key,
)
from streamrec.domain.similarity import SimilarityService
from streamrec.events import InvalidEvent, parse_event
from streamrec.repositories.base import COUPONS_PER_SCOPE, ScopeFullError
from streamrec.repositories.dynamodb import DynamoCouponRepository, DynamoTable
from streamrec.repositories.memory import (
    InMemoryChangePublisher,
    InMemoryCooccurrenceRepository,
    InMemoryCouponRepository,
    InMemoryItemStatsRepository,
    InMemorySimilarityRepository,
    InMemoryUserRepository,
)
from streamrec.settings import COUPON_MODEL_SIZE, ConfigurationError, Settings, load_settings
from tests.unit.conftest import BatchGetRecorder

NOW = 1_764_201_600.0
DAY = 86_400.0
SETTINGS = Settings()


def spec(**changes):
    body = {
        "scope": {"category": "camping"},
        "discount": {"kind": "percent", "value": 10},
        "valid_from": NOW - DAY,
        "valid_to": NOW + DAY,
        "budget": 10,
    }
    body.update(changes)
    return parse_coupon("c", body)


def coupon(coupon_id="c", remaining=10, **changes) -> Coupon:
    return Coupon(coupon_id, spec(**changes), remaining)


def user(**categories: float) -> UserState:
    state = UserState("u")
    state.categories = {c: CategoryAffinity(a, NOW, {"view": 3}) for c, a in categories.items()}
    return state


def test_coupon_scores_by_hand():
    # max-normalized affinity times (1 + w * value); no affinity -> 0
    scores = coupon_scores(np.array([2.0, 1.0, 0.0]), np.array([0.1, 0.5, 1.0]), 1.0)
    np.testing.assert_allclose(scores, [1.1, 0.75, 0.0])
    np.testing.assert_allclose(coupon_scores(np.zeros(2), np.ones(2), 1.0), [0.0, 0.0])
    with pytest.raises(ValueError, match="shape mismatch"):
        coupon_scores(np.ones(2), np.ones(3), 1.0)


def test_ranking_by_affinity_and_value_with_reasons():
    state = user(camping=1.0, kitchen=2.0)
    by_affinity = replace(SETTINGS, coupon_ranking="affinity")
    offered = rank_coupons(
        [
            coupon("camp-50", discount={"kind": "percent", "value": 50}),
            coupon("kitchen-5", scope={"category": "kitchen"}, discount={"kind": "percent", "value": 5}),
            coupon(
                "kitchen-amount",
                scope={"category": "kitchen"},
                discount={"kind": "amount", "value": 10},
                min_spend=100,
            ),
        ],
        state,
        NOW,
        3,
        by_affinity,
    )
    # kitchen: 1 * (1 + 0.1) = 1.1 (10 off 100) > 1 * 1.05; camping: 0.5 * 1.5 = 0.75
    assert [c.coupon_id for c in offered] == ["kitchen-amount", "kitchen-5", "camp-50"]
    assert offered[0].score == pytest.approx(1.1)
    assert offered[0].reasons == ["your activity in category kitchen: 3 views"]


@pytest.mark.parametrize(
    "rule, candidate, state",
    [
        ("expired", coupon(valid_from=NOW - 2 * DAY, valid_to=NOW), user(camping=1.0)),
        ("not yet valid", coupon(valid_from=NOW + 1, valid_to=NOW + DAY), user(camping=1.0)),
        ("exhausted", coupon(remaining=0), user(camping=1.0)),
        ("out of scope", coupon(scope={"category": "kitchen"}), user(camping=1.0)),
        ("out of scope (items)", coupon(scope={"items": ["stove"]}), user(camping=1.0)),
        ("unknown user", coupon(), None),
    ],
)
def test_never_offered(rule, candidate, state):
    assert rank_coupons([candidate], state, NOW, 3, SETTINGS) == [], rule


def test_per_user_limit_reached_is_never_offered():
    state = user(camping=1.0)
    state.redemptions = {"c": 1}
    assert rank_coupons([coupon()], state, NOW, 3, SETTINGS) == []
    assert rank_coupons([coupon(per_user_limit=2)], state, NOW, 3, SETTINGS) != []


def test_item_scope_uses_the_recent_items():
    state = user()
    state.items = [HistoryItem("stove", 2.0, 2.0, NOW, "purchase", "kitchen")]
    offered = rank_coupons([coupon(scope={"items": ["stove", "pan"]})], state, NOW, 3, SETTINGS)
    assert [(c.coupon_id, c.reasons) for c in offered] == [("c", ["it applies to stove, which you bought"])]
    # An item added to the cart: "added to your cart" while it is there, "looked at" once taken out.
    state.items = [HistoryItem("pan", 2.0, 2.0, NOW, "add_to_cart", "kitchen")]
    state.cart = ["pan"]
    offered = rank_coupons([coupon(scope={"items": ["stove", "pan"]})], state, NOW, 3, SETTINGS)
    assert offered[0].reasons == ["it applies to pan, which you added to your cart"]
    state.cart = []
    offered = rank_coupons([coupon(scope={"items": ["stove", "pan"]})], state, NOW, 3, SETTINGS)
    assert offered[0].reasons == ["it applies to pan, which you looked at"]


@pytest.mark.parametrize("ranking", ["model", "affinity"])
def test_a_shopper_back_after_years_is_still_offered_coupons_of_their_scopes(ranking):
    # 1,100 days at a 24-hour half-life: 0.5 ** 1100 underflows to 0 in float64.
    settings = replace(SETTINGS, coupon_ranking=ranking)
    away = NOW - 1100 * DAY
    state = UserState("u")
    state.categories = {"camping": CategoryAffinity(1.0, away, {"view": 3})}
    state.items = [HistoryItem("stove", 2.0, 2.0, away, "purchase", "kitchen")]
    assert category_affinities(state, NOW, settings) == {"camping": 0.0}
    candidates = [coupon("camp"), coupon("stove", scope={"items": ["stove"]})]
    offered = rank_coupons(candidates, state, NOW, 3, settings)
    assert sorted(c.coupon_id for c in offered) == ["camp", "stove"]
    # Never engaged is still never offered.
    assert rank_coupons([coupon(scope={"category": "kitchen"})], state, NOW, 3, settings) == []


@pytest.mark.parametrize(
    "body, message",
    [
        ({"scope": {"category": "a", "items": ["b"]}}, "exactly one of category or items"),
        ({"discount": {"kind": "percent", "value": 120}}, "at most 100"),
        # The percent's rule, not the value's own bound (1e9) that it is also past.
        ({"discount": {"kind": "percent", "value": 2e9}}, "discount: a percent discount is at most 100"),
        ({"discount": {"kind": "bogus", "value": 1}}, "discount.kind"),
        ({"valid_to": NOW - 2 * DAY}, "valid_to: must be after valid_from"),
        ({"valid_from": "2025-01-01T00:00:00"}, "time zone"),
        ({"budget": -1}, "budget"),
        ({"per_user_limit": 0}, "per_user_limit"),
        ({"surprise": 1}, "surprise"),
        ({"scope": {"items": ["bad id!"]}}, 'scope.items.0: "bad id!" is not an id: 1-128 characters'),
        ({"scope": "camping"}, "scope: must be a JSON object, got a string"),
        ({"scope": {"category": "  "}}, "scope.category: a category must not be blank"),
        ({"scope": {"category": "camp\ning"}}, "scope.category: a category must not hold control characters"),
        ({"discount": 5}, "discount: must be a JSON object, got a number"),
        ({"valid_from": -99_999_999_999_999}, "valid_from: must be from 2000-01-01 to 2100-01-01"),
        ({"valid_to": 99_999_999_999_999}, "valid_to: must be from 2000-01-01 to 2100-01-01"),
        ({"valid_from": "NaN"}, "valid_from: must be ISO-8601 with a zone or epoch seconds"),
        ({"valid_from": "1_761_955_200"}, "valid_from: must be ISO-8601 with a zone or epoch seconds"),
        (
            {"discount": {"kind": "amount", "value": float("nan")}},
            "discount.value: must be a finite number",
        ),
        ({"min_spend": float("inf")}, "min_spend: must be a finite number"),
        # JSON types are not coerced (like k in a cross-sell body): a string is not a number.
        (
            {"discount": {"kind": "amount", "value": "NaN"}},
            'discount.value: must be a JSON number, not a string \\("NaN"\\)',
        ),
        ({"min_spend": "Infinity"}, 'min_spend: must be a JSON number, not a string \\("Infinity"\\)'),
        ({"budget": "10"}, 'budget: must be a whole JSON number, not a string \\("10"\\)'),
        ({"per_user_limit": True}, "per_user_limit: must be a whole JSON number, not a boolean"),
        ({"budget": 10.5}, "budget: must be a whole JSON number, not a number with a fraction"),
        (
            {"discount": {"kind": "percent", "value": "5"}},
            "discount.value: must be a JSON number, not a string",
        ),
    ],
)
def test_invalid_coupons_are_refused_with_a_message(body, message):
    with pytest.raises(InvalidCoupon, match=message):
        spec(**body)


def test_a_percent_over_100_is_refused_whatever_its_python_type():
    # Not JSON's (files and bodies give int or float), but a Python caller's.
    from decimal import Decimal

    for value in (Decimal(200), np.float64(200.0), np.int64(200)):
        with pytest.raises(InvalidCoupon, match="a percent discount is at most 100"):
            spec(discount={"kind": "percent", "value": value})


def test_whole_counts_written_as_floats_are_the_integers():
    # JSON Schema's integer (the OpenAPI schema's) takes 1000.0, and many clients write every
    # number so: it was refused as "a number with a fraction".
    stored = spec(budget=1000.0, per_user_limit=2.0)
    assert (stored.budget, stored.per_user_limit) == (1000, 2)
    assert type(stored.budget) is int and type(stored.per_user_limit) is int


def test_a_window_the_wrong_way_round_is_named_with_the_other_problems():
    with pytest.raises(InvalidCoupon) as refused:
        spec(budget=-1, valid_to=NOW - 2 * DAY)
    assert "budget:" in str(refused.value) and "valid_to: must be after valid_from" in str(refused.value)


def test_a_repeated_scope_item_counts_once():
    assert spec(scope={"items": ["b", "a", "b"]}).scope.items == ["b", "a"]
    assert spec(scope={"items": ["a"] * 101}).scope.items == ["a"]  # one item, within the bound


def test_coupon_times_are_documented_as_the_parser_reads_them():
    documented = Draft202012Validator(CouponSpec.model_json_schema()["properties"]["valid_from"])
    for accepted in (1_761_955_200, 1_761_955_200.5, "2025-11-01T00:00:00Z", "1761955200"):
        assert documented.is_valid(accepted), accepted
        assert spec(valid_from=accepted).valid_from in (1_761_955_200.0, 1_761_955_200.5)
    for refused in (946_684_799, 4_102_444_801, True, None, ["2025-11-01T00:00:00Z"]):
        assert not documented.is_valid(refused), refused
        with pytest.raises(InvalidCoupon, match="valid_from"):
            spec(valid_from=refused)


def test_a_scope_is_documented_as_exactly_one_of_category_or_items():
    documented = Draft202012Validator(CouponScope.model_json_schema())
    for accepted in ({"category": "a"}, {"items": ["b"]}, {"category": "a", "items": None}):
        assert documented.is_valid(accepted) and spec(scope=accepted)
    for refused in ({}, {"category": "a", "items": ["b"]}, {"category": None}):
        assert not documented.is_valid(refused), refused
        with pytest.raises(InvalidCoupon, match="exactly one of category or items"):
            spec(scope=refused)


def test_coupon_ids_are_validated():
    with pytest.raises(InvalidCoupon, match="coupon_id is malformed"):
        coupon_record({"coupon_id": "#cat:x"})
    with pytest.raises(InvalidCoupon, match="^coupon_id is missing$"):
        coupon_record({k: v for k, v in LOAD_RECORD.items() if k != "coupon_id"})
    with pytest.raises(InvalidCoupon) as both:  # every problem of the record, not the first
        coupon_record({"scope": {"category": "a"}})
    assert str(both.value).startswith("coupon_id is missing; discount: Field required;")
    with pytest.raises(InvalidEvent, match="coupon_id"):
        parse_event({"event_id": "e", "event_type": "coupon_redeemed", "user_id": "u", "timestamp": NOW})
    with pytest.raises(InvalidEvent, match="coupon_id"):
        parse_event(
            {
                "event_id": "e",
                "event_type": "coupon_redeemed",
                "user_id": "u",
                "coupon_id": "x y",
                "timestamp": NOW,
            }
        )
    with pytest.raises(InvalidEvent, match="item_id"):
        parse_event({"event_id": "e", "event_type": "view", "user_id": "u", "timestamp": NOW})


def _event(n: int, kind: str, category: str | None = "camping", **extra) -> dict:
    return {
        "event_id": f"e{n}",
        "event_type": kind,
        "user_id": "u",
        "item_id": f"i{n}",
        "timestamp": NOW + n * 3600,
        **({"category": category} if category else {}),
        **extra,
    }


def _ingest(
    coupons, settings: Settings = SETTINGS, users=None
) -> tuple[IngestService, InMemoryUserRepository]:
    users = users if users is not None else InMemoryUserRepository()
    service = IngestService(
        settings,
        users,
        InMemoryCooccurrenceRepository(),
        InMemoryItemStatsRepository(),
        InMemoryChangePublisher(),
        coupons,
    )
    return service, users


def _sequenced(payloads, first=1):
    return [SequencedEvent(sequence_key(first + n), parse_event(p)) for n, p in enumerate(payloads)]


def test_ingest_keeps_a_decayed_weighted_category_affinity():
    service, users = _ingest(InMemoryCouponRepository())
    service.ingest(
        _sequenced([_event(0, "view"), _event(24, "purchase"), _event(25, "view", "kitchen")]), "s0"
    )
    state = users.get("u")
    camping = state.categories["camping"]
    # view 1 decayed by one half-life (24 h), plus purchase 4
    assert camping.affinity == pytest.approx(0.5 + 4.0)
    assert camping.counts == {"view": 1, "purchase": 1}
    assert set(state.categories) == {"camping", "kitchen"}


def test_ingest_keeps_decayed_counts_by_type_and_the_cart_count():
    service, users = _ingest(InMemoryCouponRepository())
    events = [
        _event(0, "view"),
        _event(24, "add_to_cart", item_id="tent"),
        _event(25, "add_to_cart", item_id="tent"),  # already in the cart
        _event(26, "add_to_cart", item_id="stove"),
        _event(27, "remove_from_cart", item_id="stove"),  # weight 0: only the cart count moves
        _event(48, "purchase", item_id="tent"),
        _event(12, "view", item_id="late"),  # out of order: counts at its own age
    ]
    service.ingest(_sequenced(events), "s0")
    camping = users.get("u").categories["camping"]
    assert camping.ref_time == NOW + 48 * 3600
    views, cart_adds, purchases = camping.decayed
    assert views == pytest.approx(0.5**2 + 0.5 ** (36 / 24))
    assert cart_adds == pytest.approx(0.5 ** (24 / 24) + 0.5 ** (23 / 24) + 0.5 ** (22 / 24))
    assert purchases == pytest.approx(1.0)
    assert camping.in_cart == 0  # tent bought, stove removed
    assert camping.counts == {"view": 2, "add_to_cart": 3, "purchase": 1}
    # the weighted affinity is the same decayed counts, weighted 1 / 2 / 4
    assert camping.affinity == pytest.approx(views + 2 * cart_adds + 4 * purchases)


def test_cart_count_follows_adds_and_removals():
    service, users = _ingest(InMemoryCouponRepository())
    events = [_event(1, "add_to_cart", item_id="tent"), _event(2, "add_to_cart", item_id="stove")]
    service.ingest(_sequenced(events), "s0")
    assert users.get("u").categories["camping"].in_cart == 2
    service.ingest(_sequenced([_event(3, "remove_from_cart", item_id="tent")], first=3), "s0")
    assert users.get("u").categories["camping"].in_cart == 1
    assert users.get("u").cart == ["stove"]


def test_scope_features_by_hand():
    state = UserState("u")
    state.categories = {
        # as of a day ago (one half-life): every decayed value halves by now
        "camping": CategoryAffinity(4.0, NOW - DAY, {"view": 2, "add_to_cart": 1}, (2.0, 1.0, 0.0), 1),
        "kitchen": CategoryAffinity(4.0, NOW, {"view": 4}, (4.0, 0.0, 0.0), 0),
    }
    state.items = [
        HistoryItem("stove", 2.0, 2.0, NOW, "purchase", "kitchen"),
        HistoryItem("pan", 1.0, 1.0, NOW - DAY, "view", "kitchen"),
    ]
    state.cart = ["stove"]
    coupons = [
        coupon("camp"),
        coupon("garden", scope={"category": "garden"}),
        coupon("stove", scope={"items": ["stove", "mug"]}),
    ]
    affinity, features = scope_features(coupons, state, NOW, SETTINGS)
    assert features.shape == (3, 10)
    np.testing.assert_allclose(affinity, [2.0, 0.0, 2.0])
    log = math.log1p
    # affinity, decayed views / cart adds / purchases, ever, recency, share, in cart
    np.testing.assert_allclose(
        features[0], [log(2), log(1), log(0.5), 0, log(2), log(1), 0, 0.5, 2 / 6, log(1)]
    )
    np.testing.assert_allclose(features[1], np.zeros(10))  # out of scope
    # items: stove held (bought, now), pan not in scope; total item affinity 2 + 0.5
    np.testing.assert_allclose(features[2], [log(2), 0, 0, log(1), 0, 0, log(1), 1.0, 2 / 2.5, log(1)])


def test_coupon_propensity_by_hand():
    features = np.array([[0.0, 0.0], [1.0, 2.0]])
    probabilities = coupon_propensity(features, np.array([-1.0, 1.0, 0.5]))
    np.testing.assert_allclose(probabilities, [1 / (1 + math.e), 1 / (1 + math.exp(-1))])
    with np.errstate(over="raise", invalid="raise"):  # no overflow at extreme logits
        np.testing.assert_allclose(coupon_propensity(features, np.array([1e4, 0.0, 0.0])), [1.0, 1.0])
        np.testing.assert_allclose(coupon_propensity(features, np.array([-1e4, 0.0, 0.0])), [0.0, 0.0])
    with pytest.raises(ValueError, match="shape mismatch"):
        coupon_propensity(features, np.ones(2))


def test_the_model_can_rank_against_the_affinity():
    # A category just bought from has the larger affinity; a model that has learnt "just
    # bought: less likely to buy again soon" ranks the other first.
    state = UserState("u")
    state.categories = {
        "bought": CategoryAffinity(4.0, NOW, {"purchase": 1}, (0.0, 0.0, 1.0)),
        "browsed": CategoryAffinity(3.0, NOW, {"view": 1, "add_to_cart": 1}, (1.0, 1.0, 0.0)),
    }
    coupons = [coupon(name, scope={"category": name}) for name in ("bought", "browsed")]
    weights = (0.0, 1.0, 0.0, 0.0, -3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    model = replace(SETTINGS, coupon_model=weights)
    offered = rank_coupons(coupons, state, NOW, 3, model)
    assert [c.coupon_id for c in offered] == ["browsed", "bought"]
    p_bought = 1 / (1 + math.exp(-(math.log1p(4.0) - 3 * math.log1p(1.0))))
    p_browsed = 1 / (1 + math.exp(-math.log1p(3.0)))
    assert offered[1].score == pytest.approx(p_bought / p_browsed * 1.1)  # 10 % off: value 0.1
    by_affinity = rank_coupons(coupons, state, NOW, 3, replace(model, coupon_ranking="affinity"))
    assert [c.coupon_id for c in by_affinity] == ["bought", "browsed"]


def test_the_coupon_models_size_is_its_features_and_an_intercept():
    # Settings checks COUPON_MODEL at cold start against this size: a feature added without
    # it would pass the check and fail every coupon request instead.
    assert COUPON_MODEL_SIZE == len(COUPON_FEATURES) + 1 == len(Settings().coupon_model)


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"COUPON_RANKING": "random"}, "COUPON_RANKING"),
        ({"COUPON_MODEL": "1,2,3"}, "has 3 weights; expected 11"),
        ({"COUPON_MODEL": "1,2,x"}, "comma-separated numbers"),
        ({"COUPON_MODEL": ",".join(["1"] * 10 + ["nan"])}, "finite"),
    ],
)
def test_coupon_settings_are_validated(environ, message):
    with pytest.raises(ConfigurationError, match=message):
        load_settings(environ)


def test_coupon_settings_from_the_environment():
    settings = load_settings({"COUPON_RANKING": "affinity", "COUPON_MODEL": ",".join(["0.5"] * 11)})
    assert settings.coupon_ranking == "affinity" and settings.coupon_model == (0.5,) * 11
    assert load_settings({}).coupon_model == Settings().coupon_model


def test_category_map_keeps_the_strongest():
    service, users = _ingest(InMemoryCouponRepository(), Settings(categories_kept=2))
    service.ingest(
        _sequenced([_event(0, "purchase", "a"), _event(1, "view", "b"), _event(2, "view", "c")]), "s0"
    )
    assert set(users.get("u").categories) == {"a", "c"}


def _redemption(n: int, coupon_id: str = "c") -> dict:
    return {
        "event_id": f"r{n}",
        "event_type": "coupon_redeemed",
        "user_id": "u",
        "coupon_id": coupon_id,
        "timestamp": NOW + n,
    }


def test_duplicate_and_replayed_redemptions_count_once_in_memory():
    coupons = InMemoryCouponRepository()
    coupons.put("c", spec(budget=5))
    service, users = _ingest(coupons)
    batch = _sequenced([_redemption(1), _redemption(1)])  # a producer duplicate (same event_id)
    plan = service.ingest(batch, "s0")
    assert plan.redemption_outcomes == [REDEEMED] and plan.duplicates == 1
    service.ingest(batch, "s0")  # Lambda re-delivers the batch
    assert coupons.get_many(["c"])["c"].remaining == 4
    assert users.get("u").redemptions == {"c": 1}


def test_a_user_row_keeps_the_coupons_redeemed_last(aws):
    import boto3

    from streamrec.repositories.dynamodb import DynamoUserRepository

    settings = replace(SETTINGS, redemptions_kept=3)
    for name, users in {
        "memory": InMemoryUserRepository(),
        "dynamodb": DynamoUserRepository(
            DynamoTable(aws.tables["UsersTable"].name, boto3.client("dynamodb"))
        ),
    }.items():
        coupons = InMemoryCouponRepository()
        for coupon_id in ("a", "b", "c", "d"):
            coupons.put(coupon_id, spec(budget=5))
        service, _ = _ingest(coupons, settings, users)
        service.ingest(_sequenced([_redemption(1, "a"), _redemption(2, "b"), _redemption(3, "c")]), "s0")
        # "a" again moves it to the end; then "d" pushes out the oldest, now "b".
        service.ingest(_sequenced([_redemption(4, "a"), _redemption(5, "d")], first=10), "s0")
        assert list(users.get("u").redemptions.items()) == [("c", 1), ("a", 2), ("d", 1)], name


def test_crash_before_the_user_write_is_replayed_exactly_once():
    coupons = InMemoryCouponRepository()
    coupons.put("c", spec(budget=5))
    service, users = _ingest(coupons)
    batch = _sequenced([_redemption(1), _redemption(2)])
    original = users.save_many
    users.save_many = lambda states: (_ for _ in ()).throw(RuntimeError("crash"))  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        service.ingest(batch, "s0")
    users.save_many = original  # type: ignore[method-assign]
    plan = service.ingest(batch, "s0")  # the retry: the coupon row's guard holds both records
    assert plan.redemption_outcomes == [DUPLICATE, DUPLICATE]
    assert coupons.get_many(["c"])["c"].remaining == 3
    assert users.get("u").redemptions == {"c": 2}


def _both(aws):
    import boto3

    table = DynamoTable(aws.tables["CouponsTable"].name, boto3.client("dynamodb"))
    return {"memory": InMemoryCouponRepository(), "dynamodb": DynamoCouponRepository(table)}


def test_a_coupon_stored_before_the_category_rule_is_read_back(aws):
    # Its scope's category is blank, which a definition is now refused for: reading it must
    # not fail every request whose candidates include it.
    repository = _both(aws)["dynamodb"]
    old = spec().model_copy(update={"scope": CouponScope.model_construct(category=" ", items=None)})
    repository.put("c", old)
    assert repository.get_many(["c"])["c"].spec.scope.category == " "


def test_adapters_redeem_exactly_once_and_never_below_zero(aws):
    outcomes = {}
    for name, repository in _both(aws).items():
        repository.put("c", spec(budget=2))
        seqs = [sequence_key(n) for n in (1, 2, 3)]
        outcomes[name] = [
            repository.redeem("c", seqs[0], "s0"),
            repository.redeem("c", seqs[0], "s0"),  # replay
            repository.redeem("c", seqs[1], "s1"),  # another shard, its own guard
            repository.redeem("c", seqs[2], "s0"),  # budget exhausted
            repository.redeem("nope", seqs[2], "s0"),
        ]
        stored = repository.get_many(["c"])["c"]
        assert (stored.remaining, stored.redeemed, stored.refused) == (0, 2, 1), name
        # A redefinition keeps the counts: remaining = budget - redeemed - refused (the use
        # refused past the old budget was honoured at the checkout all the same).
        assert repository.put("c", spec(budget=5)).remaining == 2
        assert repository.get_many(["c"])["c"].remaining == 2, name
        assert repository.put("c", spec(budget=1)).remaining == 0
        # The scope index follows the scope.
        repository.put("c", spec(scope={"items": ["stove", "pan"]}))
        assert repository.in_scope(["cat:camping"]) == set()
        assert repository.in_scope(["item:pan", "cat:x"]) == {"c"}
    assert outcomes["memory"] == outcomes["dynamodb"] == [REDEEMED, DUPLICATE, REDEEMED, EXHAUSTED, UNKNOWN]


def test_planning_refuses_a_redemption_of_a_coupon_not_defined():
    from streamrec.domain.ingest import UnknownCouponError, plan_batch

    batch = _sequenced([_event(0, "view"), _redemption(1, "c")])
    with pytest.raises(UnknownCouponError, match="coupon_redeemed names coupon 'c', which is not defined"):
        plan_batch({}, batch, "s0", SETTINGS, known_coupons={"other"})
    assert plan_batch({}, batch, "s0", SETTINGS, known_coupons={"c"}).users["u"].redemptions == {"c": 1}
    # Unchecked (no coupons table to ask): planned; the ingest then refuses the batch.
    assert plan_batch({}, batch, "s0", SETTINGS).redemptions == [(sequence_key(2), "c")]


def test_adapters_tell_which_coupons_are_defined_with_a_consistent_key_only_read(aws):
    import boto3

    client = BatchGetRecorder(boto3.client("dynamodb"))
    table = DynamoTable(aws.tables["CouponsTable"].name, client)
    for name, repository in {
        "memory": InMemoryCouponRepository(),
        "dynamodb": DynamoCouponRepository(table),
    }.items():
        repository.put("c", spec())
        assert repository.defined(["c", "nope", "c"]) == {"c"}, name
        assert repository.defined([]) == set(), name
    # A coupon put a moment ago counts (not an eventually consistent read), and no row's
    # spec is read or parsed.
    (request,) = [r[table.name] for r in client.requests]
    assert request["ConsistentRead"] is True and request["ProjectionExpression"] == "coupon_id"


def test_service_reads_candidates_through_the_scope_index(aws):
    for repository in _both(aws).values():
        users = InMemoryUserRepository()
        users.save_many([user(camping=1.0)])
        repository.put("camp", spec())
        repository.put("kitchen", spec(scope={"category": "kitchen"}))
        service = CouponService(SETTINGS, users, repository)
        assert [c.coupon_id for c in service.for_user("u", 3, NOW)] == ["camp"]
        assert service.for_user("nobody", 3, NOW) == []


def test_seen_purchased_counts_no_past_purchase_toward_an_item_list(aws):
    # A shop of durables: no discount offered on the stove just bought; the pan the user
    # only looked at still makes a list holding both one of the user's scopes.
    for name, repository in _both(aws).items():
        state = user(kitchen=1.0)
        state.items = [
            HistoryItem("stove", 2.0, 2.0, NOW, "purchase", "kitchen"),
            HistoryItem("pan", 1.0, 1.0, NOW, "view", "kitchen"),
        ]
        state.purchased = ["stove"]
        users = InMemoryUserRepository()
        users.save_many([state])
        repository.put("stove-only", spec(scope={"items": ["stove"]}))
        repository.put("stove-and-pan", spec(scope={"items": ["stove", "pan"]}))
        repository.put("kitchen", spec(scope={"category": "kitchen"}))
        service = CouponService(SETTINGS, users, repository)

        every_item = {c.coupon_id: c.reasons for c in service.for_user("u", 5, NOW)}
        assert every_item == {
            "stove-only": ["it applies to stove, which you bought"],
            "stove-and-pan": ["it applies to stove, which you bought"],
            "kitchen": ["your activity in category kitchen: 3 views"],
        }, name
        not_bought = {c.coupon_id: c.reasons for c in service.for_user("u", 5, NOW, seen="purchased")}
        # Category coupons count every event either way.
        assert not_bought == {
            "stove-and-pan": ["it applies to pan, which you viewed"],
            "kitchen": ["your activity in category kitchen: 3 views"],
        }, name
        with pytest.raises(ValueError, match="seen must be one of none, purchased"):
            service.for_user("u", 5, NOW, seen="history")


def test_seen_purchased_leaves_a_bought_item_out_of_engagement_features_and_cart():
    # The stove was bought and is in the cart again; the lantern is out of stock. With
    # seen=purchased neither counts toward a list: [stove, pan] ranks as [pan] does (same
    # features, same score) and [stove, lantern] is not one of the user's scopes.
    from streamrec.domain.model import OUT_OF_STOCK_ROW

    state = UserState("u")
    state.items = [
        HistoryItem("stove", 4.0, 4.0, NOW, "purchase", "kitchen"),
        HistoryItem("pan", 1.0, 1.0, NOW, "view", "kitchen"),
        HistoryItem("lantern", 1.0, 1.0, NOW, "view", "camping"),
    ]
    state.purchased = ["stove"]
    state.cart = ["stove"]
    repository = InMemoryCouponRepository()
    for coupon_id, items in {
        "stove-pan": ["stove", "pan"],
        "pan": ["pan"],
        "stove-lantern": ["stove", "lantern"],
    }.items():
        repository.put(coupon_id, spec(scope={"items": items}))
    stock = InMemorySimilarityRepository()
    stock.put_list(OUT_OF_STOCK_ROW, PopularList(items=[("lantern", NOW)]))
    service = CouponService(
        replace(SETTINGS, coupon_fill="none"), InMemoryUserRepository(), repository, stock
    )

    scores = {c.coupon_id: c.score for c in service.for_state(state, 5, NOW, seen="purchased")}
    assert set(scores) == {"stove-pan", "pan"}
    assert scores["stove-pan"] == scores["pan"]
    # Counted (the default), the purchase and the cart make [stove, pan] the better offer.
    counted = {c.coupon_id: c.score for c in service.for_state(state, 5, NOW)}
    assert set(counted) == {"stove-pan", "pan", "stove-lantern"}
    assert counted["stove-pan"] > counted["pan"]


def _popular_categories(*categories: str) -> InMemorySimilarityRepository:
    """A similarity repository holding ``#popular_categories``, most bought first."""
    popular = InMemorySimilarityRepository()
    ranked = [(category, 100.0 - n) for n, category in enumerate(categories)]
    popular.put_list(POPULAR_CATEGORIES_ROW, PopularList(items=ranked))
    return popular


def test_short_lists_are_filled_from_the_most_bought_categories(aws):
    for name, repository in _both(aws).items():
        state = user(camping=1.0)
        state.redemptions = {"toys": 1}
        users = InMemoryUserRepository()
        users.save_many([state])
        repository.put("camp", spec())
        repository.put("kitchen", spec(scope={"category": "kitchen"}))
        repository.put(
            "garden-5", spec(scope={"category": "garden"}, discount={"kind": "percent", "value": 5})
        )
        repository.put(
            "garden-20", spec(scope={"category": "garden"}, discount={"kind": "percent", "value": 20})
        )
        repository.put(
            "garden-old", spec(scope={"category": "garden"}, valid_from=NOW - 2 * DAY, valid_to=NOW)
        )
        repository.put("toys", spec(scope={"category": "toys"}))  # this user's limit reached
        repository.put("books", spec(scope={"category": "books"}, budget=0))  # exhausted
        repository.put("stove", spec(scope={"items": ["stove"]}))  # item lists never fill
        repository.put("shoes", spec(scope={"category": "shoes"}))  # not among the most bought
        popular = _popular_categories("books", "toys", "kitchen", "garden", "camping")
        service = CouponService(SETTINGS, users, repository, similarity=popular)

        offered = service.for_user("u", 5, NOW)
        # The user's own scope first, then by category rank (kitchen before garden), then
        # value (20 % before 5 %); expired, exhausted and used-up coupons are still refused.
        assert [c.coupon_id for c in offered] == ["camp", "kitchen", "garden-20", "garden-5"], name
        assert offered[0].score > 0 and [c.score for c in offered[1:]] == [0.0, 0.0, 0.0]
        assert offered[1].reasons == ["popular in the shop: category kitchen is among the most bought lately"]
        assert [c.coupon_id for c in service.for_user("u", 1, NOW)] == ["camp"]
        # An unknown user gets the fill alone.
        assert [c.coupon_id for c in service.for_user("nobody", 2, NOW)] == ["toys", "kitchen"]
        # Off, or with nothing bought yet, a list stays short.
        unfilled = CouponService(replace(SETTINGS, coupon_fill="none"), users, repository, similarity=popular)
        assert [c.coupon_id for c in unfilled.for_user("u", 5, NOW)] == ["camp"]
        nothing_bought = CouponService(SETTINGS, users, repository, similarity=InMemorySimilarityRepository())
        assert [c.coupon_id for c in nothing_bought.for_user("u", 5, NOW)] == ["camp"]


def test_the_fill_reads_the_most_bought_categories_a_chunk_at_a_time():
    class CountingCoupons(InMemoryCouponRepository):
        def __init__(self) -> None:
            super().__init__()
            self.reads: list[int] = []  # keys of each scope index read

        def in_scope(self, scope_keys):
            self.reads.append(len(scope_keys))
            return super().in_scope(scope_keys)

    repository = CountingCoupons()
    categories = [f"c{n}" for n in range(25)]
    repository.put("c0-old", spec(scope={"category": "c0"}, valid_from=NOW - 2 * DAY, valid_to=NOW))
    repository.put("c12", spec(scope={"category": "c12"}))
    repository.put("c13", spec(scope={"category": "c13"}))
    service = CouponService(
        SETTINGS, InMemoryUserRepository(), repository, similarity=_popular_categories(*categories)
    )
    # Nothing to offer among the 10 most bought: the next 10 are read, and the walk stops.
    assert [c.coupon_id for c in service.for_user("nobody", 1, NOW)] == ["c12"]
    assert repository.reads == [10, 10]
    repository.reads.clear()
    assert [c.coupon_id for c in service.for_user("nobody", 3, NOW)] == ["c12", "c13"]
    assert repository.reads == [10, 10, 5]
    # A stale index entry naming c12 again under c20 (a crash during a redefinition) does
    # not offer it twice.
    repository.index["cat:c20"] = {"c12"}
    assert [c.coupon_id for c in service.for_user("nobody", 3, NOW)] == ["c12", "c13"]
    # One naming c24's coupon under c1 does not end the walk before c12 and c13's chunk.
    repository.put("c24", spec(scope={"category": "c24"}))
    repository.index["cat:c1"] = {"c24"}
    repository.reads.clear()
    assert [c.coupon_id for c in service.for_user("nobody", 1, NOW)] == ["c12"]
    assert repository.reads == [10, 10]


def test_purchases_by_category_rank_the_popular_categories():
    users, stats, changes = InMemoryUserRepository(), InMemoryItemStatsRepository(), InMemoryChangePublisher()
    ingest = IngestService(
        SETTINGS, users, InMemoryCooccurrenceRepository(), stats, changes, InMemoryCouponRepository()
    )
    events = [
        _event(0, "purchase", "kitchen"),
        _event(1, "purchase", "garden"),
        _event(2, "purchase", "garden", quantity=5),  # one per purchase event, not per unit
        _event(3, "view", "toys"),  # views and cart adds are not purchases
        _event(4, "add_to_cart", "toys"),
        _event(5, "purchase", None),  # no category: counted nowhere
    ]
    # A crash after the count rows, before the user rows: Lambda re-delivers the batch, and
    # the #buys rows' own shard guards keep it from counting twice.
    save_many = users.save_many
    users.save_many = lambda states: (_ for _ in ()).throw(RuntimeError("crash"))  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        ingest.ingest(_sequenced(events), "s0")
    users.save_many = save_many  # type: ignore[method-assign]
    ingest.ingest(_sequenced(events), "s0")
    assert sorted(key for key in stats.rows if key.startswith("#buys:")) == ["#buys:garden", "#buys:kitchen"]

    def bought(*hours: int) -> float:
        half_life = SETTINGS.popularity_half_life_seconds
        return sum(popularity_increment(1.0, NOW + hour * 3600, half_life)[1] for hour in hours)

    rows = stats.get_many(["#buys:kitchen", "#buys:garden"])
    assert sum(rows["#buys:kitchen"].popularity.values()) == bought(0)
    assert sum(rows["#buys:garden"].popularity.values()) == bought(1, 2)

    similarity = InMemorySimilarityRepository()
    SimilarityService(SETTINGS, InMemoryCooccurrenceRepository(), stats, similarity).recompute(
        changes.changed, changes.norm_changed, changes.popular_changed
    )
    assert [c for c, _ in similarity.get_list(POPULAR_CATEGORIES_ROW).items] == ["garden", "kitchen"]


def test_popular_categories_keep_the_list_size_across_batches():
    settings = replace(SETTINGS, popular_category_list_size=2)
    users, stats, changes = InMemoryUserRepository(), InMemoryItemStatsRepository(), InMemoryChangePublisher()
    ingest = IngestService(
        settings, users, InMemoryCooccurrenceRepository(), stats, changes, InMemoryCouponRepository()
    )
    similarity = InMemorySimilarityRepository()
    lists = SimilarityService(settings, InMemoryCooccurrenceRepository(), stats, similarity)
    batches = [
        [_event(0, "purchase", "a"), *(_event(hour, "purchase", "b") for hour in (1, 2, 3))],
        # c overtakes both and pushes a out of the list; a's next purchase brings it back
        # into the merge, but not past b (forward decay: 1 + 2^(8/24) < 2^(1/24) + ... + 2^(3/24)).
        [_event(hour, "purchase", "c") for hour in (4, 5, 6, 7)],
        [_event(8, "purchase", "a")],
    ]
    ranked = []
    for n, batch in enumerate(batches):
        ingest.ingest(_sequenced(batch, first=10 * n + 1), "s0")
        lists.update_popular_lists(changes.popular_changed)
        changes.popular_changed.clear()
        ranked.append([c for c, _ in similarity.get_list(POPULAR_CATEGORIES_ROW).items])
    assert ranked == [["b", "a"], ["c", "b"], ["c", "b"]]


def test_coupon_fill_setting():
    assert load_settings({}).coupon_fill == "popular"
    assert load_settings({"COUPON_FILL": "none"}).coupon_fill == "none"
    with pytest.raises(ConfigurationError, match="COUPON_FILL='always'; expected one of"):
        load_settings({"COUPON_FILL": "always"})
    with pytest.raises(ConfigurationError, match="popular_category_list_size=0"):
        Settings(popular_category_list_size=0)


def test_the_api_reads_stock_and_popular_categories_from_the_similarity_table():
    from streamrec import wiring

    tables = {"USERS_TABLE": "users", "COUPONS_TABLE": "coupons"}
    # #out_of_stock is read whatever the fill: the similarity table is always needed.
    for fill in ("none", "popular"):
        with pytest.raises(ConfigurationError, match="SIMILARITY_TABLE"):
            wiring.coupon_service(load_settings({**tables, "COUPON_FILL": fill}), client=object())
    on_settings = load_settings({**tables, "SIMILARITY_TABLE": "similarity"})
    assert wiring.coupon_service(on_settings, client=object()).similarity is not None
    # The API function passes the recommendation service's cached repository: one cache.
    shared = InMemorySimilarityRepository()
    assert wiring.coupon_service(on_settings, client=object(), similarity=shared).similarity is shared


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# One record of a `streamrec coupons load` file, valid whenever the tests run (a load prunes
# the coupons expired by the wall clock, and says so).
LOAD_RECORD = {
    "coupon_id": "camp",
    "scope": {"category": "camping"},
    "discount": {"kind": "amount", "value": 5},
    "min_spend": 20,
    "valid_from": _iso(time.time() - 365 * DAY),
    "valid_to": _iso(time.time() + 5 * 365 * DAY),
    "budget": 3,
}


def test_coupons_load_names_every_bad_line_in_one_run(tmp_path):
    good = LOAD_RECORD
    path = tmp_path / "coupons.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({**good, "budget": -1}),
                "{not json",
                json.dumps(good),
                json.dumps({**good, "min_spend": "lots"}),
                '{"coupon_id": ',
            ]
        )
    )
    with pytest.raises(SystemExit) as failed:
        read_coupon_file(path)
    lines = str(failed.value).splitlines()
    assert lines[0] == "error: nothing loaded; invalid coupons:"
    assert [line.strip().split(": ", 1)[0] for line in lines[1:]] == [
        f"{path} line {n}" for n in (1, 2, 4, 5)
    ]
    assert "line 1: budget" in lines[1] and "line 2: not valid JSON" in lines[2]
    assert "line 4: min_spend" in lines[3] and "line 5: not valid JSON" in lines[4]


def test_coupons_load_command(aws, tmp_path, capsys, monkeypatch):
    good = LOAD_RECORD
    table = aws.tables["CouponsTable"].name
    path = tmp_path / "coupons.jsonl"
    path.write_text(
        json.dumps(good) + "\n" + json.dumps({**good, "coupon_id": "kitchen", "budget": -1}) + "\n"
    )
    with pytest.raises(SystemExit, match="line 2: budget"):
        main(["coupons", "load", str(path), "--table", table])
    listing = tmp_path / "coupons.json"
    listing.write_text(json.dumps([good, {**good, "coupon_id": "kitchen"}]))
    assert main(["coupons", "load", str(listing), "--table", table]) == 0
    assert "loaded 2 coupon(s)" in capsys.readouterr().out
    import boto3

    stored = DynamoCouponRepository(DynamoTable(table, boto3.client("dynamodb"))).get_many(
        ["camp", "kitchen"]
    )
    assert {c: s.remaining for c, s in stored.items()} == {"camp": 3, "kitchen": 3}
    with pytest.raises(SystemExit, match="not found"):
        main(["coupons", "load", str(listing), "--outputs", str(tmp_path / "missing.json")])
    # The default outputs file is relative to the current folder: the error says which one.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as failed:
        main(["coupons", "load", str(listing)])
    assert str(failed.value.code).startswith(f"error: .local/outputs.json not found (in {tmp_path}): ")
    # By default the table comes from the local stack's outputs file.
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"region": "us-east-1", "tables": {"CouponsTable": table}}))
    assert main(["coupons", "load", str(listing), "--outputs", str(outputs)]) == 0
    assert f"loaded 2 coupon(s) into {table}" in capsys.readouterr().out


def test_coupons_load_shows_progress_and_names_only_the_coupons_that_keep_redemptions(aws, tmp_path, capsys):
    import boto3

    table = aws.tables["CouponsTable"].name
    repository = DynamoCouponRepository(DynamoTable(table, boto3.client("dynamodb")))
    listing = tmp_path / "coupons.json"
    listing.write_text(json.dumps([LOAD_RECORD, {**LOAD_RECORD, "coupon_id": "kitchen"}]))
    assert main(["coupons", "load", str(listing), "--table", table]) == 0
    first = capsys.readouterr()
    # Not a line per coupon on stdout (a shop loads thousands): progress goes to stderr.
    assert first.out.splitlines() == [f"loaded 2 coupon(s) into {table}"]
    assert first.err.splitlines()[-1] == "loaded 2/2 coupons"
    repository.redeem(
        "camp", "49590338271490256608559692538361571095921575989136588898", "shardId-000000000000"
    )
    assert main(["coupons", "load", str(listing), "--table", table]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "1 redefined coupon(s) keep the redemptions already counted:",
        "  camp: remaining 2 of 3 (1 redeemed)",
        f"loaded 2 coupon(s) into {table}",
    ]
    # A shop redefining thousands sees the first SHOWN_KEPT of them.
    many = tmp_path / "many.jsonl"
    many.write_text("\n".join(json.dumps({**LOAD_RECORD, "coupon_id": f"c{n}"}) for n in range(22)))
    assert main(["coupons", "load", str(many), "--table", table]) == 0
    for n in range(22):
        repository.redeem(
            f"c{n}", "49590338271490256608559692538361571095921575989136588898", "shardId-000000000000"
        )
    assert main(["coupons", "load", str(many), "--table", table]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-4:] == [
        "  c18: remaining 2 of 3 (1 redeemed)",
        "  c19: remaining 2 of 3 (1 redeemed)",
        "  ... and 2 more",
        f"loaded 22 coupon(s) into {table}",
    ]
    assert "22 redefined coupon(s) keep the redemptions already counted:" in lines
    # Redemptions refused past the budget count against a redefinition too: named with them.
    single = tmp_path / "single.json"
    single.write_text(json.dumps({**LOAD_RECORD, "coupon_id": "once", "budget": 1}))
    assert main(["coupons", "load", str(single), "--table", table]) == 0
    for sequence in ("1", "2"):
        repository.redeem("once", sequence.rjust(56, "0"), "shardId-000000000000")
    single.write_text(json.dumps({**LOAD_RECORD, "coupon_id": "once", "budget": 5}))
    capsys.readouterr()
    assert main(["coupons", "load", str(single), "--table", table]) == 0
    assert "  once: remaining 3 of 5 (1 redeemed, 1 refused past the budget)" in capsys.readouterr().out


def test_a_category_reason_counts_events_not_items():
    entry = CategoryAffinity(9.0, NOW, {"view": 67, "add_to_cart": 13, "purchase": 1})
    assert category_reason("hiking", entry) == (
        "your activity in category hiking: 67 views, 13 cart adds, 1 purchase"
    )
    assert category_reason("hiking", CategoryAffinity(1.0, NOW, {"add_to_cart": 1})) == (
        "your activity in category hiking: 1 cart add"
    )
    assert category_reason("hiking", None) == "you showed interest in category hiking"


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-01T00:00:00Z",
        "2026-01-01t00:00:00z",  # RFC 3339 allows lower case
        "2026-01-01T01:00:00+01:00",
        1.7e9,
        1_700_000_000,
        "1700000000.5",
    ],
)
def test_coupon_times_are_read_like_event_timestamps(value):
    from streamrec.domain.coupons import _epoch
    from streamrec.events import epoch_seconds

    assert _epoch(value) == epoch_seconds(value)
    if isinstance(value, str) and value.startswith("2026-01-01"):
        assert epoch_seconds(value) == 1_767_225_600.0


@pytest.mark.parametrize(
    "value, event_reason, coupon_reason",
    [
        ("2026-01-01T00:00:00", "needs a time zone (e.g. Z or +02:00)", "needs a time zone (e.g. Z)"),
        ("soon", "must be ISO-8601 or epoch seconds", "must be ISO-8601 with a zone or epoch seconds"),
        (True, "must be ISO-8601 or epoch seconds", "must be ISO-8601 with a zone or epoch seconds"),
        # Too large for a float: out of both ranges, and no milliseconds hint.
        (10**400, "timestamp is more than a day in the future", "must be from 2000-01-01 to 2100-01-01"),
        ("1e999", "timestamp is more than a day in the future", "must be from 2000-01-01 to 2100-01-01"),
        # Strings float() reads that are not digits, and NaN, are no time at all.
        ("inf", "must be ISO-8601 or epoch seconds", "must be ISO-8601 with a zone or epoch seconds"),
        (" 1764288000", "must be ISO-8601 or epoch seconds", "must be ISO-8601 with a zone or epoch seconds"),
        (float("nan"), "must be ISO-8601 or epoch seconds", "must be ISO-8601 with a zone or epoch seconds"),
        (float("inf"), "timestamp is more than a day in the future", "must be from 2000-01-01 to 2100-01-01"),
        (-(10**400), "timestamp is before 2000-01-01", "must be from 2000-01-01 to 2100-01-01"),
    ],
)
def test_bad_times_are_named_in_each_schemas_words(value, event_reason, coupon_reason):
    from streamrec.domain.coupons import _epoch
    from streamrec.events import epoch_seconds

    with pytest.raises(ValueError) as event_error:
        epoch_seconds(value)
    assert str(event_error.value).endswith(event_reason) and "milliseconds" not in str(event_error.value)
    with pytest.raises(ValueError) as coupon_error:
        _epoch(value)
    assert str(coupon_error.value).endswith(coupon_reason)


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        (None, "null"),
        ([], "an array"),
        ("x", "a string"),
        (3, "a number"),
        (1.5, "a number"),
        (True, "a boolean"),
    ],
)
def test_a_record_that_is_not_an_object_is_named_in_json_terms(payload, named):
    # "got NoneType" / "got list" speak Python to a shop engineer writing JSON.
    with pytest.raises(InvalidEvent, match=f"^event must be a JSON object, got {named}$"):
        parse_event(payload)
    with pytest.raises(InvalidCoupon, match=f"^a coupon must be a JSON object, got {named}$"):
        coupon_record(payload)


def test_defining_a_coupon_prunes_the_expired_ones_of_its_scope(aws):
    # A shop running a campaign a week per category must not make every request read every
    # past campaign's coupon: the next definition in a scope takes the expired ones out.
    for name, repository in _both(aws).items():
        for week in range(3):
            start = NOW + week * 7 * DAY
            repository.put(f"week{week}", spec(valid_from=start, valid_to=start + 7 * DAY), now=start)
        repository.put("other-category", spec(scope={"category": "kitchen"}, valid_to=NOW + DAY), now=NOW)
        repository.put("listed", spec(scope={"items": ["stove", "pan"]}, valid_to=NOW + 7 * DAY), now=NOW)
        assert repository.in_scope(["cat:camping"]) == {"week2"}, name
        assert repository.in_scope(["cat:kitchen"]) == {"other-category"}, name  # not this scope
        # A coupon defined expired leaves at once (it could never be offered).
        repository.put("too-late", spec(scope={"category": "toys"}, valid_to=NOW), now=NOW)
        assert repository.in_scope(["cat:toys"]) == set(), name
        # Expired exactly at valid_to ([valid_from, valid_to)); ids without a row go too.
        repository.put("pan-deal", spec(scope={"items": ["pan"]}, valid_to=NOW + 8 * DAY), now=NOW + 7 * DAY)
        assert repository.in_scope(["item:pan"]) == {"pan-deal"}, name
        assert repository.in_scope(["item:stove"]) == {"listed"}, name  # not pruned: not in the scope
        # Without a clock (an old caller), nothing is pruned.
        repository.put("late", spec(scope={"category": "kitchen"}, valid_to=NOW + 30 * DAY))
        assert repository.in_scope(["cat:kitchen"]) == {"other-category", "late"}, name
        assert len(repository.prune_expired(["cat:kitchen", "cat:none"], NOW + DAY)) == 1, name
        assert repository.in_scope(["cat:kitchen"]) == {"late"}, name
        # The coupons themselves stay readable (their redemptions are the shop's record).
        assert set(repository.get_many(["week0", "other-category"])) == {"week0", "other-category"}, name


def test_a_coupon_redefined_while_its_scope_is_pruned_keeps_its_entry(aws, monkeypatch):
    import boto3

    table = DynamoTable(aws.tables["CouponsTable"].name, boto3.client("dynamodb"))
    repository = DynamoCouponRepository(table)
    repository.put("old", spec(valid_to=NOW))
    repository.put("gone", spec())
    table.call("delete_item", TableName=table.name, Key={"coupon_id": {"S": "gone"}})  # an id without a row
    # The prune reads "old" expired; before its transaction, "old" is redefined, valid again.
    real_call = table.call

    def redefine_first(operation, **kwargs):
        if operation == "transact_write_items":
            monkeypatch.setattr(table, "call", real_call)
            repository.put("old", spec(valid_to=NOW + 30 * DAY))
        return real_call(operation, **kwargs)

    monkeypatch.setattr(table, "call", redefine_first)
    assert len(repository.prune_expired(["cat:camping"], NOW + DAY)) == 0  # cancelled: nothing removed
    assert repository.in_scope(["cat:camping"]) == {"old", "gone"}
    assert len(repository.prune_expired(["cat:camping"], NOW + DAY)) == 1  # next time: the absent id
    assert repository.in_scope(["cat:camping"]) == {"old"}


def test_a_prune_between_the_index_and_the_row_write_cannot_unindex_a_redefinition(aws, monkeypatch):
    import boto3

    table = DynamoTable(aws.tables["CouponsTable"].name, boto3.client("dynamodb"))
    repository = DynamoCouponRepository(table)
    repository.put("c", spec(valid_to=NOW))
    real_call = table.call
    pruned = []

    def prune_before_the_row_write(operation, **kwargs):
        # The redefinition has indexed its scope and read the row; a prune elsewhere sees
        # the row still expired and takes the entry out before the row is written.
        if operation == "update_item" and kwargs["Key"] == {"coupon_id": {"S": "c"}} and not pruned:
            monkeypatch.setattr(table, "call", real_call)
            pruned.append(len(repository.prune_expired(["cat:camping"], NOW + DAY)))
            monkeypatch.setattr(table, "call", prune_before_the_row_write)
        return real_call(operation, **kwargs)

    monkeypatch.setattr(table, "call", prune_before_the_row_write)
    repository.put("c", spec(valid_to=NOW + 30 * DAY))
    assert pruned == [1]
    assert repository.in_scope(["cat:camping"]) == {"c"}


def test_a_definition_checks_at_most_a_sample_of_a_crowded_scope(aws):
    # 150 expired coupons listed: a definition checks 100 of them (reads bounded), the next
    # one, with fewer listed, the rest.
    for name, repository in _both(aws).items():
        for n in range(150):
            repository.put(f"old{n:03d}", spec(valid_to=NOW))
        repository.put("live1", spec(valid_to=NOW + 7 * DAY), now=NOW + DAY)
        left = repository.in_scope(["cat:camping"])
        assert "live1" in left and len(left) in (51, 52), name  # live1 itself may be drawn
        repository.put("live2", spec(valid_to=NOW + 7 * DAY), now=NOW + DAY)
        assert repository.in_scope(["cat:camping"]) == {"live1", "live2"}, name


def test_a_prune_that_fails_leaves_the_definition_done(aws, monkeypatch):
    import boto3

    from streamrec.repositories.base import RepositoryError

    table = DynamoTable(aws.tables["CouponsTable"].name, boto3.client("dynamodb"))
    repository = DynamoCouponRepository(table)
    repository.put("old", spec(valid_to=NOW))
    real_call = table.call

    def throttled(operation, **kwargs):
        if operation == "transact_write_items":
            raise RepositoryError("TransactWriteItems on coupons failed: ThrottlingException")
        return real_call(operation, **kwargs)

    monkeypatch.setattr(table, "call", throttled)
    stored = repository.put("new", spec(budget=4), now=NOW + DAY)
    assert (stored.coupon_id, stored.remaining) == ("new", 4)
    assert repository.in_scope(["cat:camping"]) == {"old", "new"}  # pruned next time


def test_a_prune_counts_coupons_not_index_entries(aws):
    for name, repository in _both(aws).items():
        repository.put("pair-deal", spec(scope={"items": ["tent", "stove"]}, valid_to=NOW))
        assert len(repository.prune_expired(["item:tent", "item:stove"], NOW)) == 1, name
        assert repository.in_scope(["item:tent", "item:stove"]) == set(), name


def test_a_coupon_left_listed_in_one_of_its_scopes_is_not_counted_as_taken_out(aws, monkeypatch):
    import boto3
    from botocore.exceptions import ClientError

    table = DynamoTable(aws.tables["CouponsTable"].name, boto3.client("dynamodb"))
    repository = DynamoCouponRepository(table)
    repository.put("pair", spec(scope={"items": ["stove", "tent"]}, valid_to=NOW))
    real_call = table.call

    def tent_cancelled(operation, **kwargs):
        if (
            operation == "transact_write_items"
            and "tent" in kwargs["TransactItems"][0]["Update"]["Key"]["coupon_id"]["S"]
        ):
            raise ClientError(
                {"Error": {"Code": "TransactionCanceledException", "Message": "race"}}, "TransactWriteItems"
            )
        return real_call(operation, **kwargs)

    monkeypatch.setattr(table, "call", tent_cancelled)
    assert repository.prune_expired(["item:stove", "item:tent"], NOW) == set()
    assert (repository.in_scope(["item:stove"]), repository.in_scope(["item:tent"])) == (set(), {"pair"})
    monkeypatch.setattr(table, "call", real_call)
    assert repository.prune_expired(["item:stove", "item:tent"], NOW) == {"pair"}  # the next prune


def test_indexed_scopes_lists_the_scopes_that_list_a_coupon(aws):
    for name, repository in _both(aws).items():
        assert repository.indexed_scopes() == [], name
        repository.put("camp", spec())
        repository.put("pair", spec(scope={"items": ["tent", "stove"]}, valid_to=NOW))
        assert repository.indexed_scopes() == ["cat:camping", "item:stove", "item:tent"], name
        # A scope whose every coupon was pruned lists none: it is not listed.
        assert repository.prune_expired(["item:tent", "item:stove"], NOW) == {"pair"}, name
        assert repository.indexed_scopes() == ["cat:camping"], name


def _scans_in_small_pages(monkeypatch, table: DynamoTable, rows: int) -> list:
    """Make the table's Scans read ``rows`` rows a page (coupon and index rows alike); the
    list returned fills with each page's start key (None for the first)."""
    real_call, pages = table.call, []

    def small_pages(operation, **kwargs):
        if operation == "scan":
            pages.append(kwargs.get("ExclusiveStartKey"))
            kwargs["Limit"] = rows
        return real_call(operation, **kwargs)

    monkeypatch.setattr(table, "call", small_pages)
    return pages


def test_indexed_scopes_reads_every_page_of_the_scan(aws, monkeypatch):
    import boto3

    table = DynamoTable(aws.tables["CouponsTable"].name, boto3.client("dynamodb"))
    repository = DynamoCouponRepository(table)
    for n in range(5):
        repository.put(f"c{n}", spec(scope={"category": f"cat{n}"}))
    pages = _scans_in_small_pages(monkeypatch, table, 3)
    assert repository.indexed_scopes() == [f"cat:cat{n}" for n in range(5)]
    assert len(pages) >= 4 and pages[0] is None


def test_coupons_prune_command_takes_expired_coupons_out_of_every_scope(aws, capsys, monkeypatch):
    import boto3

    import streamrec.cli

    table = aws.tables["CouponsTable"].name
    repository = DynamoCouponRepository(DynamoTable(table, boto3.client("dynamodb")))
    now = time.time()
    # Scopes never defined in again, so no definition prunes them: 3 category scopes and
    # an item-list coupon expired, a live coupon beside one of them.
    for category in ("tents", "stoves", "toys"):
        repository.put(
            f"old-{category}",
            spec(scope={"category": category}, valid_from=now - 9 * DAY, valid_to=now - DAY),
        )
    repository.put(
        "old-pair", spec(scope={"items": ["tent", "stove"]}, valid_from=now - 9 * DAY, valid_to=now - DAY)
    )
    repository.put("live-toys", spec(scope={"category": "toys"}, valid_from=now - DAY, valid_to=now + DAY))
    monkeypatch.setattr(streamrec.cli.coupons, "PRUNE_SCOPES_PER_STEP", 2)  # several steps: counted once each
    assert main(["coupons", "prune", "--table", table]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        f"4 expired coupon(s) left the index of {table} "
        "(5 scope(s) checked; never offered again, their rows kept)"
    ]
    assert captured.err.splitlines()[-1] == "checked 5/5 scopes"
    assert repository.indexed_scopes() == ["cat:toys"]
    assert repository.in_scope(["cat:toys", "cat:tents", "item:tent"]) == {"live-toys"}
    assert set(repository.get_many(["old-tents", "old-pair"])) == {"old-tents", "old-pair"}  # rows kept
    # Again: nothing left to take out.
    assert main(["coupons", "prune", "--table", table]) == 0
    assert capsys.readouterr().out.startswith(f"0 expired coupon(s) left the index of {table} (1 scope(s)")


def test_all_coupons_reads_every_coupon_row_and_no_index_row(aws, monkeypatch):
    repositories = _both(aws)
    pages = _scans_in_small_pages(monkeypatch, repositories["dynamodb"].table, 2)  # type: ignore[attr-defined]
    for name, repository in repositories.items():
        for n in range(7):
            repository.put(f"c{n}", spec(scope={"category": f"cat{n % 3}"}))
        coupons = sorted(repository.all_coupons(), key=lambda coupon: coupon.coupon_id)
        assert [c.coupon_id for c in coupons] == [f"c{n}" for n in range(7)], name
        assert all(c.remaining == 10 for c in coupons), name
    assert len(pages) >= 5 and pages[0] is None


def test_coupons_list_command_shows_each_coupon_its_state_and_counts(aws, capsys):
    import json

    import boto3

    table = aws.tables["CouponsTable"].name
    repository = DynamoCouponRepository(DynamoTable(table, boto3.client("dynamodb")))
    now = time.time()
    repository.put("b-live", spec(valid_from=now - DAY, valid_to=now + DAY))
    repository.put(
        "a-ended",
        spec(scope={"items": ["tent", "stove", "lamp", "mat"]}, valid_from=now - 9 * DAY, valid_to=now - DAY),
    )
    repository.put("c-spent", spec(budget=0, valid_from=now - DAY, valid_to=now + DAY))
    # Figures as given, not rounded to 6 digits (1.23457e+06), times to the second.
    large = {"kind": "amount", "value": 1234567.5}
    repository.put(
        "d-large", spec(discount=large, min_spend=12345.67, valid_from=now + 30, valid_to=now + 60)
    )
    assert main(["coupons", "list", "--table", table]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[:3]] == [
        ["a-ended", "expired"],
        ["b-live", "active"],
        ["c-spent", "exhausted"],
    ]
    assert (
        "items tent, stove, lamp (+1); 10% off;" in lines[0]
        and "remaining 10 of 10, redeemed 0, refused 0" in lines[0]
    )
    assert lines[3].startswith("d-large  scheduled  category camping; 1234567.5 off from 12345.67; ")
    valid_from, valid_to = lines[3].split("; ")[2].split("..")
    assert len(valid_from) == len(valid_to) == len("2026-11-29T15:28:38Z") and valid_from != valid_to
    assert lines[4] == f"4 coupons (1 active, 1 scheduled, 1 exhausted, 1 expired) in {table}"
    assert (
        main(["coupons", "list", "--table", table, "--state", "active", "--state", "exhausted", "--json"])
        == 0
    )
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(c["coupon_id"], c["state"], c["budget"]) for c in listed] == [
        ("b-live", "active", 10),
        ("c-spent", "exhausted", 0),
    ]


@pytest.mark.parametrize(
    ("value", "unit"),
    [
        (1_764_288_000_000, "milliseconds"),
        ("1764288000000", "milliseconds"),
        (1_764_288_000_000_000, "microseconds"),
    ],
)
def test_a_coupon_time_in_a_smaller_unit_than_seconds_is_told_so(value, unit):
    from streamrec.domain.coupons import _epoch

    with pytest.raises(ValueError) as error:
        _epoch(value)
    assert str(error.value) == f"must be from 2000-01-01 to 2100-01-01 (epoch seconds expected, not {unit})"


def test_a_coupon_time_given_as_a_date_alone_asks_for_a_time_of_day():
    from streamrec.domain.coupons import _epoch

    for value in ("2026-12-01", "2026-12-01Z"):
        with pytest.raises(ValueError, match="a date alone: give a time of day and a zone"):
            _epoch(value)


def test_a_coupons_value_is_the_share_of_a_typical_order_it_saves():
    # The shop's typical order (coupon_reference_spend, 50 by default), or the coupon's
    # minimum spend when larger: a 1-cent coupon is not 100 % off.
    cent = coupon("cent", discount={"kind": "amount", "value": 0.01})
    five_off_80 = coupon("five", discount={"kind": "amount", "value": 5}, min_spend=80)
    thirty = coupon("thirty", discount={"kind": "percent", "value": 30})
    half_off_big = coupon("big", discount={"kind": "percent", "value": 50}, min_spend=100_000)
    reference = SETTINGS.coupon_reference_spend
    assert reference == 50
    assert cent.relative_value(reference) == pytest.approx(0.01 / 50)
    assert five_off_80.relative_value(reference) == pytest.approx(5 / 80)
    assert thirty.relative_value(reference) == pytest.approx(0.3)
    assert half_off_big.relative_value(reference) == pytest.approx(0.5 * 50 / 100_000)
    offered = rank_coupons([cent, thirty, half_off_big], user(camping=1.0), NOW, 3, SETTINGS)
    assert offered[0].coupon_id == "thirty" and offered[0].score == pytest.approx(1.3)
    assert all(c.score < 1.001 for c in offered[1:])  # worth next to nothing: relevance alone
    # 0: against the minimum spend alone, as before.
    assert cent.relative_value(0) == 1.0 and half_off_big.relative_value(0) == 0.5


def test_the_reference_spend_is_read_from_the_environment_and_checked():
    from streamrec.settings import ConfigurationError, load_settings

    assert load_settings({"COUPON_REFERENCE_SPEND": "5000"}).coupon_reference_spend == 5000
    assert load_settings({"COUPON_REFERENCE_SPEND": "0"}).coupon_reference_spend == 0
    for bad in ("-1", "2e9", "nan", "fifty"):
        with pytest.raises(ConfigurationError, match="COUPON_REFERENCE_SPEND"):
            load_settings({"COUPON_REFERENCE_SPEND": bad})


def _redeemed_to_its_budget_of_one(aws):
    """The DynamoDB coupon repository with coupon c (budget 1) redeemed once, its table and
    the table's own ``call`` (for a test to wrap)."""
    repository = _both(aws)["dynamodb"]
    repository.put("c", spec(budget=1))
    assert repository.redeem("c", sequence_key(1), "s0") == REDEEMED
    return repository, repository.table, repository.table.call


def test_a_redefinition_racing_a_refused_redemption_reads_again(aws, monkeypatch):
    # The redefinition's write holds only while neither count moved since its read: a
    # redemption refused in between would otherwise be left out of remaining.
    repository, table, original = _redeemed_to_its_budget_of_one(aws)
    raced = []

    def refused_in_between(operation, **kwargs):
        if operation == "update_item" and "spec = :spec" in kwargs.get("UpdateExpression", "") and not raced:
            raced.append(repository.redeem("c", sequence_key(2), "s0"))  # refused: exhausted
        return original(operation, **kwargs)

    monkeypatch.setattr(table, "call", refused_in_between)
    assert repository.put("c", spec(budget=5)).remaining == 3  # 5 - 1 redeemed - 1 refused
    assert raced == [EXHAUSTED]
    stored = repository.get_many(["c"])["c"]
    assert (stored.remaining, stored.redeemed, stored.refused) == (3, 1, 1)


def test_a_redefinition_inside_a_refused_redemption_makes_it_a_redemption(aws, monkeypatch):
    # The other order: the redemption finds the coupon exhausted, then a redefinition with a
    # larger budget lands before it counts the refusal. Counted as refused, it left remaining
    # one too high: the coupon was offered and redeemed past its budget.
    repository, table, original = _redeemed_to_its_budget_of_one(aws)
    raced = []

    def redefined_in_between(operation, **kwargs):
        if operation == "get_item" and kwargs.get("ConsistentRead") and not raced:
            monkeypatch.setattr(table, "call", original)
            raced.append(repository.put("c", spec(budget=5)).remaining)  # 5 - 1 redeemed
            monkeypatch.setattr(table, "call", redefined_in_between)
        return original(operation, **kwargs)

    monkeypatch.setattr(table, "call", redefined_in_between)
    assert repository.redeem("c", sequence_key(2), "s0") == REDEEMED
    assert raced == [4]
    stored = repository.get_many(["c"])["c"]
    assert (stored.remaining, stored.redeemed, stored.refused) == (3, 2, 0)
    outcomes = [repository.redeem("c", sequence_key(n), "s0") for n in range(3, 7)]
    assert outcomes == [REDEEMED, REDEEMED, REDEEMED, EXHAUSTED]  # 5 in all, the budget


def test_an_item_list_coupon_with_nothing_in_stock_is_not_offered():
    from streamrec.domain.model import OUT_OF_STOCK_ROW, HistoryItem

    repository = InMemoryCouponRepository()
    repository.put("tent-only", spec(scope={"items": ["tent"]}))
    repository.put("tent-or-stove", spec(scope={"items": ["tent", "stove"]}))
    repository.put("camping", spec())
    state = user(camping=1.0)
    state.items = [HistoryItem("tent", 1.0, 1.0, NOW, "view"), HistoryItem("stove", 1.0, 1.0, NOW, "view")]
    users = InMemoryUserRepository()
    users.save_many([state])
    similarity = _popular_categories()
    similarity.put_list(OUT_OF_STOCK_ROW, PopularList(items=[("tent", NOW)]))
    service = CouponService(replace(SETTINGS, coupon_fill="none"), users, repository, similarity=similarity)
    offered = {c.coupon_id for c in service.for_state(users.get("u"), 10, NOW)}
    # The stove is in stock: a coupon that also applies to it stays; a category coupon is
    # never left out for stock.
    assert offered == {"tent-or-stove", "camping"}


def test_an_item_list_coupon_is_ranked_by_its_in_stock_items_alone():
    # The user looked only at the lantern, which is out of stock: a coupon for the lantern
    # and a tent is no offer for them (the tent they never looked at), and the reason must
    # not point at what cannot be bought. Once they look at the tent, it is offered for it.
    from streamrec.domain.model import OUT_OF_STOCK_ROW, HistoryItem

    repository = InMemoryCouponRepository()
    repository.put("lantern-or-tent", spec(scope={"items": ["lantern", "tent"]}))
    state = user(camping=1.0)
    state.items = [HistoryItem("lantern", 3.0, 3.0, NOW, "add_to_cart")]
    state.cart = ["lantern"]
    similarity = _popular_categories()
    similarity.put_list(OUT_OF_STOCK_ROW, PopularList(items=[("lantern", NOW)]))
    service = CouponService(
        replace(SETTINGS, coupon_fill="none"), InMemoryUserRepository(), repository, similarity=similarity
    )
    assert service.for_state(state, 3, NOW) == []
    state.items.append(HistoryItem("tent", 1.0, 1.0, NOW - 3600, "view"))
    [offered] = service.for_state(state, 3, NOW)
    assert offered.reasons == ["it applies to tent, which you viewed"]
    # In stock again: the lantern (the stronger interest) is the reason.
    similarity.put_list(OUT_OF_STOCK_ROW, replace(similarity.get_list(OUT_OF_STOCK_ROW), items=[]))
    [offered] = service.for_state(state, 3, NOW)
    assert offered.reasons == ["it applies to lantern, which you added to your cart"]


def test_the_stock_check_reads_through_the_apis_cached_path():
    # get_list is the similarity function's consistent compare-and-swap read: the API's
    # coupons must read #out_of_stock as the recommendations do, through the cache.
    from streamrec.domain.model import OUT_OF_STOCK_ROW, HistoryItem
    from streamrec.repositories.cache import CacheConfig, CachingSimilarityRepository

    class Recording(InMemorySimilarityRepository):
        reads = 0

        def get_many(self, item_ids, lists=(), consistent=False, row_lists=None):
            Recording.reads += 1
            assert not consistent, "the API read the stock list consistently"
            return super().get_many(item_ids, lists, consistent, row_lists)

    inner = Recording()
    inner.put_list(OUT_OF_STOCK_ROW, PopularList(items=[("tent", NOW)]))
    cached = CachingSimilarityRepository(inner, CacheConfig())
    repository = InMemoryCouponRepository()
    repository.put("tent-only", spec(scope={"items": ["tent"]}))
    state = user(camping=1.0)
    state.items = [HistoryItem("tent", 1.0, 1.0, NOW, "view")]
    service = CouponService(
        replace(SETTINGS, coupon_fill="none"), InMemoryUserRepository(), repository, cached
    )
    for _ in range(5):
        assert service.for_state(state, 3, NOW) == []
    assert Recording.reads == 1


def _fill_scope(repository, coupon_ids, valid_to, scope=None):
    """A scope listing ``coupon_ids`` (category camping, or ``scope``), each defined until
    ``valid_to``."""
    scope = scope or {"category": "camping"}
    key = f"cat:{scope['category']}" if "category" in scope else f"item:{scope['items'][0]}"
    if isinstance(repository, InMemoryCouponRepository):
        for coupon_id in coupon_ids:
            repository.put(coupon_id, spec(valid_to=valid_to, scope=scope))
        return
    # Written directly, in a few calls: hundreds of definitions through moto would be slow.
    defined = spec(valid_to=valid_to, scope=scope)
    repository.table.batch_put(
        [
            {
                "coupon_id": {"S": coupon_id},
                "spec": {"S": defined.model_dump_json()},
                "budget": {"N": "10"},
                "remaining": {"N": "10"},
                "redeemed": {"N": "0"},
            }
            for coupon_id in coupon_ids
        ]
    )
    repository.table.call(
        "update_item",
        TableName=repository.table.name,
        Key={"coupon_id": {"S": f"#scope:{key}"}},
        UpdateExpression="ADD coupons :ids",
        ExpressionAttributeValues={":ids": {"SS": list(coupon_ids)}},
    )


def test_a_scope_lists_at_most_its_cap_of_coupons_that_have_not_expired(aws):
    # Every request of a shopper engaged in a scope reads each coupon it lists, and an index
    # row of a few thousand ids passes DynamoDB's 400 KB: a full scope refuses a new coupon.
    for name, repository in _both(aws).items():
        _fill_scope(repository, [f"live{n:03d}" for n in range(COUPONS_PER_SCOPE - 1)], NOW + 30 * DAY)
        repository.put("ends-first", spec(valid_to=NOW + DAY), now=NOW)
        with pytest.raises(
            ScopeFullError, match=f"its scope, category 'camping', already lists {COUPONS_PER_SCOPE}"
        ):
            repository.put("one-more", spec(valid_to=NOW + 30 * DAY), now=NOW)
        assert repository.get_many(["one-more"]) == {}, name
        assert len(repository.in_scope(["cat:camping"])) == COUPONS_PER_SCOPE, name
        # A coupon the scope lists is redefined; other scopes are not held back.
        assert (
            repository.put("live000", spec(valid_to=NOW + 40 * DAY), now=NOW).spec.valid_to == NOW + 40 * DAY
        )
        repository.put("kitchen", spec(scope={"category": "kitchen"}), now=NOW)
        # An item-list coupon naming the full category's items is another scope.
        repository.put("tents", spec(scope={"items": ["tent-1", "tent-2"]}), now=NOW)
        # Once one has expired, the full scope is pruned whole and takes the new coupon.
        repository.put("one-more", spec(valid_to=NOW + 30 * DAY), now=NOW + DAY)
        listed = repository.in_scope(["cat:camping"])
        assert "one-more" in listed and "ends-first" not in listed, name
        assert len(listed) == COUPONS_PER_SCOPE, name


def test_a_refused_definition_leaves_no_entry_in_the_scopes_before_the_full_one(aws):
    # An item-list coupon is indexed item by item: when a later item's scope is full, the
    # earlier ones must not keep an entry the coupon's row does not name (a live coupon's
    # stale entry would hold a slot there until it expires).
    for name, repository in _both(aws).items():
        _fill_scope(
            repository, [f"y{n:03d}" for n in range(COUPONS_PER_SCOPE)], NOW + 30 * DAY, {"items": ["y"]}
        )
        repository.put("kitchen-deal", spec(scope={"category": "kitchen"}), now=NOW)
        for coupon_id in ("kitchen-deal", "brand-new"):
            with pytest.raises(ScopeFullError, match="its scope, item 'y', already lists"):
                repository.put(coupon_id, spec(scope={"items": ["x", "y"]}), now=NOW)
        assert repository.in_scope(["item:x"]) == set(), name
        assert repository.in_scope(["cat:kitchen"]) == {"kitchen-deal"}, name  # its own scope kept
        assert repository.get_many(["kitchen-deal"])["kitchen-deal"].spec.scope.category == "kitchen", name
        assert repository.get_many(["brand-new"]) == {}, name


def test_a_full_scope_is_a_409_naming_it(aws):
    from tests.unit.conftest import FakeLambdaContext, import_handler, load_event

    repository = _both(aws)["dynamodb"]
    _fill_scope(repository, [f"live{n:03d}" for n in range(COUPONS_PER_SCOPE)], time.time() + 30 * DAY)
    event = load_event("coupon_put.json")  # camping-10, scope category camping
    answer = import_handler("api").lambda_handler(event, FakeLambdaContext())
    assert answer["statusCode"] == 409, answer
    body = json.loads(answer["body"])
    assert body["error"] == "conflict"
    assert body["message"].startswith("coupon 'camping-10' not defined: its scope, category 'camping',")


def test_coupons_load_refuses_a_file_that_overfills_a_scope_and_stops_at_a_full_one(aws, tmp_path):
    table = aws.tables["CouponsTable"].name
    live = {**LOAD_RECORD, "valid_to": "2099-01-01T00:00:00Z"}
    too_many = tmp_path / "too-many.json"
    too_many.write_text(
        json.dumps(
            [{**live, "coupon_id": f"c{n}"} for n in range(COUPONS_PER_SCOPE + 1)]
            + [
                {
                    **live,
                    "coupon_id": f"gone{n}",
                    "valid_from": "2019-01-01T00:00:00Z",
                    "valid_to": "2020-01-01T00:00:00Z",
                }
                for n in range(3)
            ]
        )
    )
    with pytest.raises(
        SystemExit,
        match=f"nothing loaded.*than a scope lists \\({COUPONS_PER_SCOPE}\\):\n  category camping: 501$",
    ):
        main(["coupons", "load", str(too_many), "--table", table])
    assert _both(aws)["dynamodb"].get_many(["c0"]) == {}
    # The scope fills up with coupons defined elsewhere: the load stops there, saying so.
    _fill_scope(_both(aws)["dynamodb"], [f"c{n}" for n in range(COUPONS_PER_SCOPE)], time.time() + 30 * DAY)
    another = tmp_path / "another.json"
    another.write_text(
        json.dumps(
            [
                {**live, "coupon_id": "kitchen", "scope": {"category": "kitchen"}},
                {**live, "coupon_id": "late"},
            ]
        )
    )
    with pytest.raises(SystemExit, match="coupon 'late' not defined: its scope.*; loaded 1 of 2 coupon"):
        main(["coupons", "load", str(another), "--table", table])
    # A file that starts campaigns (first) and ends as many (after them) in the full scope
    # fits: the ended ones are defined first, which frees their slots.
    ended = {**live, "valid_from": "2019-01-01T00:00:00Z", "valid_to": "2020-01-01T00:00:00Z"}
    rotation = tmp_path / "rotation.json"
    rotation.write_text(
        json.dumps(
            [{**live, "coupon_id": f"next{n}"} for n in range(10)]
            + [{**ended, "coupon_id": f"c{n}"} for n in range(10)]
        )
    )
    assert main(["coupons", "load", str(rotation), "--table", table]) == 0
    listed = _both(aws)["dynamodb"].in_scope(["cat:camping"])
    assert {f"next{n}" for n in range(10)} <= listed and len(listed) == COUPONS_PER_SCOPE
