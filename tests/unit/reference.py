"""A from-scratch, event-at-a-time reference of the stored counts and similarity rows.

Written independently of the domain code (plain dicts and floats, no batching, no
repositories) from the definitions in docs/internals.md: per user, the last ``history`` distinct
items with a_ui = the largest weight given; c_ii = sum of a_ui increments, c_ij = sum of
min(a_ui, a_uj) increments while both are in the window. An event more than
``late_seconds`` older than the newest event on the user's window items is late: it is
counted, but enters neither the window nor a basket. An add to the cart stamped at or
before its item's newest purchase or removal by the user is stale: it enters the window
but neither the cart nor a basket.
"""

from __future__ import annotations

import math
from collections import defaultdict


def reference_counts(events, weights, history, late_seconds=math.inf):
    """events: iterable of dicts (event_id, user_id, item_id, event_type, timestamp) in
    stream order.

    Returns (pair_counts {i: {j: c_ij}}, item_weight {i: c_ii}, event_counts {i: {type: n}},
    late {indices of the late events}, leaves {indices of the remove_from_cart events that
    took their item out of the cart}, checkouts {index of each cart add and purchase:
    (whether the cart held its item, the cart's items after it)}, stale {indices of the
    stale adds}). The cart: add_to_cart puts an item in, unless stale; remove_from_cart and
    purchase take it out; a late event puts nothing in, and takes its item out only when no
    window item shows a newer event on it.
    """
    windows: dict[str, list[list]] = defaultdict(list)  # [item, a_ui, its newest event time]
    carts: dict[str, list[str]] = defaultdict(list)
    leaves: set[int] = set()
    checkouts: dict[int, tuple[bool, frozenset[str]]] = {}
    seen_ids: dict[str, set] = defaultdict(set)
    pairs: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    norms: dict[str, float] = defaultdict(float)
    counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    late: set[int] = set()
    stale: set[int] = set()
    exits: dict[str, dict[str, float]] = defaultdict(dict)  # user -> item -> newest exit time
    for index, event in enumerate(events):
        user, item, weight = event["user_id"], event["item_id"], weights[event["event_type"]]
        if event["event_id"] in seen_ids[user]:
            continue
        seen_ids[user].add(event["event_id"])
        counts[item][event["event_type"]] += 1
        window = windows[user]
        when = float(event["timestamp"])
        cart, kind = carts[user], event["event_type"]
        removal = kind in ("remove_from_cart", "purchase") and item in cart
        carted = item in cart
        if window and when < max(s[2] for s in window) - late_seconds:
            late.add(index)
            removal = removal and not any(s[0] == item and s[2] > when for s in window)
        elif kind == "add_to_cart" and when <= exits[user].get(item, -math.inf):
            stale.add(index)
        elif kind == "add_to_cart" and item not in cart:
            cart.append(item)
        if kind in ("remove_from_cart", "purchase"):
            exits[user][item] = max(when, exits[user].get(item, when))
        if removal:
            cart.remove(item)
            if kind == "remove_from_cart":
                leaves.add(index)
        if kind in ("add_to_cart", "purchase"):
            checkouts[index] = (carted, frozenset(cart))
        if index in late:
            continue
        slot = next((s for s in window if s[0] == item), None)
        if slot is None:
            if weight <= 0:
                continue
            slot = [item, 0.0, when]
            window.append(slot)
            del window[:-history]
        else:
            window.remove(slot)
            window.append(slot)
            slot[2] = max(slot[2], when)
        old = slot[1]
        new = max(old, weight)
        if new <= old:
            continue
        slot[1] = new
        norms[item] += new - old
        for other, other_weight, _ in window:
            if other != item:
                gain = min(new, other_weight) - min(old, other_weight)
                if gain > 0:
                    pairs[item][other] += gain
                    pairs[other][item] += gain
    return pairs, norms, counts, late, leaves, checkouts, stale


def reference_rows(pairs, norms, measure, k):
    """{i: [(j, score), ...]} best first (ties by id), from the final counts."""
    rows = {}
    for item, row in pairs.items():
        scored = []
        for other, c in row.items():
            if c <= 0:
                continue
            a, b = norms[item], norms[other]
            c = min(c, a, b)  # no pair co-occurs more often than one of its items (docs/internals.md)
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


