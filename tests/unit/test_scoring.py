"""The numpy scoring core against small matrices computed by hand."""

import math

import numpy as np
import pytest
from streamrec_core import decay, personalized_scores, similarity, top_k
from streamrec_core.scoring import log_likelihood_ratio

# Three users, items A, B, C with unit weights:
#   u1: A B     u2: A B C     u3: C
# c_AA = 2, c_BB = 2, c_CC = 2, c_AB = 2, c_AC = 1, c_BC = 1; row of A over [B, C].
PAIRS_A = np.array([2.0, 1.0])
NORMS = np.array([2.0, 2.0])


def test_jaccard_by_hand():
    # AB: 2 / (2 + 2 - 2) = 1; AC: 1 / (2 + 2 - 1) = 1/3
    np.testing.assert_allclose(similarity("jaccard", PAIRS_A, 2.0, NORMS), [1.0, 1 / 3])


def test_cosine_by_hand():
    # AB: 2 / sqrt(2*2) = 1; AC: 1 / 2
    np.testing.assert_allclose(similarity("cosine", PAIRS_A, 2.0, NORMS), [1.0, 0.5])


def test_lift_by_hand():
    # AB: 2 / (2*2) = 0.5; AC: 1 / 4
    np.testing.assert_allclose(similarity("lift", PAIRS_A, 2.0, NORMS), [0.5, 0.25])


def test_llr_matches_hand_computed_contingency_table():
    # k11=10, k12=5, k21=3, k22=82 (total 100): entropies by hand with x ln x.
    def h(*ks):
        s = sum(ks)
        return s * math.log(s) - sum(k * math.log(k) for k in ks if k > 0)

    expected = 2 * (h(15, 85) + h(13, 87) - h(10, 5, 3, 82))
    got = log_likelihood_ratio(np.array([10.0]), 13.0, np.array([15.0]), 100.0)
    assert got[0] == pytest.approx(expected, rel=1e-12)


def test_llr_is_zero_for_independent_items():
    # P(A)=P(B)=1/2 and P(AB)=1/4 over 100: k11=25, k12=25, k21=25, k22=25.
    got = similarity("llr", np.array([25.0]), 50.0, np.array([50.0]), 100.0)
    assert got[0] == pytest.approx(0.0, abs=1e-9)


def test_llr_scores_a_pair_rarer_than_chance_zero():
    # Over 10,000: i in 1,000. A best-seller in 5,000 seen with i 10 times (chance: 500) is as
    # surprising to G² as a complement in 20 seen with i 10 times (chance: 2); only the
    # complement co-occurs more often than chance.
    got = similarity("llr", np.array([10.0, 10.0]), 1000.0, np.array([5000.0, 20.0]), 10000.0)
    assert got[0] == 0.0
    assert got[1] > 10.0


@pytest.mark.parametrize("measure", ["jaccard", "cosine", "confidence"])
def test_a_pair_counted_more_often_than_an_item_is_capped_at_it(measure):
    # A user whose history lets i leave and come back beside j (which stays) counts the pair
    # on each return while j counts once: c_ij = 5 > c_jj = 1. No pair co-occurs more often
    # than one of its items occurs: the scores are those of c_ij = 1 (at most 1).
    capped = similarity(measure, np.array([5.0]), 5.0, np.array([1.0]))
    np.testing.assert_allclose(capped, similarity(measure, np.array([1.0]), 5.0, np.array([1.0])))
    assert capped[0] <= 1.0


def test_added_value_by_hand():
    # Over N = 4 baskets, row of A over [B, C]: P(B|A) = 2/2, P(B) = 2/4; P(C|A) = 1/2, P(C) = 2/4.
    np.testing.assert_allclose(similarity("added_value", PAIRS_A, 2.0, NORMS, 4.0), [0.5, 0.0])
    np.testing.assert_allclose(similarity("added_value", PAIRS_A, 2.0, NORMS, 4.0, penalty=0.5), [0.75, 0.25])
    # penalty 0 is confidence; no baskets yet gives 0, not nan.
    np.testing.assert_allclose(
        similarity("added_value", PAIRS_A, 2.0, NORMS, 4.0, penalty=0.0),
        similarity("confidence", PAIRS_A, 2.0, NORMS),
    )
    assert np.all(similarity("added_value", PAIRS_A, 0.0, NORMS, 0.0) == 0.0)


