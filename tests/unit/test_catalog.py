"""Catalog records, content neighbours, blending, stock, and the cold-start acceptance test
(issue 4, acceptance 4), on the production services over the in-memory adapters."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pytest
from streamrec_core import idf, tfidf_norm

from streamrec.domain.catalog import CONTENT_HOLDERS_KEPT, CatalogService, SequencedUpsert
from streamrec.domain.filters import ListFilter
from streamrec.domain.ingest import IngestService, SequencedEvent
from streamrec.domain.model import OUT_OF_STOCK_ROW, Posting, sequence_key
from streamrec.domain.recommend import CrossSellService, RecommendationService
from streamrec.domain.similarity import SimilarityService
from streamrec.events import InvalidEvent, ItemUpsert, parse_record
from streamrec.repositories.memory import (
    InMemoryCatalogRepository,
    InMemoryChangePublisher,
    InMemoryCooccurrenceRepository,
    InMemoryItemStatsRepository,
    InMemorySimilarityRepository,
    InMemoryUserRepository,
)
from streamrec.settings import ConfigurationError, Settings, load_settings

SHARD = "shardId-000000000000"
T0 = 1_764_000_000


@dataclass
class Pipeline:
    """The ingest (catalog records first, then user events) and the similarity function,
    fed by the changed-items announcements, as deployed; the API's services on top."""

    settings: Settings = field(default_factory=Settings)
    sequence: int = 0

    def __post_init__(self) -> None:
        s = self.settings
        self.users = InMemoryUserRepository()
        self.cooccurrence = InMemoryCooccurrenceRepository()
        self.item_stats = InMemoryItemStatsRepository()
        self.similarity = InMemorySimilarityRepository()
        self.catalog = InMemoryCatalogRepository()
        self.changes = InMemoryChangePublisher()
        self.ingest_service = IngestService(
            s, self.users, self.cooccurrence, self.item_stats, self.changes, catalog=self.catalog
        )
        self.catalog_service = CatalogService(s, self.catalog, self.changes)
        self.similarity_service = SimilarityService(
            s, self.cooccurrence, self.item_stats, self.similarity, catalog=self.catalog
        )
        self.recommendations = RecommendationService(s, self.users, self.similarity)
        self.cross_sell = CrossSellService(s, self.users, self.similarity)

    def send(self, records: list[dict[str, Any]], sequences: list[int] | None = None) -> None:
        upserts, events = [], []
        for n, payload in enumerate(records):
            if sequences is None:
                self.sequence += 1
            seq = sequence_key(sequences[n] if sequences else self.sequence)
            parsed = parse_record(payload)
            if isinstance(parsed, ItemUpsert):
                upserts.append(SequencedUpsert(seq, parsed))
            else:
                events.append(SequencedEvent(seq, parsed))
        # As the ingest's IngestRecords applies a batch: catalog records first.
        outcome = self.catalog_service.upsert(upserts, SHARD)
        self.ingest_service.ingest(events, SHARD, outcome.recategorised)
        self.settle()

    def settle(self) -> None:
        changed, norm_changed, popular_changed = self.changes.drain()
        content_changed = self.changes.drain_content()
        self.similarity_service.recompute(changed, norm_changed, popular_changed, content_changed)


def upsert(item: str, title: str, category: str, *, at: int = 0, in_stock: bool = True, tags=()) -> dict:
    return {
        "event_type": "item_upsert",
        "item_id": item,
        "title": title,
        "category": category,
        "price": 10.0,
        "in_stock": in_stock,
        "tags": list(tags),
        "timestamp": T0 + at,
    }


_event_ids = iter(range(1, 1_000_000))


def view(user: str, item: str, at: int, kind: str = "view", **extra: Any) -> dict:
    return {
        "event_id": f"e{next(_event_ids)}",
        "event_type": kind,
        "user_id": user,
        "item_id": item,
        "timestamp": T0 + at,
        **extra,
    }


CATALOG = [
    upsert("tent-2p", "Ultralight 2-person tent", "camping", tags=["tent", "ultralight", "backpacking"]),
    upsert("bag-down", "Down sleeping bag", "camping", tags=["sleeping bag", "down"]),
    upsert("stove", "Compact camping stove", "camping", tags=["stove", "cooking"]),
    upsert("lamp", "Rechargeable headlamp", "hiking", tags=["light"]),
    upsert("grinder", "Burr coffee grinder", "coffee", tags=["coffee", "grinder"]),
    upsert("beans", "Espresso coffee beans", "coffee", tags=["coffee", "beans"]),
]


def _warm(pipeline: Pipeline) -> None:
    """Views making tent, bag, stove and lamp co-occur (the tent has interactions)."""
    at = 0
    for user in range(6):
        for item in ("tent-2p", "bag-down", "stove", "lamp"):
            at += 1
            pipeline.send([view(f"u{user}", item, at)])


# ---- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"in_stock": "yes"}, "in_stock"),
        ({"price": -1}, "price"),
        ({"price": True}, "price"),
        ({"price": "45"}, "price"),
        ({"title": ""}, "title"),
        # Kept, it made the item alike to its category alone.
        ({"title": "   "}, "title: a title must not be blank"),
        ({"title": "\u00ad\n"}, "title: a title must not be blank"),
        ({"item_id": "#catalog"}, "item_id"),
        ({"tags": "tent"}, "tags"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"category": None}, "category"),
        ({"category": " "}, "category: a category must not be blank"),
        ({"category": "\u200b"}, "category: a category must not be blank"),  # a zero-width space
        ({"category": "tents\u0000"}, "category: a category must not hold control characters"),
        # DynamoDB refuses it when the row is written ("Number underflow"), after the
        # postings and the document count have been updated.
        ({"price": 1e-200}, "price: a price is 0 or at least 1e-130"),
    ],
)
def test_bad_item_upsert_is_refused_with_its_reason(change, fragment):
    with pytest.raises(InvalidEvent) as refused:
        parse_record({**upsert("x", "t", "c"), **change})
    assert refused.value.reason.startswith("item_upsert schema violation")
    assert fragment in refused.value.reason


def test_user_events_are_parsed_as_before():
    parsed = parse_record(view("u", "tent-2p", 1))
    assert parsed.event_type == "view" and parsed.item_id == "tent-2p"
    with pytest.raises(InvalidEvent, match="event_type"):
        parse_record({**view("u", "x", 1), "event_type": "teleport"})


# ---- later upserts win, re-delivery is harmless ------------------------------------------


def test_later_upsert_wins_and_a_late_older_one_changes_nothing():
    pipeline = Pipeline()
    pipeline.send([upsert("tent-2p", "Tent v2", "camping", at=20)])
    pipeline.send([upsert("tent-2p", "Tent v1 old", "hiking", at=10, in_stock=False)])  # late, older
    stored = pipeline.catalog.get_many(["tent-2p"])["tent-2p"]
    assert (stored.title, stored.category, stored.in_stock) == ("Tent v2", "camping", True)
    assert "old" not in pipeline.catalog.tokens or not pipeline.catalog.tokens["old"]
    assert not pipeline.similarity.get_list(OUT_OF_STOCK_ROW).items

    pipeline.send([upsert("tent-2p", "Dome tent", "camping", at=30)])
    assert pipeline.catalog.get_many(["tent-2p"])["tent-2p"].title == "Dome tent"
    assert pipeline.catalog.tokens["dome"] == {"tent-2p"}
    assert pipeline.catalog.tokens["v2"] == set()  # the replaced title's token is unposted


def test_within_a_batch_the_latest_timestamp_wins_whatever_the_order():
    pipeline = Pipeline()
    pipeline.send([upsert("a", "New title", "c", at=5), upsert("a", "Old title", "c", at=1)])
    assert pipeline.catalog.get_many(["a"])["a"].title == "New title"


def test_a_later_batchs_record_with_the_same_timestamp_and_other_fields_wins():
    # E.g. `catalog load` stamps every line without a timestamp with the load time: two
    # lines of one item that fall into different batches must not lose the later one.
    pipeline = Pipeline()
    pipeline.send([upsert("a", "Alpha tent", "c", at=7)], sequences=[1])
    pipeline.send([upsert("a", "Alpha tent", "c", at=7, in_stock=False)], sequences=[2])
    assert pipeline.catalog.get_many(["a"])["a"].in_stock is False
    assert pipeline.similarity.get_list(OUT_OF_STOCK_ROW).items[0][0] == "a"
    assert pipeline.catalog.documents() == 1


def test_redelivered_batch_counts_documents_once_and_changes_nothing():
    pipeline = Pipeline()
    batch = [upsert("a", "Alpha tent", "c"), upsert("b", "Beta tent", "c")]
    pipeline.send(batch, sequences=[1, 2])
    before = (dict(pipeline.catalog.items), {t: set(i) for t, i in pipeline.catalog.tokens.items()})
    pipeline.send(batch, sequences=[1, 2])  # Lambda retried the same records
    assert pipeline.catalog.documents() == 2
    assert (dict(pipeline.catalog.items), {t: set(i) for t, i in pipeline.catalog.tokens.items()}) == before


def test_crash_after_postings_replays_to_the_same_state():
    """A crash between the postings and the record writes: the retry replans the same writes."""
    clean, crashed = Pipeline(), Pipeline()
    batch = [upsert("a", "Alpha tent", "c"), upsert("b", "Beta tent", "c")]
    clean.send(batch, sequences=[1, 2])
    original = crashed.catalog.put_many
    crashed.catalog.put_many = lambda items: (_ for _ in ()).throw(RuntimeError("crash"))  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        crashed.send(batch, sequences=[1, 2])
    crashed.catalog.put_many = original  # type: ignore[method-assign]
    crashed.send(batch, sequences=[1, 2])
    assert crashed.catalog.items == clean.catalog.items
    assert crashed.catalog.tokens == clean.catalog.tokens
    assert crashed.catalog.documents() == clean.catalog.documents() == 2


