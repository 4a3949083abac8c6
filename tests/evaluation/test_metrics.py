"""Metrics against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamrec.evaluation import metrics

# Five requests: hits at ranks 1, 3 and 10, a hit at 25 (outside K = 20) and a miss.
RANKS = [1, 3, 0, 25, 10]


def test_rank_of():
    assert metrics.rank_of("b", ["a", "b", "c"]) == 2
    assert metrics.rank_of("z", ["a", "b"]) == 0
    assert metrics.rank_of("a", []) == 0


def test_hit_rate():
    assert metrics.hit_rate(RANKS, 20) == pytest.approx(3 / 5)
    assert metrics.hit_rate(RANKS, 10) == pytest.approx(3 / 5)  # rank 10 is inside top-10
    assert metrics.hit_rate(RANKS, 9) == pytest.approx(2 / 5)
    assert metrics.hit_rate(RANKS, 1) == pytest.approx(1 / 5)
    assert metrics.hit_rate([], 20) == 0.0


def test_mrr():
    assert metrics.mrr(RANKS, 20) == pytest.approx((1 + 1 / 3 + 1 / 10) / 5)
    assert metrics.mrr(RANKS, 5) == pytest.approx((1 + 1 / 3) / 5)


def test_ndcg_one_relevant_item():
    # DCG = 1 / log2(rank + 1), IDCG = 1.
    expected = (1 / math.log2(2) + 1 / math.log2(4) + 1 / math.log2(11)) / 5
    assert metrics.ndcg(RANKS, 20) == pytest.approx(expected)
    assert metrics.ndcg([2], 20) == pytest.approx(1 / math.log2(3))


def test_coverage():
    assert metrics.coverage(["a", "b", "a", "c"], 10) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        metrics.coverage(["a"], 0)


def test_hr_curve():
    curve = metrics.hr_curve(RANKS)
    assert len(curve) == 20
    assert curve[0] == pytest.approx(0.2)  # HR@1
    assert curve[1] == pytest.approx(0.2)  # HR@2
    assert curve[2] == pytest.approx(0.4)  # HR@3
    assert curve[8] == pytest.approx(0.4)  # HR@9
    assert curve[9] == pytest.approx(0.6)  # HR@10
    assert curve[19] == pytest.approx(metrics.hit_rate(RANKS, 20))
    assert all(a <= b for a, b in zip(curve, curve[1:], strict=False))


def test_per_request_names():
    assert list(metrics.per_request("hr@20", RANKS)) == [1, 1, 0, 0, 1]
    with pytest.raises(ValueError):
        metrics.per_request("recall@20", RANKS)


def _naive_bootstrap(values, groups, resamples, seed):
    """One resample at a time, same draws as the vectorised version."""
    names = sorted(set(groups))
    rng = np.random.default_rng(seed)
    estimates = []
    for _ in range(resamples):
        picks = rng.integers(0, len(names), size=len(names))
        chosen = [names[p] for p in picks]
        total = sum(v for g in chosen for v, gg in zip(values, groups, strict=True) if gg == g)
        count = sum(1 for g in chosen for gg in groups if gg == g)
        estimates.append(total / count)
    return np.percentile(estimates, 2.5), np.percentile(estimates, 97.5)


def test_bootstrap_resamples_groups_and_pools_their_requests():
    values = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    groups = ["a", "a", "a", "b", "c", "c", "d"]
    got = metrics.bootstrap_intervals({"hr@20": values}, groups, resamples=300, seed=7)["hr@20"]
    assert got == pytest.approx(_naive_bootstrap(list(values), groups, 300, 7))
    assert 0.0 <= got[0] <= values.mean() <= got[1] <= 1.0


def test_bootstrap_is_reproducible_and_degenerate_cases():
    values = {"hr@20": np.array([1.0, 0.0, 1.0, 1.0]), "mrr@20": np.array([0.5, 0.0, 1.0, 0.25])}
    groups = [1, 2, 3, 4]
    first = metrics.bootstrap_intervals(values, groups)
    assert first == metrics.bootstrap_intervals(values, groups)
    one_group = metrics.bootstrap_intervals(values, [9, 9, 9, 9])
    assert one_group["hr@20"] == pytest.approx((0.75, 0.75))
    assert metrics.bootstrap_intervals({"hr@20": np.array([])}, []) == {"hr@20": (0.0, 0.0)}


def test_bootstrap_chunks_give_the_same_answer(monkeypatch):
    rng = np.random.default_rng(1)
    values = {"hr@20": rng.random(500)}
    groups = rng.integers(0, 60, 500)
    whole = metrics.bootstrap_intervals(values, groups, resamples=200)
    monkeypatch.setattr(metrics, "_CHUNK_FLOATS", 100)  # one resample per chunk
    chunked = metrics.bootstrap_intervals(values, groups, resamples=200)
    assert chunked["hr@20"] == pytest.approx(whole["hr@20"])


def test_compared_intervals_pair_the_methods_resamples():
    rng = np.random.default_rng(3)
    groups = rng.integers(0, 40, 400)
    noisy = (rng.random(400) < 0.3).astype(float)
    values = {
        "engine": {"hr@10": noisy + 0.1},  # leads "peer" by exactly 0.1 on every request
        "peer": {"hr@10": noisy},
        "twin": {"hr@10": noisy + 0.1, "mrr@10": noisy},  # mrr@10 has no engine counterpart
    }
    got = metrics.compared_intervals(values, groups, resamples=300)
    alone = metrics.bootstrap_intervals({"hr@10": noisy}, groups, resamples=300)["hr@10"]
    assert got["intervals"]["peer"]["hr@10"] == pytest.approx(list(alone))
    assert got["intervals"]["engine"]["hr@10"] == pytest.approx([alone[0] + 0.1, alone[1] + 0.1])
    assert got["intervals"]["twin"]["mrr@10"] == pytest.approx(list(alone))
    # Paired: a constant lead has no spread, however wide each method's own interval is.
    assert got["differences"]["peer"]["hr@10"] == pytest.approx([0.1, 0.1])
    assert got["differences"]["twin"] == {"hr@10": pytest.approx([0.0, 0.0])}
    assert "engine" not in got["differences"]
