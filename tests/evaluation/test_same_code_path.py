"""Same code path (EVALUATION.md): real events replayed through the engine on the in-memory
adapters and on the DynamoDB adapters (moto, tables from template.yaml) give identical
recommendations, ids and scores, for every request.

Both sides are the same :class:`InMemoryEngine` (production IngestService,
SimilarityService and RecommendationService); only the repositories differ: the DynamoDB
ones are those :mod:`streamrec.wiring` builds from ``load_settings()`` in the functions'
environment. The change announcements are collected in memory on both sides (the
Kinesis publisher is tested elsewhere).

Sample: every event of the Taobao file on its 150 most frequent items, in protocol order
(2,329 events of 322 users). On these items windows overlap a lot, so most requests are
personalized, and a batch writes few distinct rows: moto takes ~4 ms per UpdateItem, and a
sample of whole user histories writes ~15 rows per event, which would take minutes.
"""

from __future__ import annotations

from collections import Counter

from streamrec import wiring
from streamrec.evaluation.datasets import load_taobao
from streamrec.evaluation.engine import InMemoryEngine
from streamrec.repositories.memory import InMemoryChangePublisher
from streamrec.settings import load_settings

TOP_ITEMS = 150
BATCH = 100  # events per ingest call (one Kinesis batch)
REQUESTS_PER_BATCH = 12  # the batch's busiest users are asked after it
EXCLUDE_MODES = ("history", "purchased", "none")


def _sample(data_dir) -> list[dict]:
    events = load_taobao(data_dir).events
    frequent = {item for item, _ in Counter(e["item_id"] for e in events).most_common(TOP_ITEMS)}
    return [e for e in events if e["item_id"] in frequent]


def _dynamo_engine(settings) -> InMemoryEngine:
    ingest = wiring.ingest_service(settings)
    similarity = wiring.similarity_service(settings)
    return InMemoryEngine(
        settings,
        users=ingest.users,
        cooccurrence=ingest.cooccurrence,
        item_stats=ingest.item_stats,
        similarity=similarity.similarity,
        changes=InMemoryChangePublisher(),
    )


def test_memory_and_dynamodb_adapters_recommend_identically(data_dir, aws):
    events = _sample(data_dir)
    assert len(events) >= 2000
    settings = load_settings()
    memory = InMemoryEngine(settings)
    dynamo = _dynamo_engine(settings)
    requests = personalized = 0
    for start in range(0, len(events), BATCH):
        batch = events[start : start + BATCH]
        memory.ingest(batch)
        dynamo.ingest(batch)
        now = float(batch[-1]["timestamp"])
        busiest = Counter(e["user_id"] for e in batch)
        for user in sorted(busiest, key=lambda u: (-busiest[u], u))[:REQUESTS_PER_BATCH]:
            exclude = EXCLUDE_MODES[requests % len(EXCLUDE_MODES)]
            expected = memory.recommend(user, 20, now=now, exclude=exclude)
            got = dynamo.recommend(user, 20, now=now, exclude=exclude)
            assert [(r.item_id, r.score, r.source) for r in got.items] == [
                (r.item_id, r.score, r.source) for r in expected.items
            ], (
                f"request {requests}: user {user} after event {start + len(batch)}, exclude={exclude}"
                + _differences(memory, dynamo, user)
            )
            assert got == expected
            requests += 1
            personalized += any(r.source != "popular" for r in expected.items)
    assert requests >= 250
    assert personalized >= 0.5 * requests, "the sample should exercise personalized scoring"
    _coupons_identical(memory, dynamo, events, settings)