def test_posting_limit_bounds_a_token_and_its_holders_are_candidates_only_as_a_fallback():
    pipeline = Pipeline(Settings(posting_limit=3))
    for n in range(5):  # (a batch's additions to a posting not yet full all go in)
        pipeline.send([upsert(f"i{n}", f"Common thing{n}", "c")])
    assert len(pipeline.catalog.tokens["common"]) == 3
    rows = pipeline.similarity.rows
    # "common" and "c" were full when i3 and i4 came, and their other token is their own:
    # with fewer look-alikes than content_per_item by usable tokens, the full postings'
    # holders are candidates (before, i3 and i4 had no content neighbours at all) ...
    assert [n.item_id for n in rows["i3"].content] == ["i2", "i0", "i1"]
    assert [n.item_id for n in rows["i4"].content] == ["i2", "i0", "i1"]
    # ... and i3 and i4 are merged into those holders' lists. They never find each other:
    # neither is in a posting.
    assert {n.item_id for n in rows["i0"].content} == {"i1", "i2", "i3", "i4"}
    assert "i4" not in {n.item_id for n in rows["i3"].content}


def test_full_postings_are_not_read_for_candidates_while_usable_ones_give_enough():
    # content_per_item 1: "shared" (a usable token) gives x1 one look-alike, so the full
    # postings of "alpha" and "beta" are not searched, though their holders share more.
    pipeline = Pipeline(Settings(posting_limit=3, content_per_item=1))
    pipeline.send(
        [upsert(f"h{n}", f"Alpha beta {word}", "kitchen") for n, word in enumerate(("one", "two", "six"))]
    )
    pipeline.send([upsert("y", "Shared", "garden"), upsert("x1", "Alpha beta shared", "kitchen")])
    assert len(pipeline.catalog.tokens["alpha"]) == len(pipeline.catalog.tokens["beta"]) == 3
    assert [n.item_id for n in pipeline.similarity.rows["x1"].content] == ["y"]
    # With no usable look-alike, the full postings' holders are candidates.
    pipeline.send([upsert("x2", "Alpha beta", "kitchen")])
    [found] = pipeline.similarity.rows["x2"].content
    assert found.item_id in {"h0", "h1", "h2"}


def test_fallback_candidates_that_tie_are_drawn_per_item_not_the_lowest_ids_each_time():
    # Every holder shares the same full tokens: by id, each new item would read (and be
    # merged into the rows of) the same first content_candidates holders.
    pipeline = Pipeline(Settings(posting_limit=4, content_candidates=2, content_per_item=2))
    pipeline.send([upsert(f"h{n}", "Alpha beta", "kitchen") for n in range(4)])
    pipeline.send([upsert(f"x{n}", "Alpha beta", "kitchen") for n in range(1, 4)])
    lists = {tuple(n.item_id for n in pipeline.similarity.rows[f"x{n}"].content) for n in range(1, 4)}
    assert len(lists) > 1 and all(len(found) == 2 for found in lists), lists


def test_a_tokens_document_frequency_counts_its_holders_past_the_posting_limit():
    # "common" is held by 5 items, its posting by 3: the idf is ln(6 / 6) + 1 = 1, as for a
    # token every item holds, not ln(6 / 4) + 1 (a token held by 3 of 5).
    pipeline = Pipeline(Settings(posting_limit=3))
    for n in range(5):
        pipeline.send([upsert(f"i{n}", f"Common thing{n}", "c")])
    assert pipeline.catalog.postings(["common"])["common"] == Posting(frozenset({"i0", "i1", "i2"}), 5)
    last = pipeline.catalog.items["i4"]
    tokens = sorted(last.terms)  # c, common, thing4 (each once)
    df = np.array([5.0 if t in ("c", "common") else 1.0 for t in tokens])
    assert last.norm == pytest.approx(tfidf_norm(np.ones(len(tokens)), idf(df, 5)))
    # An item that drops the token is counted out, though its id was never in the posting.
    pipeline.send([upsert("i4", "Rare thing4", "c", at=1)])
    assert pipeline.catalog.postings(["common"])["common"].count == 4


def test_a_bisected_batch_counts_each_records_tokens_once():
    # One batch renames x (its first record and its rename), adds y; it fails after counting
    # the tokens' holders, and Lambda retries its halves. Counted as one net change per item
    # (x: +renamed), the first half's x (+product) fell under the guard the whole batch had
    # advanced and the second half's rename (-product) did not: product was one short.
    pipeline = Pipeline()
    batch = [
        upsert("x", "Product x", "c"),
        upsert("y", "Product y", "c"),
        upsert("x", "Renamed x", "c", at=60),
    ]
    put_many = pipeline.catalog.put_many
    pipeline.catalog.put_many = lambda items: (_ for _ in ()).throw(RuntimeError("crash"))  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        pipeline.send(batch, sequences=[1, 2, 3])
    pipeline.catalog.put_many = put_many  # type: ignore[method-assign]
    pipeline.send(batch[:1], sequences=[1])
    pipeline.send(batch[1:], sequences=[2, 3])
    holders = {
        t: sum(t in item.terms for item in pipeline.catalog.items.values()) for t in ("product", "renamed")
    }
    assert holders == {"product": 1, "renamed": 1}
    found = pipeline.catalog.postings(["product", "renamed"])
    assert {t: p.count for t, p in found.items()} == holders


def test_an_item_changed_and_changed_back_in_one_batch_counts_its_tokens_once_after_a_bisection():
    # x is a lamp; one batch renames it to a tent and back (one timestamp: stream order
    # decides) around y, a tent. The batch applied (x a duplicate of what is stored), then
    # its user events failed and Lambda bisected it: the first half wrote x as a tent, whose
    # +1 fell under the guard y had moved, while the second half's -1 did not.
    from streamrec.domain.catalog import recount

    pipeline = Pipeline()
    pipeline.send([upsert("x", "Lamp", "c")], sequences=[1])
    batch = [upsert("x", "Tent", "c"), upsert("y", "Tent", "c"), upsert("x", "Lamp", "c")]
    pipeline.send(batch, sequences=[2, 3, 4])
    pipeline.send(batch[:2], sequences=[2, 3])
    pipeline.send(batch[2:], sequences=[4])
    assert pipeline.catalog.items["x"].title == "Lamp"
    assert recount(pipeline.catalog.stored_counts()) == []
    assert pipeline.catalog.postings(["tent"])["tent"].count == 1


def test_an_item_moved_to_another_category_keeps_it_when_a_partner_rebuilds_its_row():
    # The grinder moves from coffee to kitchen; then only the beans, which co-occurred with
    # it, get a view. The rebuild of the grinder's row took the category of the grinder's
    # last event (coffee) and padded its list with coffee bestsellers.
    pipeline = Pipeline()
    mugs = [upsert(f"mug{i}", f"Enamel mug {i}", "coffee") for i in range(4)]
    pans = [upsert(f"pan{i}", f"Cast iron pan {i}", "kitchen") for i in range(4)]
    pipeline.send(CATALOG + mugs + pans)
    views = [view("u1", "grinder", 100), view("u1", "beans", 101)]
    views += [view(f"m{n}", f"mug{n % 4}", 110 + n) for n in range(8)]
    views += [view(f"k{n}", f"pan{n % 4}", 130 + n) for n in range(8)]
    pipeline.send(views)
    pipeline.send([upsert("grinder", "Burr grinder", "kitchen", at=200, tags=["burr"])])
    assert pipeline.item_stats.get_many(["grinder"])["grinder"].category == "kitchen"
    pipeline.send([view("u2", "beans", 300)])
    assert pipeline.similarity.rows["grinder"].category == "kitchen"
    padded = [
        i.item_id for i in pipeline.recommendations.similar_items("grinder", 4).items if i.source == "popular"
    ]
    assert padded and all(item.startswith("pan") for item in padded)
    # A replay of the record changes nothing, and an event naming its own category still
    # sets the item's category in the stats row (events override the catalog there).
    pipeline.send([upsert("grinder", "Burr grinder", "kitchen", at=200, tags=["burr"])])
    pipeline.send([view("u3", "grinder", 400, category="coffee-gear")])
    assert pipeline.item_stats.get_many(["grinder"])["grinder"].category == "coffee-gear"


def test_an_item_moved_to_another_category_leaves_the_old_categorys_popular_list_at_once():
    # A category list shorter than its size never dropped the moved item (a merge only
    # adds), so "popular in coffee" padded lists with a kitchen item for good, and the
    # kitchen list got it only with the item's next event.
    pipeline = Pipeline()
    pipeline.send(CATALOG + [upsert("pan", "Cast iron pan", "kitchen")])
    pipeline.send([view(f"u{n}", item, 100 + n) for n, item in enumerate(["grinder", "beans", "pan"] * 3)])

    def listed(category: str) -> list[str]:
        return [item for item, _ in pipeline.similarity.lists[f"#cat:{category}"].items]

    assert "grinder" in listed("coffee") and "grinder" not in listed("kitchen")
    pipeline.send([upsert("grinder", "Burr grinder", "kitchen", at=200)])
    assert "grinder" not in listed("coffee") and "grinder" in listed("kitchen")
    assert listed("coffee") == ["beans"]
    listed_for_beans = pipeline.recommendations.similar_items("beans", 4).items
    assert all(
        "popular in coffee" not in " ".join(i.reasons) for i in listed_for_beans if i.item_id == "grinder"
    )
    # A later record that does not move it (a price change) still names the old category,
    # in case the similarity function reads it before the moving one's announcement.
    pipeline.send([{**upsert("grinder", "Burr grinder", "kitchen", at=300), "price": 12.0}])
    assert pipeline.catalog.items["grinder"].former_categories == ["coffee"]
    # Moved back: out of kitchen, into coffee; its former categories never name its own.
    pipeline.send([upsert("grinder", "Burr grinder", "coffee", at=400)])
    assert "grinder" in listed("coffee") and "grinder" not in listed("kitchen")
    assert pipeline.catalog.items["grinder"].former_categories == ["kitchen"]


