"""Forward-decayed popularity counters, by hand."""

import pytest

from streamrec.domain.model import (
    POPULARITY_EPOCH_SECONDS,
    POPULARITY_SCALE,
    popularity_at_epoch,
    popularity_increment,
)

DAY = 86_400.0


def test_increment_doubles_every_half_life_within_an_epoch():
    start = 100 * POPULARITY_EPOCH_SECONDS
    assert popularity_increment(1.0, start, DAY) == (100, POPULARITY_SCALE)
    assert popularity_increment(1.0, start + DAY, DAY) == (100, 2 * POPULARITY_SCALE)
    assert popularity_increment(4.0, start + 3 * DAY, DAY) == (100, 32 * POPULARITY_SCALE)


def test_counters_of_two_epochs_compare_in_one_scale():
    # An event at the end of epoch 100 and one at the start of epoch 101 (16 days later).
    older = popularity_increment(1.0, 101 * POPULARITY_EPOCH_SECONDS - DAY, DAY)
    newer = popularity_increment(1.0, 101 * POPULARITY_EPOCH_SECONDS, DAY)
    counters = {older[0]: older[1], newer[0]: newer[1]}
    # In epoch 101's scale the older event weighs half (one day older) of the newer one.
    assert popularity_at_epoch(counters, 101, DAY) == pytest.approx(POPULARITY_SCALE * 1.5)


def test_the_most_popular_padding_item_scores_exactly_one():
    from streamrec.domain.model import POPULAR_ROW, PopularList
    from streamrec.domain.recommend import _pad_with_popular

    # 7.3 * (1 / 7.3) is 0.9999999999999999 in floating point; 7.3 / 7.3 is 1.
    lists = {POPULAR_ROW: PopularList([("a", 7.3), ("b", 3.65)])}
    padded = _pad_with_popular([], lists, set(), 2)
    assert [(r.item_id, r.score) for r in padded] == [("a", 1.0), ("b", 0.5)]