@pytest.mark.parametrize("penalty", [1.0, 2.0])
def test_added_value_is_not_fooled_by_an_item_in_every_basket(penalty):
    # 1,000 baskets; i is in 100. "bag" is in every basket (so in all 100 of i's): confidence
    # 1.0, the top of i's row. "glue" is in 30 baskets, 20 of them with i: confidence 0.2.
    pairs, norms = np.array([100.0, 20.0]), np.array([1000.0, 30.0])
    conf = similarity("confidence", pairs, 100.0, norms)
    assert conf[0] > conf[1]  # confidence ranks the ubiquitous item first
    av = similarity("added_value", pairs, 100.0, norms, 1000.0, penalty=penalty)
    assert av[0] <= 0.0 < av[1]  # added value: the bag is no complement at all, glue is
    assert list(top_k(av, 2)) == [1]


def test_added_value_prefers_a_frequent_complement_to_a_rare_pair():
    # Plain lift's failure: a pair seen twice, partner in 2 of 1,000 baskets, lift 10,
    # beats a partner in 150 baskets, 40 of i's 100, lift 2.67. Added value ranks them the
    # other way (0.02 - 0.002 vs 0.4 - 0.15 with penalty 1).
    pairs, norms = np.array([2.0, 40.0]), np.array([2.0, 150.0])
    lift = similarity("lift", pairs, 100.0, norms)
    assert lift[0] > lift[1]
    av = similarity("added_value", pairs, 100.0, norms, 1000.0)
    assert av[1] > av[0] > 0.0


def test_added_value_rejects_a_negative_penalty():
    with pytest.raises(ValueError, match="penalty"):
        similarity("added_value", PAIRS_A, 2.0, NORMS, 4.0, penalty=-1.0)


def test_zero_denominators_give_zero_not_nan():
    scores = similarity("cosine", np.array([0.0, 1.0]), 0.0, np.array([0.0, 1.0]))
    assert np.all(np.isfinite(scores)) and scores[0] == 0.0


def test_unknown_measure_is_a_value_error():
    with pytest.raises(ValueError, match="unknown similarity measure"):
        similarity("pearson", PAIRS_A, 2.0, NORMS)


def test_top_k_orders_by_score_then_index_and_drops_non_positive():
    scores = np.array([0.2, 0.9, 0.0, 0.9, -1.0, 0.5])
    assert top_k(scores, 3).tolist() == [1, 3, 5]
    assert top_k(scores, 10).tolist() == [1, 3, 5, 0]
    assert top_k(scores, 0).tolist() == []
    # a tie at the cut keeps the lower index
    assert top_k(np.array([0.5, 0.7, 0.5, 0.5]), 2).tolist() == [1, 0]


def test_decay_halves_every_half_life():
    np.testing.assert_allclose(decay(np.array([0.0, 10.0, 20.0, -5.0]), 10.0), [1.0, 0.5, 0.25, 1.0])
    with pytest.raises(ValueError):
        decay(np.array([1.0]), 0.0)


def test_personalized_scores_by_hand():
    # Two history items (affinity 2 and 1) over three candidates.
    affinity = np.array([2.0, 1.0])
    sim = np.array([[0.5, 0.0, 0.1], [0.2, 0.9, 0.3]])
    scores, best = personalized_scores(affinity, sim)
    # x: 2*0.5 + 1*0.2 = 1.2 (from h0); y: 0 + 0.9 = 0.9 (h1); z: 0.2 + 0.3 = 0.5 (h1)
    np.testing.assert_allclose(scores, [1.2, 0.9, 0.5])
    assert best.tolist() == [0, 1, 1]


def test_personalized_scores_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape mismatch"):
        personalized_scores(np.array([1.0]), np.zeros((2, 3)))


def test_max_normalized_blend_by_hand():
    from streamrec_core import max_normalized_blend

    components = np.array([[2.0, 1.0, 0.0], [0.0, 5.0, 10.0], [0.0, 0.0, 0.0]])
    # 0.7 * [1, .5, 0] + 0.3 * [0, .5, 1] + 0 (an all-zero component adds nothing)
    np.testing.assert_allclose(max_normalized_blend(components, np.array([0.7, 0.3, 0.9])), [0.7, 0.5, 0.3])
    with pytest.raises(ValueError, match="shape mismatch"):
        max_normalized_blend(components, np.array([1.0]))


def test_personalized_scores_with_no_history_rows():
    scores, best = personalized_scores(np.zeros(0), np.zeros((0, 3)))
    assert scores.tolist() == [0.0, 0.0, 0.0] and best.tolist() == [0, 0, 0]