def test_a_moved_item_does_not_come_back_to_its_old_list_through_a_stale_stats_row():
    # An event batch of another shard read the catalog before the move and wrote after it:
    # its item-stats write names the old category again, and its announcement put the item
    # back in the old list, where nothing took it out.
    pipeline = Pipeline()
    pipeline.send(CATALOG + [upsert("pan", "Cast iron pan", "kitchen")])
    pipeline.send([view(f"u{n}", item, 100 + n) for n, item in enumerate(["grinder", "beans", "pan"] * 3)])
    categories = pipeline.catalog.categories

    def read_then_moved(items):
        found = categories(items)
        pipeline.catalog.categories = categories
        move = SequencedUpsert(
            sequence_key(10_000), parse_record(upsert("grinder", "Burr grinder", "kitchen", at=200))
        )
        outcome = pipeline.catalog_service.upsert([move], "shardId-000000000002")
        pipeline.ingest_service.ingest([], "shardId-000000000002", outcome.recategorised)
        pipeline.settle()
        return found

    pipeline.catalog.categories = read_then_moved
    pipeline.send([view("u50", "grinder", 300)])  # its category read before the move landed
    assert pipeline.item_stats.get_many(["grinder"])["grinder"].category == "coffee"

    def listed(category: str) -> list[str]:
        return [item for item, _ in pipeline.similarity.lists[f"#cat:{category}"].items]

    assert "grinder" not in listed("coffee") and "grinder" in listed("kitchen")
    # Nor through an event naming the old category.
    pipeline.send([view("u51", "grinder", 400, category="coffee")])
    assert "grinder" not in listed("coffee") and "grinder" in listed("kitchen")


def test_a_category_filter_follows_a_moved_items_row_not_the_category_of_the_users_view():
    # The user viewed the grinder while it was a coffee item; the catalog then moved it to
    # kitchen and its own row says so. The category of the user's view won: the grinder
    # was listed under coffee, as "you recently looked at", and not under kitchen.
    pipeline = Pipeline()
    pipeline.send(CATALOG + [upsert("pan", "Cast iron pan", "kitchen")])
    pipeline.send([view("u1", "grinder", 100), view("u1", "beans", 101), view("u2", "pan", 102)])
    pipeline.send([upsert("grinder", "Burr grinder", "kitchen", at=200)])
    assert pipeline.similarity.rows["grinder"].category == "kitchen"

    def listed(category: str) -> list[str]:
        found = pipeline.recommendations.for_user("u1", 10, list_filter=ListFilter(category=category))
        return [item.item_id for item in found.items]

    assert "grinder" not in listed("coffee")
    assert "grinder" in listed("kitchen")


def test_out_of_stock_look_alikes_take_no_slot_and_come_back_when_restocked():
    # Requests filter out-of-stock entries, so a content list keeping them serves fewer:
    # in a shop retiring products, a third of new items' lists within months.
    pipeline = Pipeline()
    lamps = [upsert(f"lamp{n}", f"Rechargeable LED headlamp {n}", "hiking", tags=["light"]) for n in range(4)]
    lamps[1]["in_stock"] = False
    pipeline.send(lamps)

    def content(item: str) -> list[str]:
        return [n.item_id for n in pipeline.similarity.rows[item].content]

    assert content("lamp0") and "lamp1" not in content("lamp0")
    assert all("lamp1" not in content(f"lamp{n}") for n in (2, 3))
    assert set(content("lamp1")) == {"lamp0", "lamp2", "lamp3"}  # its own list: in-stock items
    pipeline.send([upsert("lamp1", "Rechargeable LED headlamp 1", "hiking", at=100, tags=["light"])])
    assert all("lamp1" in content(f"lamp{n}") for n in (0, 2, 3))
    # Out of stock again: it keeps its places (filtered at request time) until they are
    # chosen again, as before (rewriting its look-alikes' rows at each stock flip cost ~20).
    pipeline.send(
        [
            {
                **upsert("lamp1", "Rechargeable LED headlamp 1", "hiking", at=200, tags=["light"]),
                "in_stock": False,
            }
        ]
    )
    assert all("lamp1" in content(f"lamp{n}") for n in (0, 2, 3))
    listed = pipeline.recommendations.similar_items("lamp0", 5).items
    assert "lamp1" not in [i.item_id for i in listed]


def _lamps(n: int, out: tuple[int, ...] = ()) -> list[dict]:
    lamps = [upsert(f"lamp{i}", f"Rechargeable LED headlamp {i}", "hiking", tags=["light"]) for i in range(n)]
    for i in out:
        lamps[i]["in_stock"] = False
    return lamps


def test_a_restock_whose_rows_failed_to_write_is_merged_by_the_retry():
    # The out-of-stock set was written first: the retry no longer saw the restock.
    from streamrec.repositories.base import RepositoryError

    pipeline = Pipeline()
    pipeline.send(_lamps(4, out=(1,)))
    batch = [SequencedUpsert(sequence_key(99), parse_record(_lamps(2)[1] | {"timestamp": T0 + 100}))]
    pipeline.catalog_service.upsert(batch, SHARD)
    changed, norm_changed, popular = pipeline.changes.drain()
    content_changed = pipeline.changes.drain_content()
    put_rows = pipeline.similarity.put_rows

    def throttled(rows):
        raise RepositoryError("throttled")

    pipeline.similarity.put_rows = throttled
    with pytest.raises(RepositoryError):
        pipeline.similarity_service.recompute(changed, norm_changed, popular, content_changed)
    pipeline.similarity.put_rows = put_rows
    pipeline.similarity_service.recompute(changed, norm_changed, popular, content_changed)  # Lambda's retry
    assert all(
        "lamp1" in [n.item_id for n in pipeline.similarity.rows[f"lamp{i}"].content] for i in (0, 2, 3)
    )
    assert "lamp1" not in [i for i, _ in pipeline.similarity.lists[OUT_OF_STOCK_ROW].items]


def test_a_restock_writes_only_the_rows_it_changes():
    # After a brief stockout the item still held its places: rewriting its ~20 look-alikes'
    # rows unchanged cost what the stock-flip change had saved.
    pipeline = Pipeline()
    pipeline.send(_lamps(12))
    written: list[str] = []
    put_rows = pipeline.similarity.put_rows
    pipeline.similarity.put_rows = lambda rows: (written.extend(r.item_id for r in rows), put_rows(rows))[1]
    pipeline.send([_lamps(2, out=(1,))[1] | {"timestamp": T0 + 100}])
    assert written == []
    pipeline.send([_lamps(2)[1] | {"timestamp": T0 + 200}])
    assert written == ["lamp1"]  # its own row (a restock recomputes it); no look-alike changed


def test_a_restock_in_a_varied_catalog_rewrites_no_look_alikes_row():
    # The rows a restock recomputes come back with their holders in another order and ties
    # of equal score swapped: compared in order, 22 of them were written for nothing.
    import random

    words = ["red", "blue", "wool", "cotton", "sock", "hat", "glove", "scarf", "light", "warm"]
    words += ["merino", "thermal", "hiking", "running", "kids", "men", "women", "zip", "fleece", "rain"]

    def item(i: int, at: int = 0, **extra) -> dict:
        draw = random.Random(i)
        return upsert(
            f"i{i}", " ".join(draw.sample(words, 4)), draw.choice(["apparel", "outdoor"]), at=at, **extra
        )

    pipeline = Pipeline()
    pipeline.send([item(i) for i in range(200)])
    pipeline.send([item(7, at=100, in_stock=False)])
    written: list[str] = []
    put_rows = pipeline.similarity.put_rows
    pipeline.similarity.put_rows = lambda rows: (written.extend(r.item_id for r in rows), put_rows(rows))[1]
    pipeline.send([item(7, at=200)])
    assert written == ["i7"]


def test_a_sold_out_item_enters_the_out_of_stock_set_though_its_content_rows_fail():
    # The set was written after the content rows: a record whose rows kept failing was
    # dead-lettered and its item stayed listable.
    from streamrec.stream import apply_isolating

    pipeline = Pipeline()
    pipeline.send(_lamps(6))
    record = upsert(
        "lamp1", "Rechargeable LED headlamp 1 red", "hiking", at=100, in_stock=False, tags=["light", "red"]
    )
    pipeline.catalog_service.upsert([SequencedUpsert(sequence_key(99), parse_record(record))], SHARD)
    changed, norm_changed, popular = pipeline.changes.drain()
    content_changed = pipeline.changes.drain_content()

    def refused(rows):
        raise ValueError("a deterministic failure writing rows")

    pipeline.similarity.put_rows = refused
    dead: list = []
    apply_isolating(
        lambda _records: pipeline.similarity_service.recompute(
            changed, norm_changed, popular, content_changed
        ),
        [(None, "lamp1")],
        dead.extend,
    )
    assert len(dead) == 1
    assert [item for item, _ in pipeline.similarity.lists[OUT_OF_STOCK_ROW].items] == ["lamp1"]