def _differences(memory: InMemoryEngine, dynamo: InMemoryEngine, user: str) -> str:
    """What the two sides hold differently among what the user's request reads (the user
    row, its recent items' neighbour rows, the popular lists of its categories): named in
    the failure message, so that a mismatch says where it comes from."""
    from streamrec.domain.model import POPULAR_ROW, category_row

    notes = []
    state, other = memory.users.get(user), dynamo.users.get(user)
    if state != other:
        notes.append("user rows differ")
    if state is None:
        return "; ".join(["", *notes])
    items = [entry.item_id for entry in state.items]
    lists = [POPULAR_ROW, *(category_row(c) for c in state.categories)]
    rows, popular = memory.similarity.get_many(items, lists)
    dynamo_rows, dynamo_popular = dynamo.similarity.get_many(items, lists)
    notes += [f"row {i} differs" for i in items if rows.get(i) != dynamo_rows.get(i)]
    notes += [f"list {n} differs" for n in lists if popular[n].items != dynamo_popular[n].items]
    notes += [f"stale rows differ: {sorted(memory.stale_rows ^ dynamo.stale_rows)[:10]}"] * (
        memory.stale_rows != dynamo.stale_rows
    )
    return "; ".join(["", *notes]) if notes else "; the rows and lists read are equal"


def _coupons_identical(memory: InMemoryEngine, dynamo: InMemoryEngine, events: list[dict], settings) -> None:
    """Coupons of P4's kind for the sample's 30 most-bought categories, defined on both
    sides; every user of the sample gets the same top 3 (ids, scores, reasons) from both,
    short lists filled from each side's own #popular_categories list."""
    from streamrec.domain.coupons import CouponService
    from streamrec.evaluation.p4 import coupon_spec
    from streamrec.repositories.memory import InMemoryCouponRepository

    end = float(events[-1]["timestamp"])
    buys = Counter(e["category"] for e in events if e["event_type"] == "purchase")
    services = [
        CouponService(settings, memory.users, InMemoryCouponRepository(), similarity=memory.similarity),
        wiring.coupon_service(settings),
    ]
    services[1].users = dynamo.users
    for service in services:
        for category, _ in buys.most_common(30):
            service.put(f"p4-{category}", coupon_spec(category, end), end)
    offered = filled = 0
    for user in sorted({e["user_id"] for e in events}):
        expected = services[0].for_user(user, 3, end)
        assert services[1].for_user(user, 3, end) == expected, user
        offered += bool(expected)
        filled += any(c.score == 0 for c in expected)
    assert offered >= 100 and filled >= 10


CROSS_SELL_ITEMS = 60
CROSS_SELL_EVENTS = 2000
CROSS_SELL_BATCH = 250


def test_cross_sell_is_identical_on_both_adapters(data_dir, aws):
    """P3's path: Online Retail invoices (restricted to the 60 most frequent products, so
    that a batch writes few distinct rows on moto) as purchase events with their basket id;
    after each batch, cross-sell for carts of the next invoices, with their customers."""
    from streamrec.evaluation import p3

    train, _ = p3.split(p3.load_online_retail(data_dir))
    counts = Counter(item for invoice in train for item in invoice.items)
    frequent = {item for item, _ in counts.most_common(CROSS_SELL_ITEMS)}
    invoices = []
    for invoice in train:
        items = [item for item in invoice.items if item in frequent]
        if len(items) >= 2:
            invoice.items = items
            invoices.append(invoice)
    events = [event for invoice in invoices for event in p3.invoice_events(invoice)][:CROSS_SELL_EVENTS]
    assert len(events) == CROSS_SELL_EVENTS
    settings = load_settings()
    memory, dynamo = InMemoryEngine(settings), _dynamo_engine(settings)
    requests = answered = 0
    for start in range(0, len(events), CROSS_SELL_BATCH):
        batch = events[start : start + CROSS_SELL_BATCH]
        memory.ingest(batch)
        dynamo.ingest(batch)
        upcoming = {e["basket_id"]: e for e in events[start + CROSS_SELL_BATCH :][:200]}
        for invoice_no, first in list(upcoming.items())[:10]:
            cart = [e["item_id"] for e in events if e["basket_id"] == invoice_no][1:]
            expected = memory.cross_sell(cart, 10, user_id=first["user_id"])
            got = dynamo.cross_sell(cart, 10, user_id=first["user_id"])
            assert got == expected, f"request {requests}: invoice {invoice_no}"
            requests += 1
            answered += not expected.fallback
    assert requests >= 60 and answered >= 0.8 * requests
