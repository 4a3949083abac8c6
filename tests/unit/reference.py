"""A from-scratch, event-at-a-time reference of the stored counts and similarity rows.

Written independently of the domain code (plain dicts and floats, no batching, no
repositories) from the definitions in the README: per user, the last ``history`` distinct
items with a_ui = the largest weight given; c_ii = sum of a_ui increments, c_ij = sum of
min(a_ui, a_uj) increments while both are in the window.
"""

from __future__ import annotations

import math
from collections import defaultdict


def reference_counts(events, weights, history):
    """events: iterable of dicts (event_id, user_id, item_id, event_type) in stream order.

    Returns (pair_counts {i: {j: c_ij}}, item_weight {i: c_ii}, event_counts {i: {type: n}}).
    """
    windows: dict[str, list[list]] = defaultdict(list)
    seen_ids: dict[str, set] = defaultdict(set)
    pairs: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    norms: dict[str, float] = defaultdict(float)
    counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for event in events:
        user, item, weight = event["user_id"], event["item_id"], weights[event["event_type"]]
        if event["event_id"] in seen_ids[user]:
            continue
        seen_ids[user].add(event["event_id"])
        counts[item][event["event_type"]] += 1
        window = windows[user]
        slot = next((s for s in window if s[0] == item), None)
        if slot is None:
            if weight <= 0:
                continue
            slot = [item, 0.0]
            window.append(slot)
            del window[:-history]
        else:
            window.remove(slot)
            window.append(slot)
        old = slot[1]
        new = max(old, weight)
        if new <= old:
            continue
        slot[1] = new
        norms[item] += new - old
        for other, other_weight in window:
            if other != item:
                gain = min(new, other_weight) - min(old, other_weight)
                if gain > 0:
                    pairs[item][other] += gain
                    pairs[other][item] += gain
    return pairs, norms, counts


def reference_rows(pairs, norms, measure, k):
    """{i: [(j, score), ...]} best first (ties by id), from the final counts."""
    rows = {}
    for item, row in pairs.items():
        scored = []
        for other, c in row.items():
            if c <= 0:
                continue
            a, b = norms[item], norms[other]
            c = min(c, a, b)  # no pair co-occurs more often than one of its items (README)
            if measure == "jaccard":
                score = c / (a + b - c)
            elif measure == "cosine":
                score = c / math.sqrt(a * b)
            elif measure == "lift":
                score = c / (a * b)
            else:
                raise ValueError(measure)
            if score > 0:
                scored.append((other, score))
        scored.sort(key=lambda pair: (-pair[1], pair[0]))
        rows[item] = scored[:k]
    return rows


def reference_baskets(events, gap_seconds, kept):
    """Basket co-occurrence from scratch: add_to_cart/purchase events sharing a basket_id,
    or (without one) a user's such events at most ``gap_seconds`` after the basket's latest
    one, form a basket that counts its first ``kept`` distinct items, each once.

    Returns (pairs {i: {j: baskets with both}}, baskets_of {i: baskets with i}, baskets).
    """
    seen_ids: dict[str, set] = defaultdict(set)
    current: dict[str, tuple[str, float, list[str]]] = {}
    pairs: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, float] = defaultdict(float)
    total = 0
    for event in events:
        user, item = event["user_id"], event["item_id"]
        if event["event_id"] in seen_ids[user]:
            continue
        seen_ids[user].add(event["event_id"])
        if event["event_type"] not in ("add_to_cart", "purchase"):
            continue
        key, when = event.get("basket_id") or "", float(event["timestamp"])
        basket = current.get(user)
        if basket and basket[2] and basket[0] == key and (key or when - basket[1] <= gap_seconds):
            basket = (key, max(basket[1], when), basket[2])
        else:
            basket = (key, when, [])
            total += 1
        current[user] = basket
        if item in basket[2] or len(basket[2]) >= kept:
            continue
        counts[item] += 1
        for other in basket[2]:
            pairs[item][other] += 1
            pairs[other][item] += 1
        basket[2].append(item)
    return pairs, counts, total