def test_an_out_of_stock_items_new_text_corrects_its_places_in_the_lists_closest_to_it():
    # Not merged into its look-alikes' lists while out of stock, it was not corrected in them
    # either: its old score and category stayed, holding the slot against live look-alikes.
    pipeline = Pipeline()
    pipeline.send(_lamps(4))
    assert [
        (n.score, n.category) for n in pipeline.similarity.rows["lamp0"].content if n.item_id == "lamp1"
    ] == [(1.0, "hiking")]
    retitled = upsert("lamp1", "Rechargeable LED headlamp 1 red", "camping", at=100, tags=["light", "red"])
    pipeline.send([retitled | {"in_stock": False}])
    [entry] = [n for n in pipeline.similarity.rows["lamp0"].content if n.item_id == "lamp1"]
    assert entry.category == "camping" and entry.score < 1.0


def test_a_content_list_is_filled_from_live_look_alikes_when_the_closest_are_retired():
    # The closest look-alikes are retired models: chosen first among the candidates and then
    # dropped for their stock, they left the list empty though live ones shared tokens.
    settings = Settings(content_candidates=6, posting_limit=12)
    pipeline = Pipeline(settings)
    retired = [upsert(f"old{i}", "Zoom headlamp", "hiking", tags=["zoom"], in_stock=False) for i in range(6)]
    live = [upsert(f"live{i}", f"Headlamp {i}", "hiking") for i in range(10)]
    pipeline.send(retired + live)
    pipeline.send([upsert("new", "Zoom headlamp", "hiking", at=100, tags=["zoom"])])
    listed = [n.item_id for n in pipeline.similarity.rows["new"].content]
    assert listed and all(item.startswith("live") for item in listed)


def test_a_re_delivered_record_passes_on_its_category_only_if_it_moved_the_item():
    # Applied again (its batch failed after the catalog write), a record that moved the
    # item names the move again, a guarded repeat; one that did not, or a new item's first
    # record, names nothing (it would write a category its first attempt never wrote).
    from streamrec.domain.catalog import SequencedUpsert
    from streamrec.domain.model import sequence_key
    from streamrec.events import parse_record

    pipeline = Pipeline()
    pipeline.send(CATALOG)

    def twice(record: dict, sequence: int) -> list:
        batch = [SequencedUpsert(sequence_key(sequence), parse_record(record))]
        first = pipeline.catalog_service.upsert(batch, SHARD).recategorised
        again = pipeline.catalog_service.upsert(batch, SHARD).recategorised
        return [first, again]

    moved = [("grinder", sequence_key(500), "kitchen")]
    assert twice(upsert("grinder", "Burr grinder", "kitchen", at=100), 500) == [moved, moved]
    assert twice(upsert("grinder", "Burr grinder v2", "kitchen", at=200), 501) == [[], []]
    assert twice(upsert("kettle", "Kettle", "kitchen", at=100), 502) == [[], []]


@pytest.mark.parametrize("event_first", [True, False])
def test_the_stats_category_is_the_later_records_however_a_batch_is_split(event_first):
    # An event naming its own category and a catalog record moving the item, in one batch:
    # the later of the two in the stream sets the item-stats category, whether the batch is
    # applied whole or (a bisected retry) in halves.
    record = upsert("grinder", "Burr grinder", "kitchen", at=200)
    event = view("u9", "grinder", 300, category="coffee-gear")
    batch = [event, record] if event_first else [record, event]
    expected = "kitchen" if event_first else "coffee-gear"
    categories = []
    for halves in (False, True):
        pipeline = Pipeline()
        pipeline.send(CATALOG, sequences=list(range(1, len(CATALOG) + 1)))
        if halves:
            pipeline.send(batch[:1], sequences=[100])
            pipeline.send(batch[1:], sequences=[101])
        else:
            pipeline.send(batch, sequences=[100, 101])
        categories.append(pipeline.item_stats.get_many(["grinder"])["grinder"].category)
    assert categories == [expected, expected]


def _cuts(n: int) -> list[list[int]]:
    """Every way to cut a batch of ``n`` records into consecutive batches (cut positions)."""
    return [[i + 1 for i in range(n - 1) if mask >> i & 1] for mask in range(2 ** (n - 1))]


def _pot(category: str, at: int, **fields: Any) -> dict:
    return upsert("pot", "Camping pot", category, at=at) | fields


# (records before, each in a batch of its own, the batch, whether the popular lists are
# compared too: an event naming its own category puts the item in that category's list
# between two batches, where it stays until it falls off, docs/catalog.md)
MOVES = {
    "a new item's two records after an event naming a third category": (
        [],
        [view("u1", "pot", 1, category="c3"), _pot("c1", 2), _pot("c2", 3)],
        False,
    ),
    "a new item's two records and events naming none": (
        [],
        [_pot("c1", 2), view("u1", "pot", 3), _pot("c2", 4), view("u2", "pot", 5)],
        True,
    ),
    "a new item's two records after an event naming none": (
        [view("u1", "pot", 1)],
        [_pot("c1", 2), _pot("c2", 3)],
        True,
    ),
    "a move, then an event naming a category, then a price change": (
        [_pot("c0", 0)],
        [_pot("c1", 2), view("u1", "pot", 3, category="c3"), _pot("c1", 4, price=12.0)],
        False,
    ),
    "away and back": ([_pot("c0", 0), view("u1", "pot", 1)], [_pot("c1", 2), _pot("c0", 3)], True),
    "away and back from the first record": (
        [view("u1", "pot", 1), _pot("c0", 2)],
        [_pot("c3", 3), _pot("c0", 4)],
        True,
    ),
    "away and back at one time": (
        [_pot("c0", 0), view("u1", "pot", 1)],
        [_pot("c1", 0), _pot("c0", 0)],
        True,
    ),
    "away and back after an event naming another category": (
        [_pot("c0", 0), view("u1", "pot", 1, category="c3")],
        [_pot("c1", 2), _pot("c0", 3)],
        False,
    ),
    "six moves (more than the five former categories kept)": (
        [_pot("c0", 0), view("u1", "pot", 1)],
        [_pot(f"c{n}", n + 1) for n in range(1, 7)],
        True,
    ),
    "three moves": (
        [_pot("c0", 0), view("u1", "pot", 1)],
        [_pot("c1", 2), _pot("c2", 3), view("u2", "pot", 4), _pot("c3", 5), _pot("c3", 6, price=9.0)],
        True,
    ),
}


@pytest.mark.parametrize("case", MOVES)
def test_a_batchs_records_move_an_item_as_the_batch_cut_anywhere_would(case):
    # A batch's latest record of an item was compared with the stored one alone: two records
    # of a new item (c1, then c2) were one new record, no move, in one batch, and a move from
    # c1 in two, so the item-stats category (which coupons, filters and lists read) and the
    # categories the item leaves depended on where Kinesis or a bisected retry cut the batch.
    # Also re-delivered so (a bisected retry) after an attempt of the whole batch that
    # stored its catalog records and failed before the item-stats writes.
    before, batch, with_lists = MOVES[case]
    outcomes = {}
    for cuts, failed_first in itertools.product(_cuts(len(batch)), (False, True)):
        pipeline = Pipeline()
        for n, record in enumerate(before, start=1):  # one batch each
            pipeline.send([record], sequences=[n])
        if failed_first:
            upserts = [(n, parse_record(r)) for n, r in enumerate(batch)]
            pipeline.catalog_service.upsert(
                [SequencedUpsert(sequence_key(100 + n), u) for n, u in upserts if isinstance(u, ItemUpsert)],
                SHARD,
            )
        bounds = [0, *cuts, len(batch)]
        for start, end in itertools.pairwise(bounds):
            pipeline.send(batch[start:end], sequences=list(range(100 + start, 100 + end)))
        record = pipeline.catalog.get_many(["pot"], consistent=True)["pot"]
        lists = sorted(
            name
            for name, popular in pipeline.similarity.lists.items()
            if name.startswith("#cat:") and any(item == "pot" for item, _ in popular.items)
        )
        outcomes[(tuple(cuts), failed_first)] = (
            pipeline.item_stats.get_many(["pot"])["pot"].category,
            record.category,
            record.listed_at,
            lists if with_lists else None,
        )  # (Not its former categories: a batch cut into more stores more of them, each
        # taken out of its lists at once, but no list took the item under the ones the whole
        # batch did not store; and with more than five, which are kept differs.)
    assert len({repr(outcome) for outcome in outcomes.values()}) == 1, outcomes


# ---- content neighbours ---------------------------------------------------------------------


def test_content_neighbours_rank_by_shared_text():
    pipeline = Pipeline()
    pipeline.send(CATALOG)
    grinder = pipeline.similarity.rows["grinder"].content
    assert grinder[0].item_id == "beans"
    assert {n.item_id for n in grinder} == {"beans"}  # nothing else shares a token
    tent = [n.item_id for n in pipeline.similarity.rows["tent-2p"].content]
    assert set(tent) == {"bag-down", "stove"}  # the camping items
    assert all(0 < n.score <= 1 for n in pipeline.similarity.rows["tent-2p"].content)


