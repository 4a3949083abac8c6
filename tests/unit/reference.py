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