def reference_baskets(
    events,
    gap_seconds,
    kept,
    late=frozenset(),
    leaves=frozenset(),
    checkouts=None,
    open_cart_seconds=math.inf,
):
    """Basket co-occurrence from scratch: add_to_cart/purchase events sharing a basket_id,
    or (without one) a user's such events all within ``gap_seconds`` of each other, form a
    basket that counts its first ``kept`` distinct items, each once; a basket no purchase
    has counted in whose items the cart still holds (after the event: ``checkouts``, see
    reference_counts) stays open past the gap while its latest event is at most
    ``open_cart_seconds`` old. A purchase joins the current basket whatever
    its id when the cart held its item and the basket holds it (if a purchase has counted
    in the basket, only within ``gap_seconds``), or when no purchase has counted in the
    basket, the cart still holds an item of it and all lie within ``gap_seconds``; the
    basket takes its id (when it has one), and its earliest time becomes the purchase's
    when it joins a cart older than the gap. The ``late`` events (indices, see
    reference_counts) join none. A remove_from_cart that took
    its item out of the cart (``leaves``, see reference_counts) takes it out of the current
    basket and back from the counts, unless the basket is implicit and over (a purchase
    counted in it and its latest event more than ``gap_seconds`` before) or a purchase
    counted the item in it; a basket
    left empty no longer counts among the baskets.

    Returns (pairs {i: {j: baskets with both}}, baskets_of {i: baskets with i}, baskets).
    """
    seen_ids: dict[str, set] = defaultdict(set)
    # id, latest time, items, bought, earliest time
    current: dict[str, tuple[str, float, list[str], set[str], float]] = {}
    pairs: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, float] = defaultdict(float)
    total = 0
    for index, event in enumerate(events):
        user, item = event["user_id"], event["item_id"]
        if event["event_id"] in seen_ids[user]:
            continue
        seen_ids[user].add(event["event_id"])
        key, when = event.get("basket_id") or "", float(event["timestamp"])
        basket = current.get(user)
        if event["event_type"] == "remove_from_cart":
            if (
                index in leaves
                and basket
                and item in basket[2]
                and item not in basket[3]
                and (basket[0] or not basket[3] or when - basket[1] <= gap_seconds)
            ):
                basket[2].remove(item)
                counts[item] -= 1
                for other in basket[2]:
                    pairs[item][other] -= 1
                    pairs[other][item] -= 1
                if not basket[2]:
                    total -= 1
            continue
        if event["event_type"] not in ("add_to_cart", "purchase") or index in late:
            continue
        carted, cart = (checkouts or {}).get(index, (False, frozenset()))
        purchase = event["event_type"] == "purchase"
        if not basket or not basket[2]:
            same = False
        else:
            within_gap = max(basket[1], when) - min(basket[4], when) <= gap_seconds
            open_cart = (
                not basket[3] and when - basket[1] <= open_cart_seconds and any(h in cart for h in basket[2])
            )
            same = (
                (purchase and carted and item in basket[2] and (not basket[3] or within_gap))
                or (basket[0] == key and (bool(key) or within_gap or open_cart))
                or (purchase and open_cart and within_gap)
            )
        if same:
            assert basket is not None
            # A cart older than the gap checked out: its time starts at the checkout.
            restart = purchase and not basket[3] and max(basket[1], when) - min(basket[4], when) > gap_seconds
            start = when if restart else min(basket[4], when)
            basket = (key or basket[0], max(basket[1], when), basket[2], basket[3], start)
        else:
            basket = (key, when, [], set(), when)
            total += 1
        current[user] = basket
        if event["event_type"] == "purchase" and (item in basket[2] or len(basket[2]) < kept):
            basket[3].add(item)
        if item in basket[2] or len(basket[2]) >= kept:
            continue
        counts[item] += 1
        for other in basket[2]:
            pairs[item][other] += 1
            pairs[other][item] += 1
        basket[2].append(item)
    return pairs, counts, total