def test_japanese_titles_that_share_a_word_are_look_alikes():
    # One token per title before: the mugs had nothing in common but their category,
    # which the teapot shares too.
    pipeline = Pipeline()
    pipeline.send(
        [
            upsert("mug-steel", "ステンレス製マグカップ", "キッチン"),
            upsert("mug-clay", "陶器マグカップ 大", "キッチン"),
            upsert("teapot", "急須 ティーポット", "キッチン"),
            upsert("tent", "ドームテント 2人用", "アウトドア"),
        ]
    )
    look_alikes = pipeline.similarity.rows["mug-steel"].content
    # (The tent shares one pair by chance: テン of ステンレス and of テント.)
    assert [n.item_id for n in look_alikes] == ["mug-clay", "teapot", "tent"]
    assert look_alikes[0].score > 2 * look_alikes[1].score


def test_a_new_item_is_merged_into_its_neighbours_lists():
    pipeline = Pipeline()
    pipeline.send(CATALOG)
    pipeline.send([upsert("tent-3p", "Ultralight 3-person tent", "camping", tags=["tent", "ultralight"])])
    assert pipeline.similarity.rows["tent-2p"].content[0].item_id == "tent-3p"
    # the rebuild of a collaborative row keeps the content list
    pipeline.send([view("u1", "tent-2p", 1), view("u1", "stove", 2)])
    assert pipeline.similarity.rows["tent-2p"].neighbours
    assert pipeline.similarity.rows["tent-2p"].content[0].item_id == "tent-3p"


def test_an_item_renamed_away_leaves_its_former_look_alikes_lists():
    # The beans become a camping pot: nothing of the grinder left in them. The grinder's
    # list dropped them only when the grinder's own record changed; a list rebuilt for
    # co-occurrence kept them, with their old score and category, for good.
    pipeline = Pipeline()
    pipeline.send(CATALOG)
    assert [n.item_id for n in pipeline.similarity.rows["grinder"].content] == ["beans"]
    before = {n.item_id: n.score for n in pipeline.similarity.rows["stove"].content}
    pipeline.send([upsert("beans", "Titanium camping pot", "camping", at=10, tags=["cookware"])])
    assert pipeline.similarity.rows["grinder"].content == []
    assert [
        i.item_id for i in pipeline.recommendations.similar_items("grinder", 5).items if i.source == "content"
    ] == []
    # Now a camping item: in the stove's list (camping), under its new category.
    stove = {n.item_id: n for n in pipeline.similarity.rows["stove"].content}
    assert stove["beans"].category == "camping" and "beans" not in before


@pytest.mark.parametrize("merge_limit", [20, 1])
def test_a_former_look_alike_keeps_the_item_with_its_new_score_and_category(merge_limit):
    # Still alike after the change, but less so and in another category: the entry in the
    # former look-alike's list says so (its filters read the category there), also when the
    # grinder is no longer among the closest items the beans are merged into.
    pipeline = Pipeline(Settings(content_merge_limit=merge_limit))
    pipeline.send(CATALOG)
    old = {n.item_id: n for n in pipeline.similarity.rows["grinder"].content}["beans"]
    # (With a merge limit of 1 the beans now go into the stove's list alone.)
    pipeline.send([upsert("beans", "Coffee beans for the camping stove", "camping", at=10, tags=["cooking"])])
    assert [n.item_id for n in pipeline.similarity.rows["beans"].content][:2] == ["stove", "grinder"]
    new = {n.item_id: n for n in pipeline.similarity.rows["grinder"].content}["beans"]
    assert new.category == "camping" and 0 < new.score < old.score
    assert new.score == {n.item_id: n.score for n in pipeline.similarity.rows["beans"].content}["grinder"]


def _socks_and_hat(pipeline: Pipeline) -> None:
    """One-item lists: the hat holds the sock, whose own list names its closer twin alone."""
    pipeline.send([upsert("hat", "Wool hat", "clothing")])
    pipeline.send([upsert("sock", "Red wool sock", "clothing")])
    pipeline.send([upsert("sock2", "Red wool sock", "clothing", tags=["pair"])])
    assert [n.item_id for n in pipeline.similarity.rows["hat"].content] == ["sock"]
    assert [n.item_id for n in pipeline.similarity.rows["sock"].content] == ["sock2"]


def test_a_row_holding_an_item_its_list_does_not_name_is_corrected_when_the_item_changes():
    # Lists are not symmetric: the hat's list holds the sock, while the sock's list names
    # only its twin. Renamed into a garden hose, the sock left the twin's list but stayed in
    # the hat's, under "clothing", until the hat's own record changed.
    pipeline = Pipeline(Settings(content_per_item=1, content_merge_limit=1))
    _socks_and_hat(pipeline)
    assert set(pipeline.similarity.rows["sock"].holders) == {"hat", "sock2"}
    pipeline.send([upsert("sock", "Garden hose", "garden", at=10)])
    assert pipeline.similarity.rows["hat"].content == []
    assert pipeline.similarity.rows["sock2"].content == []
    similar = pipeline.recommendations.similar_items("hat", 5).items
    assert "sock" not in [i.item_id for i in similar if i.source == "content"]
    assert pipeline.similarity.rows["sock"].holders == []


def test_a_holder_still_alike_gets_the_items_new_score_and_category():
    pipeline = Pipeline(Settings(content_per_item=1, content_merge_limit=1))
    _socks_and_hat(pipeline)
    old = pipeline.similarity.rows["hat"].content[0]
    pipeline.send([upsert("sock", "Wool sock for hiking boots", "hiking", at=10)])
    new = pipeline.similarity.rows["hat"].content[0]
    assert (new.item_id, new.category) == ("sock", "hiking") and 0 < new.score < old.score
    assert "hat" in pipeline.similarity.rows["sock"].holders


def test_rows_that_dropped_an_item_leave_its_record_of_holders():
    # Each new sock pair pushes the sock out of the first one's one-item list: left in the
    # sock's record, those rows would fill it and push out the hat, which still holds it.
    pipeline = Pipeline(Settings(content_per_item=1, content_merge_limit=1))
    pipeline.send([upsert("sock", "Wool sock", "clothing")])
    pipeline.send([upsert("hat", "Wool hat", "clothing")])
    for n in range(CONTENT_HOLDERS_KEPT):
        pipeline.send([upsert(f"s{n:02d}", f"Wool sock u{n:02d}", "clothing")])
        pipeline.send([upsert(f"t{n:02d}", f"Wool sock u{n:02d} v{n:02d}", "clothing")])
    rows = pipeline.similarity.rows
    holding = {r for r, row in rows.items() if any(n.item_id == "sock" for n in row.content)}
    assert "hat" in holding and set(rows["sock"].holders) == holding
    pipeline.send([upsert("sock", "Garden hose", "garden", at=10)])
    assert rows["hat"].content == []


def _stored_only(pipeline: Pipeline, record: dict) -> None:
    """The ingest stores the record; its announcement waits in the changed-items stream."""
    pipeline.sequence += 1
    upsert_record = SequencedUpsert(sequence_key(pipeline.sequence), parse_record(record))
    pipeline.catalog_service.upsert([upsert_record], SHARD)
    pipeline.changes.drain_content()


def test_an_entry_taken_from_a_record_not_yet_announced_is_corrected_when_it_changes_back():
    # The sock is moved to "garden" by mistake and back; before its announcements are
    # handled, a new look-alike's list takes it as "garden". Its record is then back to what
    # its row's digest says, yet the look-alike's entry must be corrected.
    pipeline = Pipeline(Settings(content_merge_limit=1))
    pipeline.send([upsert("sock", "Red wool sock", "clothing")])
    pipeline.send([upsert("sock2", "Blue wool sock", "clothing")])
    _stored_only(pipeline, upsert("sock", "Red wool sock", "garden", at=10))
    _stored_only(pipeline, upsert("sock3", "Green wool sock", "clothing"))
    pipeline.similarity_service.recompute((), (), (), {"sock3"})
    entry = {n.item_id: n for n in pipeline.similarity.rows["sock3"].content}["sock"]
    assert entry.category == "garden"
    _stored_only(pipeline, upsert("sock", "Red wool sock", "clothing", at=20))
    pipeline.similarity_service.recompute((), (), (), {"sock"})
    entry = {n.item_id: n for n in pipeline.similarity.rows["sock3"].content}["sock"]
    assert entry.category == "clothing"


def test_a_retry_after_a_half_written_batch_still_corrects_the_holders():
    # The hat's row fails to be written while the other rows of the batch (the sock's,
    # with its new digest, among them in one BatchWriteItem's order or another) are: the
    # retry must not take the sock's change as done.
    pipeline = Pipeline(Settings(content_per_item=1, content_merge_limit=1))
    _socks_and_hat(pipeline)
    table = pipeline.similarity
    put_rows = table.put_rows
    failed: list[str] = []

    def failing_on_the_hat(rows):
        rows = list(rows)
        if not failed and any(row.item_id == "hat" for row in rows):
            put_rows([row for row in rows if row.item_id != "hat"])
            failed.append("hat")
            raise ConnectionError("the hat's chunk was not written")
        return put_rows(rows)

    table.put_rows = failing_on_the_hat  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        pipeline.send([upsert("sock", "Garden hose", "garden", at=10)])
    assert [n.item_id for n in table.rows["hat"].content] == ["sock"]
    pipeline.similarity_service.recompute((), (), (), {"sock"})  # the stream's retry
    assert table.rows["hat"].content == [] and table.rows["sock2"].content == []


