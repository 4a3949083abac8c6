"""A seeded demo event generator: a small outdoor/sports/kitchen/electronics shop.

The catalogue has ten categories of 15-30 products each, with self-describing item ids
(``tent-2-person-ultralight``, ``coffee-grinder-burr``). Inside a category, products come
in *kits* that shoppers look at together (tent + sleeping bag + stove; espresso machine +
grinder + beans), and categories have complements (camping <-> hiking, coffee <->
kitchen). About 300 users (``user-0001``...) each have one or two interests; a session
views several items of one interest, mostly from one kit, sometimes crosses into a
complementary category, and may add to cart, remove from cart and purchase.

Every random choice comes from ``random.Random(seed)``, so a seed always gives the same
users, items, sessions and order. Only the timestamps move: they are spread over the
7 days before the reference time, which defaults to the real current time so that the
recommender's time decay makes sense when the demo is loaded.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CATALOG",
    "COMPLEMENTS",
    "DEFAULT_SEED",
    "Product",
    "demo_catalog",
    "demo_coupons",
    "demo_items",
    "demo_users",
    "generate_demo_events",
    "products",
]

DEFAULT_SEED = 20240601
DEFAULT_EVENTS = 6000
DEFAULT_USERS = 300
SPAN_SECONDS = 7 * 24 * 3600

# category -> kits of items often browsed together, and a price range (min, max).
CATALOG: dict[str, tuple[tuple[tuple[str, ...], ...], tuple[float, float]]] = {
    "camping": (
        (
            (
                "tent-2-person-ultralight",
                "sleeping-bag-down-minus5",
                "sleeping-pad-inflatable",
                "camping-stove-compact",
                "fuel-canister-230g",
                "cookset-titanium",
            ),
            (
                "tent-4-person-family",
                "sleeping-bag-rectangular-double",
                "camp-chair-folding",
                "camp-table-aluminium",
                "camping-stove-2-burner",
                "cooler-box-28l",
                "lantern-led",
            ),
            ("hammock-single-nylon", "tarp-3x3-silnylon", "bug-net-hammock", "underquilt-synthetic"),
            (
                "water-filter-squeeze",
                "headlamp-rechargeable",
                "dry-bag-20l",
                "multi-tool-compact",
                "first-aid-kit-outdoor",
            ),
        ),
        (12.0, 420.0),
    ),
    "hiking": (
        (
            (
                "hiking-boots-waterproof-men",
                "hiking-boots-waterproof-women",
                "hiking-socks-merino-3pack",
                "gaiters-lightweight",
            ),
            ("backpack-35l-daypack", "backpack-65l-trekking", "rain-cover-backpack", "hydration-bladder-2l"),
            ("trekking-poles-carbon", "trekking-poles-aluminium", "trail-map-case"),
            (
                "rain-jacket-3-layer",
                "fleece-midlayer",
                "softshell-pants",
                "merino-base-layer",
                "sun-hat-wide-brim",
            ),
        ),
        (9.0, 320.0),
    ),
    "running": (
        (
            (
                "trail-running-shoes-men",
                "trail-running-shoes-women",
                "running-socks-cushioned",
                "running-vest-hydration-5l",
                "soft-flask-500ml",
            ),
            (
                "road-running-shoes-men",
                "road-running-shoes-women",
                "running-shorts-2in1",
                "running-tights-winter",
                "running-cap-light",
            ),
            ("gps-running-watch", "heart-rate-chest-strap", "running-belt-phone", "sport-earbuds-wireless"),
            ("energy-gels-12pack", "electrolyte-tabs", "recovery-drink-mix"),
        ),
        (6.0, 380.0),
    ),
    "cycling": (
        (
            (
                "road-bike-helmet",
                "cycling-glasses-photochromic",
                "cycling-gloves-gel",
                "cycling-jersey-short",
                "bib-shorts-padded",
            ),
            (
                "bike-light-set-usb",
                "bike-lock-u-lock",
                "bike-bell-minimal",
                "bike-pump-floor",
                "mini-pump-frame",
            ),
            ("bike-computer-gps", "cadence-sensor", "speed-sensor", "phone-mount-stem"),
            ("tyre-levers-set", "inner-tube-700c", "puncture-repair-kit", "chain-lube-dry", "bike-multitool"),
        ),
        (5.0, 350.0),
    ),
    "fitness": (
        (
            (
                "adjustable-dumbbells-24kg",
                "weight-bench-foldable",
                "barbell-olympic-20kg",
                "weight-plates-bumper-set",
                "lifting-belt-leather",
            ),
            ("resistance-bands-set", "pull-up-bar-doorway", "push-up-handles", "ab-wheel-roller"),
            ("kettlebell-12kg", "kettlebell-16kg", "kettlebell-24kg", "chalk-block"),
            (
                "jump-rope-speed",
                "foam-roller-textured",
                "massage-gun-compact",
                "gym-towel-microfibre",
                "shaker-bottle-700ml",
            ),
        ),
        (7.0, 450.0),
    ),
    "yoga": (
        (
            ("yoga-mat-natural-rubber", "yoga-mat-travel", "yoga-mat-bag", "yoga-towel-non-slip"),
            (
                "yoga-blocks-cork-2pack",
                "yoga-strap-cotton",
                "meditation-cushion-buckwheat",
                "yoga-bolster-round",
            ),
            ("yoga-leggings-high-waist", "yoga-top-seamless", "yoga-socks-grip"),
            ("yoga-wheel-cork", "yoga-mat-cleaner-spray", "balance-board-wood", "pilates-ring"),
        ),
        (8.0, 120.0),
    ),
    "coffee": (
        (
            (
                "espresso-machine",
                "coffee-grinder-burr",
                "milk-frother-jug",
                "espresso-tamper",
                "coffee-beans-espresso-roast",
                "knock-box",
            ),
            (
                "pour-over-dripper",
                "gooseneck-kettle",
                "paper-filters-100",
                "coffee-scale-timer",
                "coffee-beans-light-roast",
            ),
            (
                "french-press-1l",
                "coffee-beans-dark-roast",
                "hand-grinder-ceramic",
                "coffee-canister-airtight",
            ),
            ("aeropress-go", "cold-brew-maker", "travel-mug-insulated", "descaler-tablets"),
        ),
        (6.0, 650.0),
    ),
    "kitchen": (
        (
            (
                "chef-knife-20cm",
                "santoku-knife",
                "knife-sharpener-whetstone",
                "cutting-board-walnut",
                "knife-block-magnetic",
            ),
            ("cast-iron-skillet-26cm", "dutch-oven-enamel", "nonstick-pan-28cm", "stainless-saucepan-set"),
            (
                "stand-mixer",
                "mixing-bowls-nesting",
                "digital-kitchen-scale",
                "silicone-baking-mats",
                "bread-proofing-basket",
            ),
            ("blender-high-speed", "food-processor", "immersion-blender", "spice-grinder-electric"),
        ),
        (9.0, 520.0),
    ),
    "audio": (
        (
            (
                "noise-cancelling-headphones",
                "headphone-stand-wood",
                "headphone-case-hard",
                "usb-c-audio-dongle",
            ),
            ("true-wireless-earbuds", "earbuds-tips-foam", "wireless-charging-pad"),
            ("bluetooth-speaker-waterproof", "smart-speaker-mini", "soundbar-compact", "subwoofer-wireless"),
            ("turntable-belt-drive", "bookshelf-speakers-pair", "phono-preamp", "vinyl-cleaning-kit"),
        ),
        (12.0, 600.0),
    ),
    "computing": (
        (
            ("laptop-14-inch-ultrabook", "laptop-sleeve-14", "usb-c-hub-7in1", "laptop-stand-aluminium"),
            ("mechanical-keyboard-tkl", "wireless-mouse-ergonomic", "desk-mat-large", "wrist-rest-keyboard"),
            ("monitor-27-inch-4k", "monitor-arm-single", "webcam-1080p", "usb-microphone-cardioid"),
            ("portable-ssd-1tb", "usb-flash-drive-128gb", "power-bank-20000mah", "usb-c-charger-65w"),
        ),
        (10.0, 1400.0),
    ),
}

COMPLEMENTS: dict[str, tuple[str, ...]] = {
    "camping": ("hiking",),
    "hiking": ("camping", "running"),
    "running": ("fitness", "audio"),
    "cycling": ("running",),
    "fitness": ("yoga", "running"),
    "yoga": ("fitness",),
    "coffee": ("kitchen",),
    "kitchen": ("coffee",),
    "audio": ("computing",),
    "computing": ("audio",),
}


@dataclass(frozen=True)
class Product:
    """One catalogue item."""

    item_id: str
    category: str
    kit: int
    price: float


def products(seed: int = DEFAULT_SEED) -> dict[str, Product]:
    """The catalogue (item id -> product), prices drawn from ``seed``."""
    rng = random.Random(seed)
    catalog: dict[str, Product] = {}
    for category, (kits, (low, high)) in CATALOG.items():
        for kit_index, kit in enumerate(kits):
            for position, item_id in enumerate(kit):
                # Log-uniform prices; the first item of a kit is its main (dearer) product,
                # the others are accessories.
                u = rng.uniform(0.55, 1.0) if position == 0 else rng.uniform(0.0, 0.35)
                price = round(max(round(low * (high / low) ** u) - 0.01, 0.99), 2)
                catalog[item_id] = Product(item_id, category, kit_index, price)
    return catalog


def _pick(rng: random.Random, items: Sequence[str]) -> str:
    """A Zipf-like pick: the first items of a kit are the popular ones."""
    weights = [1.0 / (rank + 1) for rank in range(len(items))]
    return rng.choices(items, weights=weights, k=1)[0]


def generate_demo_events(
    n_events: int = DEFAULT_EVENTS,
    *,
    n_users: int = DEFAULT_USERS,
    seed: int = DEFAULT_SEED,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """``n_events`` user events in timestamp order, as JSON-ready dicts.

    Each event has ``event_id``, ``event_type`` (view | add_to_cart | remove_from_cart |
    purchase), ``user_id``, ``item_id``, ``timestamp`` (epoch seconds, within the 7 days
    before ``now``), ``session_id``, ``category``, ``price`` and ``quantity``.
    """
    if n_events < 0 or n_users < 1:
        raise ValueError("n_events must be >= 0 and n_users >= 1")
    rng = random.Random(seed)
    catalog = products(seed)
    reference = int(time.time() if now is None else now)
    by_kit: dict[tuple[str, int], list[str]] = defaultdict(list)
    for product in catalog.values():
        by_kit[(product.category, product.kit)].append(product.item_id)
    categories = list(CATALOG)

    users = [f"user-{i:04d}" for i in range(1, n_users + 1)]
    interests = {u: rng.sample(categories, k=rng.choice((1, 1, 2))) for u in users}
    # Skewed activity: a few users browse a lot, most a little; everyone at least once.
    activity = [min(rng.lognormvariate(0.0, 0.8), 8.0) for _ in users]
    first_sessions = list(users)
    rng.shuffle(first_sessions)

    raw: list[tuple[int, str, str, str, str]] = []  # (timestamp, type, user, item, session)
    session_no = 0
    while len(raw) < n_events:
        user = first_sessions.pop() if first_sessions else rng.choices(users, weights=activity, k=1)[0]
        session_no += 1
        session = f"s-{session_no:05d}"
        category = rng.choice(interests[user])
        kits = len(CATALOG[category][0])
        kit = by_kit[(category, rng.randrange(kits))]
        t = reference - rng.randint(600, SPAN_SECONDS)
        viewed: list[str] = []
        for _ in range(rng.randint(2, 7)):
            roll = rng.random()
            if roll < 0.7:
                item = _pick(rng, kit)
            elif roll < 0.85:
                item = _pick(rng, by_kit[(category, rng.randrange(kits))])
            else:
                other = rng.choice(COMPLEMENTS[category])
                item = _pick(rng, by_kit[(other, rng.randrange(len(CATALOG[other][0])))])
            viewed.append(item)
            raw.append((t, "view", user, item, session))
            t += rng.randint(15, 240)
        cart: list[str] = []
        for item in dict.fromkeys(viewed):
            if rng.random() < 0.25:
                cart.append(item)
                raw.append((t, "add_to_cart", user, item, session))
                t += rng.randint(10, 120)
        if cart and rng.random() < 0.2:
            removed = cart.pop(rng.randrange(len(cart)))
            raw.append((t, "remove_from_cart", user, removed, session))
            t += rng.randint(10, 60)
        if cart and rng.random() < 0.55:
            for item in cart:
                raw.append((t, "purchase", user, item, session))
            t += 1
    raw = raw[:n_events]
    raw.sort(key=lambda r: r[0])

    events: list[dict[str, Any]] = []
    for index, (timestamp, event_type, user, item, session) in enumerate(raw, start=1):
        product = catalog[item]
        quantity = rng.choice((1, 1, 1, 2)) if event_type in ("add_to_cart", "purchase") else 1
        events.append(
            {
                "event_id": f"demo-{seed}-{index:06d}",
                "event_type": event_type,
                "user_id": user,
                "item_id": item,
                "timestamp": min(timestamp, reference),
                "session_id": session,
                "category": product.category,
                "price": product.price,
                "quantity": quantity,
            }
        )
    return events


def demo_users(n: int = 3, events: Sequence[dict[str, Any]] | None = None) -> list[str]:
    """``n`` users with a rich history (many distinct items, at least one purchase if any).

    Users are taken from different interests where possible, so that the examples differ.
    """
    events = generate_demo_events() if events is None else events
    items: dict[str, set[str]] = defaultdict(set)
    bought: dict[str, int] = defaultdict(int)
    top_category: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for event in events:
        user = event["user_id"]
        items[user].add(event["item_id"])
        top_category[user][event.get("category", "")] += 1
        if event["event_type"] == "purchase":
            bought[user] += 1
    ranked = sorted(items, key=lambda u: (bought[u] > 0, len(items[u]), u), reverse=True)
    chosen: list[str] = []
    seen_categories: set[str] = set()
    for user in ranked:
        category = max(top_category[user], key=lambda c: top_category[user][c])
        if category not in seen_categories:
            chosen.append(user)
            seen_categories.add(category)
        if len(chosen) == n:
            return chosen
    return (chosen + [u for u in ranked if u not in chosen])[:n]


def demo_items(n: int = 3, events: Sequence[dict[str, Any]] | None = None) -> list[str]:
    """The ``n`` most interacted-with items, from different categories where possible."""
    events = generate_demo_events() if events is None else events
    counts: dict[str, int] = defaultdict(int)
    category: dict[str, str] = {}
    for event in events:
        counts[event["item_id"]] += 1
        category[event["item_id"]] = event.get("category", "")
    ranked = sorted(counts, key=lambda i: (counts[i], i), reverse=True)
    chosen: list[str] = []
    for item in ranked:
        if category[item] not in {category[c] for c in chosen}:
            chosen.append(item)
        if len(chosen) == n:
            return chosen
    return (chosen + [i for i in ranked if i not in chosen])[:n]


# The demo catalog: a new product no one has interacted with yet (it shows up beside the
# tent it resembles through content similarity) and a couple of products out of stock.
DEMO_NEW_ITEM = "tent-3-person-ultralight"
DEMO_OUT_OF_STOCK = ("lantern-led", "gaiters-lightweight")


def _title(item_id: str) -> str:
    """A title from a self-describing id: "tent-2-person-ultralight" -> "Tent 2 person ultralight"."""
    words = item_id.replace("-", " ").split()
    return " ".join(words).capitalize()


def demo_catalog(now: float | None = None, seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """``item_upsert`` records for every demo product (title, category, price, stock and
    tags: the category and the kit's main product), plus :data:`DEMO_NEW_ITEM`; the
    :data:`DEMO_OUT_OF_STOCK` products are out of stock. Timestamps are ``now`` minus 8
    days (before the demo events), except the new product's (``now``)."""
    now = time.time() if now is None else now
    catalog = products(seed)
    leads = {
        (category, index): kit[0].split("-")[0]
        for category, (kits, _) in CATALOG.items()
        for index, kit in enumerate(kits)
    }
    records = []
    for item_id, product in catalog.items():
        records.append(
            {
                "event_type": "item_upsert",
                "item_id": item_id,
                "title": _title(item_id),
                "category": product.category,
                "price": product.price,
                "in_stock": item_id not in DEMO_OUT_OF_STOCK,
                "tags": [product.category, leads[(product.category, product.kit)]],
                "timestamp": int(now - SPAN_SECONDS - 86_400),
            }
        )
    records.append(
        {
            "event_type": "item_upsert",
            "item_id": DEMO_NEW_ITEM,
            "title": "Ultralight 3-person backpacking tent",
            "category": "camping",
            "price": 329.0,
            "in_stock": True,
            "tags": ["camping", "tent", "ultralight"],
            "timestamp": int(now),
        }
    )
    return records


def demo_coupons(now: float | None = None) -> list[dict[str, Any]]:
    """A few coupons for the demo shop, valid from a day before ``now`` for 30 days: one per
    category for several categories, one on an item list, and one already expired (never
    offered). Records in the ``streamrec coupons load`` format (with ``coupon_id``)."""
    now = time.time() if now is None else now
    start, end = int(now - 86_400), int(now + 30 * 86_400)

    def coupon(
        coupon_id: str, scope: dict[str, Any], kind: str, value: float, **extra: Any
    ) -> dict[str, Any]:
        return {
            "coupon_id": coupon_id,
            "scope": scope,
            "discount": {"kind": kind, "value": value},
            "min_spend": extra.get("min_spend", 0),
            "valid_from": extra.get("valid_from", start),
            "valid_to": extra.get("valid_to", end),
            "budget": extra.get("budget", 500),
            "per_user_limit": 1,
        }

    return [
        coupon("camping-10", {"category": "camping"}, "percent", 10, min_spend=50),
        coupon("hiking-15", {"category": "hiking"}, "percent", 15, min_spend=80),
        coupon("coffee-5-off", {"category": "coffee"}, "amount", 5, min_spend=30),
        coupon("kitchen-10", {"category": "kitchen"}, "percent", 10),
        coupon(
            "espresso-kit-20",
            {"items": ["espresso-machine", "coffee-grinder-burr"]},
            "percent",
            20,
            min_spend=200,
            budget=50,
        ),
        coupon("camping-expired", {"category": "camping"}, "percent", 30, valid_to=start + 3_600),
    ]