def test_a_stock_change_reads_and_writes_no_holders_row():
    # Its tokens and category are as they were: its entries in other lists stand.
    pipeline = Pipeline(Settings(content_per_item=1, content_merge_limit=1))
    _socks_and_hat(pipeline)
    read: list[str] = []
    written: list[str] = []
    table = pipeline.similarity
    get_many, put_rows = table.get_many, table.put_rows

    def reading(item_ids, *args, **kwargs):
        read.extend(item_ids)
        return get_many(item_ids, *args, **kwargs)

    def writing(rows):
        rows = list(rows)
        written.extend(row.item_id for row in rows)
        return put_rows(rows)

    table.get_many, table.put_rows = reading, writing  # type: ignore[method-assign]
    pipeline.send([upsert("sock", "Red wool sock", "clothing", at=10, in_stock=False)])
    assert "hat" not in read and "hat" not in written
    assert pipeline.similarity.rows["hat"].content[0].item_id == "sock"
    assert pipeline.similarity.lists[OUT_OF_STOCK_ROW].items == [("sock", T0 + 10)]


def test_an_item_records_its_most_recent_holders_only():
    pipeline = Pipeline()
    pipeline.send([upsert("base", "Wool sock", "clothing")])
    for n in range(CONTENT_HOLDERS_KEPT + 10):
        pipeline.send([upsert(f"sock{n:02d}", f"Wool sock model{n:02d}", "clothing")])
    holders = pipeline.similarity.rows["base"].holders
    assert len(holders) == CONTENT_HOLDERS_KEPT
    # Each new sock's list names the base (and rewrites the rows it names): the last
    # ones are its most recent holders.
    assert holders[-1] == f"sock{CONTENT_HOLDERS_KEPT + 9:02d}"
    assert set(holders) <= {n.item_id for n in pipeline.similarity.rows["base"].content} | {
        f"sock{n:02d}" for n in range(CONTENT_HOLDERS_KEPT + 10)
    }
    assert all("base" in {n.item_id for n in pipeline.similarity.rows[h].content} for h in holders[-20:]), (
        "a recorded holder holds it"
    )


def test_an_early_items_norm_is_computed_again_once_the_catalog_has_grown():
    # The kids' shoe is written first, into a catalog of one item, where every idf is 1: the
    # norm of its 5 tokens is √5. Kept, that norm would give the kids' shoe a cosine to a
    # new Gore trail shoe above the women's Gore trail shoe, which holds all of the new
    # shoe's tokens (the clip to 1 hid it).
    pipeline = Pipeline()
    pipeline.send([upsert("kids", "Kids trail running shoe", "shoes")])
    early = pipeline.catalog.items["kids"]
    assert (early.norm_documents, early.norm) == (1.0, pytest.approx(5**0.5))
    # 60 road shoes: the kids' shoe is their candidate and its norm is computed again, at 61.
    pipeline.send([upsert(f"road{n}", f"Road running shoe model{n}", "shoes") for n in range(60)])
    refreshed = pipeline.catalog.items["kids"]
    assert refreshed.norm_documents == 61
    assert refreshed.norm > 2 * early.norm
    pipeline.send([upsert("women", "Women Gore trail running shoe", "shoes")])
    pipeline.send([upsert("gore", "Gore trail running shoe", "shoes")])
    ranked = [n.item_id for n in pipeline.similarity.rows["gore"].content]
    assert ranked[:2] == ["women", "kids"]
    # Not again before the catalog doubles (63 items now).
    assert pipeline.catalog.items["kids"].norm_documents == 61


# ---- COLD-START ACCEPTANCE TEST (issue 4, acceptance 4) -----------------------------------


def test_cold_start_new_item_appears_in_similar_items_of_a_content_similar_item():
    """(a) A new item with a catalog record and no interactions appears in
    GET /items/{X}/similar of a content-similar item X that has interactions."""
    pipeline = Pipeline(Settings(cold_item_weight=6))  # the tent's 6 viewers make it warm
    pipeline.send(CATALOG)
    _warm(pipeline)
    before = pipeline.recommendations.similar_items("tent-2p", 3)
    assert [r.source for r in before.items] == ["similar"] * 3 and not before.fallback
    assert "tent-3p" not in [r.item_id for r in before.items]

    pipeline.send([upsert("tent-3p", "Ultralight 3-person tent", "camping", tags=["tent", "backpacking"])])
    assert "tent-3p" not in pipeline.cooccurrence.items()  # no interactions at all
    after = pipeline.recommendations.similar_items("tent-2p", 3)
    listed = {r.item_id: r for r in after.items}
    assert "tent-3p" in listed
    assert listed["tent-3p"].reasons == ["similar to tent-2p (title, category, tags)"]
    # a warm item keeps its collaborative neighbours in front; the new one has a reserved slot
    assert [r.reasons[0] for r in after.items[:2]] == ["customers who viewed tent-2p also viewed this"] * 2
    assert after.items[2].item_id == "tent-3p"

    # and the new item's own similar items come from its content (it is cold)
    own = pipeline.recommendations.similar_items("tent-3p", 3)
    assert own.items[0].item_id == "tent-2p" and not own.fallback


def test_a_users_own_item_listed_for_its_categorys_popularity_says_it_is_theirs():
    """Without self-similarity, the newbie's own "beans" (popular in coffee) is listed for its
    category's popularity: its reason names the user's item (it said "popular in coffee,
    which you browsed")."""
    pipeline = Pipeline(settings=replace(Settings(), self_similarity=0.0))
    pipeline.send(CATALOG)
    _warm(pipeline)
    for user in range(3):
        pipeline.send([view(f"c{user}", "beans", 100 + user)])
    pipeline.send([view("newbie", "beans", 300)])
    result = pipeline.recommendations.for_user("newbie", 5, exclude="none")
    listed = {r.item_id: r for r in result.items}
    assert listed["beans"].reasons == ["you recently looked at beans"]
    assert listed["beans"].because == ["beans"]
    assert listed["grinder"].reasons == ["because you viewed beans"]  # other items as before


def test_cold_start_new_user_gets_popular_in_category_after_first_view():
    """(b) After one view, a new user's recommendations include popular items of the
    viewed item's category, also when the event names no category (the catalog's is used)."""
    pipeline = Pipeline()
    pipeline.send(CATALOG)
    _warm(pipeline)
    # coffee items are popular in their category, among other users
    for user in range(3):
        pipeline.send([view(f"c{user}", "beans", 100 + user)])
    pipeline.send([view("c9", "beans", 200), view("c9", "grinder", 201)])

    pipeline.send([view("newbie", "grinder", 300)])  # no category on the event
    state = pipeline.users.get("newbie")
    assert state is not None and state.items[0].category == "coffee"
    result = pipeline.recommendations.for_user("newbie", 5)
    reasons = {r.item_id: r.reasons for r in result.items}
    assert not result.fallback
    assert reasons["beans"] == ["popular in coffee, which you browsed"]
    # the category list itself was built from catalog categories
    assert [i for i, _ in pipeline.similarity.get_list("#cat:coffee").items][:2] == ["beans", "grinder"]

    # Without the catalog (what happened before it), the same uncategorised events leave
    # the user without a category: no popular-in-category items.
    bare = Pipeline()
    for user in range(3):
        bare.send([view(f"c{user}", "beans", 100 + user)])
    bare.send([view("newbie", "grinder", 300)])
    reasons = [reason for r in bare.recommendations.for_user("newbie", 5).items for reason in r.reasons]
    assert not any(reason.startswith("popular in") for reason in reasons)


def test_coldness_follows_support_not_the_number_of_neighbours():
    """One shopper's session gives the tent 4 neighbours but a support of 1: it is still
    nearly cold, so its text leads its similar items; many shoppers make it warm."""
    pipeline = Pipeline(Settings(cold_item_weight=10))
    pipeline.send(CATALOG)
    pipeline.send(
        [view("u1", item, n) for n, item in enumerate(("tent-2p", "grinder", "beans", "lamp", "stove"))]
    )
    row = pipeline.similarity.rows["tent-2p"]
    assert len(row.neighbours) == 4 and row.support == 1.0
    first = pipeline.recommendations.similar_items("tent-2p", 2).items
    assert [r.item_id for r in first] == ["stove", "bag-down"]  # the camping items, by text
    assert "similar to tent-2p (title, category, tags)" in first[0].reasons

    for user in range(2, 12):  # ten more shoppers view the tent, then the coffee grinder
        pipeline.send(
            [view(f"u{user}", "tent-2p", 100 + 2 * user), view(f"u{user}", "grinder", 101 + 2 * user)]
        )
    row = pipeline.similarity.rows["tent-2p"]
    assert row.support == 11.0  # warm: behaviour leads
    listed = pipeline.recommendations.similar_items("tent-2p", 3).items
    assert listed[0].item_id == "grinder"
    assert "bag-down" in [r.item_id for r in listed]  # known only by its text: a reserved slot
    # which never takes the whole list: k = 1 is the single best item
    assert [r.item_id for r in pipeline.recommendations.similar_items("tent-2p", 1).items] == ["grinder"]


def test_cold_history_item_brings_its_content_neighbours():
    pipeline = Pipeline()
    pipeline.send(CATALOG)
    pipeline.send([view("solo", "grinder", 1)])  # no co-occurrence: the grinder is cold
    result = pipeline.recommendations.for_user("solo", 3, exclude="history")
    assert result.items[0].item_id == "beans"
    assert result.items[0].reasons == ["because you viewed grinder"]


# ---- stock ----------------------------------------------------------------------------------


def test_out_of_stock_items_never_appear_anywhere():
    pipeline = Pipeline()
    pipeline.send(CATALOG)
    _warm(pipeline)
    for n in range(3):
        basket = f"o{n}"
        pipeline.send(
            [
                view(f"b{n}", "tent-2p", 500 + n, "purchase", basket_id=basket),
                view(f"b{n}", "stove", 501 + n, "purchase", basket_id=basket),
                view(f"b{n}", "lamp", 502 + n, "purchase", basket_id=basket),
            ]
        )
    assert "stove" in [r.item_id for r in pipeline.recommendations.similar_items("tent-2p", 10).items]
    assert "stove" in [r.item_id for r in pipeline.cross_sell.for_items(["tent-2p"], 10).items]

    pipeline.send([upsert("stove", "Compact camping stove", "camping", at=50, in_stock=False)])
    assert [i for i, _ in pipeline.similarity.get_list(OUT_OF_STOCK_ROW).items] == ["stove"]

    def everything(result) -> list[str]:
        return [r.item_id for r in result.items]

    lists = [
        pipeline.recommendations.similar_items("tent-2p", 10),
        pipeline.recommendations.similar_items("bag-down", 10),
        pipeline.recommendations.similar_items("unknown-item", 10),  # popular fallback
        pipeline.recommendations.for_user("u1", 10),
        pipeline.recommendations.for_user("stranger", 10),  # popular fallback
        pipeline.cross_sell.for_items(["tent-2p"], 10),
        pipeline.cross_sell.for_items(["grinder"], 10),  # popular padding
        pipeline.cross_sell.for_user("b1", 10),
    ]
    for result in lists:
        assert "stove" not in everything(result)
        assert everything(result)  # the lists are not simply empty
    # Unless the request asks for out-of-stock items too (in_stock=false).
    anything = ListFilter(in_stock_only=False)
    assert "stove" in everything(pipeline.recommendations.similar_items("tent-2p", 10, anything))
    assert "stove" in everything(pipeline.cross_sell.for_items(["tent-2p"], 10, list_filter=anything))

    pipeline.send([upsert("stove", "Compact camping stove", "camping", at=60, in_stock=True)])
    assert not pipeline.similarity.get_list(OUT_OF_STOCK_ROW).items
    assert "stove" in everything(pipeline.recommendations.similar_items("tent-2p", 10))


def test_items_without_catalog_record_count_as_in_stock():
    pipeline = Pipeline()
    pipeline.send([view("u1", "x", 1), view("u1", "y", 2), view("u2", "x", 3), view("u2", "y", 4)])
    assert [r.item_id for r in pipeline.recommendations.similar_items("x", 1).items] == ["y"]


@pytest.mark.parametrize("k", [1, 2, 5])
def test_similar_items_of_a_cold_item_are_exactly_k_by_content(k):
    pipeline = Pipeline()
    pipeline.send([upsert(f"tent-{n}", f"Tent model {n}", "camping", tags=["tent"]) for n in range(12)])
    pipeline.send([upsert("tent-new", "Tent model new", "camping", tags=["tent"])])
    result = pipeline.recommendations.similar_items("tent-new", k)
    assert len(result.items) == k and not result.fallback
    assert all(r.reasons == ["similar to tent-new (title, category, tags)"] for r in result.items)
    scores = [r.score for r in result.items]
    assert scores == sorted(scores, reverse=True)


# ---- configuration ------------------------------------------------------------------------


def test_blending_is_configured_by_the_environment():
    settings = load_settings({"CONTENT_WEIGHT": "0.5", "CONTENT_SLOTS": "0", "COLD_ITEM_WEIGHT": "12.5"})
    assert (settings.content_weight, settings.content_slots, settings.cold_item_weight) == (0.5, 0.0, 12.5)
    assert load_settings({}).content_weight == Settings().content_weight
    assert load_settings({"COLD_POPULAR_SHARE": "0.25"}).cold_popular_share == 0.25


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CONTENT_WEIGHT": "1.5"}, "CONTENT_WEIGHT=1.5"),
        ({"CONTENT_SLOTS": "-0.1"}, "each must be in 0..1"),
        ({"CONTENT_SLOTS": "nan"}, "CONTENT_SLOTS=nan"),
        ({"COLD_ITEM_WEIGHT": "0"}, "COLD_ITEM_WEIGHT=0.0; expected > 0"),
        ({"COLD_ITEM_WEIGHT": "inf"}, "COLD_ITEM_WEIGHT=inf"),
        ({"COLD_ITEM_WEIGHT": "many"}, "COLD_ITEM_WEIGHT='many' is not a valid float"),
        ({"COLD_POPULAR_SHARE": "1.5"}, "COLD_POPULAR_SHARE=1.5; expected 0..1"),
        ({"COLD_POPULAR_SHARE": "nan"}, "COLD_POPULAR_SHARE=nan"),
    ],
)
def test_bad_blending_settings_fail_at_cold_start(environ, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        load_settings(environ)


def test_content_in_personalized_scores_is_on_the_items_own_scale():
    from streamrec.domain.model import Neighbour, SimilarityRow
    from streamrec.domain.recommend import content_scale

    settings = Settings(cold_item_weight=10)
    text = [Neighbour("look-alike", 0.9)]
    # nobody bought it: its text stands in fully
    assert content_scale(SimilarityRow("new", [], content=text, support=0.0), settings) == 1.0
    # half known, strongest Jaccard 0.2: the cosine 0.9 counts as 0.9 * 0.5 * 0.2
    known = SimilarityRow(
        "half", [Neighbour("mate", 0.2), Neighbour("other", 0.1)], content=text, support=5.0
    )
    assert content_scale(known, settings) == pytest.approx(0.1)
    # well known: its text does not count
    assert (
        content_scale(SimilarityRow("warm", [Neighbour("mate", 0.2)], content=text, support=10.0), settings)
        == 0.0
    )


def test_a_cold_items_text_does_not_outrank_its_real_neighbours_in_personalized_lists():
    """The tent, bought by one shopper with the popular stove (Jaccard 0.1), has a new
    look-alike (cosine about 0.8): on the tent's own scale the look-alike stays below the
    stove, instead of far above it."""
    pipeline = Pipeline(Settings(category_blend=0.0))
    pipeline.send(CATALOG)
    pipeline.send([upsert("tent-3p", "Ultralight 3-person tent", "camping", tags=["tent", "ultralight"])])
    for user in range(9):
        pipeline.send([view(f"s{user}", "stove", 10 + user)])
    pipeline.send([view("u1", "tent-2p", 30), view("u1", "stove", 31)])
    row = pipeline.similarity.rows["tent-2p"]
    assert row.neighbours[0].item_id == "stove" and row.neighbours[0].score == pytest.approx(0.1)
    assert row.content[0].item_id == "tent-3p" and row.content[0].score > 0.5
    pipeline.send([view("me", "tent-2p", 40)])
    listed = [r.item_id for r in pipeline.recommendations.for_user("me", 3, exclude="history").items]
    assert listed.index("stove") < listed.index("tent-3p")


def _shop_with_a_new_tent(**settings: Any) -> Pipeline:
    """12 tents and 3 other camping items in the catalog, 3 mugs; shoppers view the
    mugs most (the global best sellers) and the stove, lantern and chair (camping's);
    tent-new has a catalog record and nothing else."""
    pipeline = Pipeline(Settings(**settings))
    pipeline.send([upsert(f"tent-{n}", f"Tent model {n}", "camping", tags=["tent"]) for n in range(12)])
    pipeline.send(
        [
            upsert("stove", "Compact stove", "camping"),
            upsert("lantern", "Bright lantern", "camping"),
            upsert("chair", "Folding chair", "camping"),
            *(upsert(f"mug-{n}", f"Enamel mug {n}", "kitchen") for n in range(3)),
        ]
    )
    at = 0
    for user in range(4):
        for item in ("mug-0", "mug-1", "mug-2", "mug-0", "stove", "lantern", "chair"):
            at += 1
            pipeline.send([view(f"shopper{user}", item, at)])
    pipeline.send([upsert("tent-new", "Tent model new", "camping", tags=["tent"], at=at)])
    return pipeline


def test_a_new_items_list_gives_its_popular_share_to_best_sellers_of_its_own_category():
    pipeline = _shop_with_a_new_tent(cold_popular_share=0.7)
    result = pipeline.recommendations.similar_items("tent-new", 10)
    ids = [r.item_id for r in result.items]
    # 7 slots for popular items, but its category has only 3: the look-alikes keep the rest.
    assert ids[:7] == [r.item_id for r in _look_alikes(pipeline, "tent-new", 7)]
    assert sorted(ids[7:]) == ["chair", "lantern", "stove"]  # camping's, never the mugs
    assert all(r.reasons == ["popular in camping right now"] for r in result.items[7:])
    scores = [r.score for r in result.items]
    assert scores == sorted(scores, reverse=True)
    # k = 1 is its single best look-alike; without the setting, look-alikes only.
    assert [r.item_id for r in pipeline.recommendations.similar_items("tent-new", 1).items] == ids[:1]
    plain = _shop_with_a_new_tent(cold_popular_share=0.0).recommendations.similar_items("tent-new", 10)
    assert all(r.reasons == ["similar to tent-new (title, category, tags)"] for r in plain.items)


def test_the_popular_share_falls_with_support():
    # k = 4 at share 0.5: 2 slots for an item nobody bought, 0 once its support reaches
    # cold_item_weight (the stove: 4 viewers).
    pipeline = _shop_with_a_new_tent(cold_popular_share=0.5, cold_item_weight=4.0)
    new = pipeline.recommendations.similar_items("tent-new", 4)
    assert [r.reasons for r in new.items].count(["popular in camping right now"]) == 2
    warm = pipeline.recommendations.similar_items("stove", 10)
    assert ["popular in camping right now"] not in [r.reasons for r in warm.items]


def test_a_filter_that_leaves_none_of_the_look_alikes_keeps_the_categorys_share():
    # tent's one look-alike, tent-2, excluded (or out of stock): tent keeps its share of
    # camping's best seller (the stove, known by its events alone), not the mugs alone.
    pipeline = Pipeline(Settings(cold_popular_share=0.5))
    pipeline.send(
        [upsert("tent", "Ultralight tent", "camping"), upsert("tent-2", "Ultralight tent large", "camping")]
    )
    at = 0
    for user in range(3):
        for item, category in (
            ("stove", "camping"),
            ("mug-0", "kitchen"),
            ("mug-1", "kitchen"),
            ("mug-0", "kitchen"),
        ):
            at += 1
            pipeline.send([view(f"shopper{user}", item, at, category=category)])
    unfiltered = pipeline.recommendations.similar_items("tent", 2).items
    assert [(r.item_id, r.reasons) for r in unfiltered] == [
        ("tent-2", ["similar to tent (title, category, tags)"]),
        ("stove", ["popular in camping right now"]),
    ]
    excluded = pipeline.recommendations.similar_items("tent", 2, ListFilter(exclude=frozenset({"tent-2"})))
    assert ("stove", ["popular in camping right now"]) in [(r.item_id, r.reasons) for r in excluded.items]
    assert len(excluded.items) == 2 and excluded.fallback


def _look_alikes(pipeline: Pipeline, item: str, k: int) -> list:
    """The item's best look-alikes alone (the blend at cold_popular_share 0)."""
    service = RecommendationService(
        replace(pipeline.settings, cold_popular_share=0.0), pipeline.users, pipeline.similarity
    )
    return service.similar_items(item, k).items


def test_a_row_without_its_category_gets_no_popular_share():
    # Rows stored before rows recorded their category: no best sellers of another category.
    pipeline = _shop_with_a_new_tent(cold_popular_share=0.7)
    pipeline.similarity.rows["tent-new"].category = ""
    listed = pipeline.recommendations.similar_items("tent-new", 10).items
    assert all(r.reasons == ["similar to tent-new (title, category, tags)"] for r in listed)


def test_a_warming_items_partner_known_only_by_behaviour_keeps_a_reserved_slot():
    """Eight shoppers view tent-0 and then mug-0, nothing alike: at a support of 8 the tent is
    still 90 % cold, so its eleven look-alikes and camping's best sellers outscore the mug.
    With BEHAVIOUR_SLOTS=0.1 the mug holds a reserved slot, through the popular share too,
    and k = 1 is still the single best item; by default (0) it is outscored."""

    def shop(**settings: Any) -> Pipeline:
        pipeline = Pipeline(Settings(**settings))
        pipeline.send([upsert(f"tent-{n}", f"Tent model {n}", "camping", tags=["tent"]) for n in range(12)])
        pipeline.send([upsert("mug-0", "Enamel mug", "kitchen"), upsert("stove", "Compact stove", "camping")])
        for user in range(8):
            pipeline.send([view(f"u{user}", "tent-0", 2 * user), view(f"u{user}", "mug-0", 2 * user + 1)])
        for user in range(8, 12):
            pipeline.send([view(f"u{user}", "stove", 100 + user)])
        return pipeline

    pipeline = shop(behaviour_slots=0.1)
    assert pipeline.similarity.rows["tent-0"].support == 8.0
    listed = pipeline.recommendations.similar_items("tent-0", 10).items
    reasons = {r.item_id: r.reasons for r in listed}
    assert reasons["mug-0"] == ["customers who viewed tent-0 also viewed this"]
    assert "stove" in reasons  # the popular share is kept beside it
    assert sum(r.item_id.startswith("tent-") for r in listed) >= 6
    assert [r.item_id for r in pipeline.recommendations.similar_items("tent-0", 1).items] != ["mug-0"]
    without = shop().recommendations.similar_items("tent-0", 10).items
    assert "mug-0" not in [r.item_id for r in without]


def test_the_popular_share_keeps_the_discovery_slot_but_never_the_best_item():
    from streamrec.domain.recommend import Recommendation, _keeping

    listed = [Recommendation(i, 1.0 - n / 10, "similar", [], []) for n, i in enumerate("abcdef")]
    assert [r.item_id for r in _keeping(listed, 3, {"e"})] == ["a", "b", "e"]
    assert [r.item_id for r in _keeping(listed, 3, {"b", "e", "f"})] == ["a", "b", "e"]
    assert [r.item_id for r in _keeping(listed, 1, {"e"})] == ["a"]
    assert [r.item_id for r in _keeping(listed, 4, set())] == ["a", "b", "c", "d"]


# ---- edits that leave the text as it was ---------------------------------------------------


def _posting_writes(pipeline: Pipeline) -> list[tuple[dict, dict]]:
    """Records each call's token additions and removals (empty ones left out of each)."""
    calls: list[tuple[dict, dict]] = []
    original = pipeline.catalog.update_postings

    def recorded(add, remove, limit):
        calls.append(({t: set(i) for t, i in add.items() if i}, {t: set(i) for t, i in remove.items() if i}))
        return original(add, remove, limit)

    pipeline.catalog.update_postings = recorded  # type: ignore[method-assign]
    return calls


def _upsert_only(pipeline: Pipeline, record: dict) -> set[str]:
    """One catalog record through the ingest; the items it announced to the similarity side."""
    pipeline.sequence += 1
    parsed = parse_record(record)
    assert isinstance(parsed, ItemUpsert)
    pipeline.catalog_service.upsert([SequencedUpsert(sequence_key(pipeline.sequence), parsed)], SHARD)
    return pipeline.changes.drain_content()


def test_a_price_change_posts_nothing_keeps_the_norm_and_is_not_announced():
    # A shop's daily price feed upserts every item with its text unchanged: the similarity
    # side derives nothing from a price, so only the record is written.
    pipeline = Pipeline()
    pipeline.send(CATALOG)
    before = pipeline.catalog.get_many(["tent-2p"])["tent-2p"]
    calls = _posting_writes(pipeline)
    announced = _upsert_only(pipeline, {**CATALOG[0], "price": 12.5, "timestamp": T0 + 5})
    stored = pipeline.catalog.get_many(["tent-2p"])["tent-2p"]
    assert stored.price == 12.5 and stored.timestamp == T0 + 5
    assert (stored.norm, stored.norm_documents) == (before.norm, before.norm_documents) != (0.0, 0.0)
    assert announced == set()
    assert calls == [({}, {})]  # no posting touched
    assert pipeline.catalog.documents() == len(CATALOG)


def test_a_stock_change_is_announced_without_posting_anything():
    pipeline = Pipeline()
    pipeline.send(CATALOG)
    calls = _posting_writes(pipeline)
    announced = _upsert_only(pipeline, {**CATALOG[0], "in_stock": False, "timestamp": T0 + 5})
    assert announced == {"tent-2p"} and calls == [({}, {})]
    # Its text is as its row's digest says: its content list and its entries in other rows
    # stand (stock is filtered at request time), so no row is written but the stock set.
    rows_before = {item_id: replace(row) for item_id, row in pipeline.similarity.rows.items()}
    written: list[str] = []
    put_rows = pipeline.similarity.put_rows

    def recorded(rows):
        rows = list(rows)
        written.extend(row.item_id for row in rows)
        return put_rows(rows)

    pipeline.similarity.put_rows = recorded  # type: ignore[method-assign]
    pipeline.similarity_service.recompute((), (), (), announced)
    assert [item for item, _ in pipeline.similarity.get_list(OUT_OF_STOCK_ROW).items] == ["tent-2p"]
    assert written == []
    assert pipeline.similarity.rows == rows_before


def test_a_category_change_with_the_same_tokens_is_announced():
    # "Camping" and "camping" give the same token; the row's category is the record's.
    pipeline = Pipeline()
    pipeline.send(CATALOG)
    announced = _upsert_only(pipeline, {**CATALOG[0], "category": "Camping", "timestamp": T0 + 5})
    assert announced == {"tent-2p"}
    pipeline.similarity_service.recompute((), (), (), announced)
    assert pipeline.similarity.rows["tent-2p"].category == "Camping"


def test_a_title_change_posts_its_tokens_and_is_announced():
    pipeline = Pipeline()
    pipeline.send(CATALOG)
    calls = _posting_writes(pipeline)
    announced = _upsert_only(
        pipeline, {**CATALOG[0], "title": "Ultralight 2-person dome tent", "timestamp": T0 + 5}
    )
    assert announced == {"tent-2p"}
    ((added, removed),) = calls
    assert added["dome"] == {"tent-2p"} and removed == {}
    assert pipeline.catalog.tokens["dome"] == {"tent-2p"}


def test_a_re_driven_record_repairs_content_rows_whose_announcement_was_lost():
    # A title change is written but its announcement is lost (its batch given up after the
    # writes); a price change after it is not announced; re-driving the title change (now
    # stale: older than the price change) announces the item again.
    pipeline = Pipeline()
    pipeline.send(CATALOG)
    retitled = {**CATALOG[5], "title": "Ultralight backpacking tent", "tags": [], "timestamp": T0 + 5}
    assert _upsert_only(pipeline, retitled) == {"beans"}  # ...and then lost
    assert _upsert_only(pipeline, {**retitled, "price": 11.0, "timestamp": T0 + 6}) == set()
    assert pipeline.similarity.rows["beans"].content[0].item_id == "grinder"  # as before
    announced = _upsert_only(pipeline, retitled)
    assert announced == {"beans"}
    pipeline.similarity_service.recompute((), (), (), announced)
    assert pipeline.similarity.rows["beans"].content[0].item_id == "tent-2p"
