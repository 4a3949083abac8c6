"""The catalog repository's DynamoDB adapter (on moto) against the in-memory one: the same
operations give the same answers, and the whole catalog path (ingest side and content
side) leaves the same records, postings, content lists and out-of-stock row."""

from __future__ import annotations

from dataclasses import replace

import boto3

from streamrec import wiring
from streamrec.domain.catalog import CatalogService, SequencedUpsert, recount
from streamrec.domain.model import (
    NEW_ARRIVALS_ROW,
    NOT_YET_LISTED,
    OUT_OF_STOCK_ROW,
    CatalogItem,
    Posting,
    new_arrivals_row,
    sequence_key,
)
from streamrec.domain.similarity import SimilarityService
from streamrec.events import SMALLEST_STORED_NUMBER, parse_record
from streamrec.repositories.dynamodb import DynamoCatalogRepository, DynamoSimilarityRepository, DynamoTable
from streamrec.repositories.memory import (
    InMemoryCatalogRepository,
    InMemoryChangePublisher,
    InMemoryCooccurrenceRepository,
    InMemoryItemStatsRepository,
    InMemorySimilarityRepository,
)
from streamrec.settings import load_settings

SHARD = "shardId-000000000000"
T0 = 1_764_000_000


def _item(item_id: str, at: float, title: str = "Blue tent", in_stock: bool = True) -> CatalogItem:
    return CatalogItem(
        item_id, title, "camping", 12.5, in_stock, ["a", "b"], T0 + at, {"blue": 1, "tent": 2}, 1.5
    )


def _both(aws) -> list:
    table = DynamoTable(aws.tables["CatalogTable"].name, boto3.client("dynamodb"))
    return [InMemoryCatalogRepository(), DynamoCatalogRepository(table)]


def test_records_conditional_writes_and_categories_match(aws):
    for repository in _both(aws):
        assert repository.put_many([(_item("a", 1), None), (_item("b", 1), None)]) == []
        # a second "new" write of a, and a write planned against a stale timestamp, both lose
        assert repository.put_many([(_item("a", 2), None), (_item("b", 3), T0 + 0.5)]) == ["a", "b"]
        assert repository.put_many([(_item("a", 5, "Red tent", in_stock=False), T0 + 1)]) == []
        found = repository.get_many(["a", "b", "missing"], consistent=True)
        assert found == {"a": _item("a", 5, "Red tent", in_stock=False), "b": _item("b", 1)}
        assert repository.categories(["a", "missing"]) == {"a": "camping"}
        # Whether the record moved the item's category, and from which ones, is kept with it.
        moved = replace(
            _item("a", 6), moved_by=sequence_key(7), former_categories=["tents", "camping gear ⛺"]
        )
        assert repository.put_many([(moved, T0 + 5)]) == []
        assert repository.get_many(["a"], consistent=True)["a"] == moved


def test_a_row_stored_before_moved_by_was_kept_names_its_own_record_as_the_move(aws):
    # Such rows say only `moved: true` of the record that wrote them.
    client = boto3.client("dynamodb")
    name = aws.tables["CatalogTable"].name
    repository = DynamoCatalogRepository(DynamoTable(name, client))
    for item_id in ("a", "b"):
        stored = replace(_item(item_id, 1), shard="shardId-000000000000", sequence=sequence_key(7))
        assert repository.put_many([(stored, None)]) == []
    client.update_item(
        TableName=name,
        Key={"item_id": {"S": "a"}},
        UpdateExpression="SET moved = :true",
        ExpressionAttributeValues={":true": {"BOOL": True}},
    )
    found = repository.get_many(["a", "b"], consistent=True)
    assert (found["a"].moved_by, found["b"].moved_by) == (sequence_key(7), "")
    # And rows written now say `moved` too when their own record moved the item, for such a
    # version to read after a rollback (not when an earlier record of its batch did).
    for item_id, mover in (("c", 8), ("d", 7)):
        item = replace(_item(item_id, 1), shard="shardId-000000000000", sequence=sequence_key(8))
        assert repository.put_many([(replace(item, moved_by=sequence_key(mover)), None)]) == []
    raw = {
        item_id: client.get_item(TableName=name, Key={"item_id": {"S": item_id}})["Item"].get("moved")
        for item_id in ("c", "d")
    }
    assert raw == {"c": {"BOOL": True}, "d": None}


def test_a_refreshed_norm_is_stored_only_over_an_older_norm_of_the_same_record(aws):
    for repository in _both(aws):
        stored = replace(_item("a", 1), norm_documents=10.0)
        assert repository.put_many([(stored, None)]) == []
        repository.refresh_norms(
            [
                replace(stored, norm=2.5, norm_documents=40.0),
                replace(_item("ghost", 1), norm=9.0, norm_documents=40.0),  # no record: none made
            ]
        )
        assert repository.get_many(["a", "ghost"], consistent=True) == {
            "a": replace(stored, norm=2.5, norm_documents=40.0)
        }
        # computed at fewer documents (a slower invocation), or for an older record: ignored
        repository.refresh_norms([replace(stored, norm=3.0, norm_documents=20.0)])
        repository.refresh_norms([replace(stored, timestamp=T0, norm=4.0, norm_documents=80.0)])
        assert repository.get_many(["a"], consistent=True)["a"].norm == 2.5
        # A record of the same time with other fields, written since by a later stream record:
        # a norm computed from the one before does not go onto it.
        later = replace(
            stored, title="Blue tent XL", shard=SHARD, sequence=sequence_key(9), norm_documents=40.0
        )
        assert repository.put_many([(later, stored.timestamp)]) == []
        repository.refresh_norms([replace(stored, norm=5.0, norm_documents=90.0)])
        repository.refresh_norms([replace(later, sequence=sequence_key(8), norm=6.0, norm_documents=90.0)])
        assert repository.get_many(["a"], consistent=True)["a"] == later
        repository.refresh_norms([replace(later, norm=7.0, norm_documents=90.0)])
        assert repository.get_many(["a"], consistent=True)["a"].norm == 7.0


def test_the_smallest_price_the_schema_takes_is_stored_by_both_adapters(aws):
    record = parse_record(
        {
            "event_type": "item_upsert",
            "item_id": "a",
            "title": "Pin",
            "category": "camping",
            "price": SMALLEST_STORED_NUMBER,
            "in_stock": True,
            "timestamp": T0,
        }
    )
    item = replace(_item("a", 1), price=record.price)
    for repository in _both(aws):
        assert repository.put_many([(item, None)]) == []
        assert repository.get_many(["a"], consistent=True)["a"].price == SMALLEST_STORED_NUMBER


def test_postings_and_document_count_match(aws):
    answers = []
    for repository in _both(aws):
        first = repository.update_postings({"tent": {"a", "b"}, "blue": {"a"}}, {}, limit=3)
        again = repository.update_postings({"tent": {"a", "b"}}, {}, limit=3)  # idempotent
        full = repository.update_postings({"tent": {"c"}, "red": {"c"}}, {"blue": {"a", "zz"}}, limit=3)
        over = repository.update_postings({"tent": {"d"}}, {}, limit=3)  # full: refused
        # One batch can take a posting past the limit (checked before the add); once full,
        # its size is still reported as the document frequency.
        past = repository.update_postings({"red": {"d", "e", "f"}}, {}, limit=3)
        refused = repository.update_postings({"red": {"g"}}, {}, limit=3)
        assert (past, refused) == ({"red": 4}, {"red": 4})
        postings = repository.postings(["tent", "blue", "red", "unknown"])
        repository.add_documents(
            [(sequence_key(1), "documents", 1.0), (sequence_key(2), "documents", 1.0)], SHARD
        )
        repository.add_documents([(sequence_key(2), "documents", 1.0)], SHARD)  # re-delivered
        answers.append((first, again, full, over, postings, repository.documents()))
    assert answers[0] == answers[1]
    assert answers[0][3] == {"tent": 3}
    assert answers[0][4] == {
        "tent": Posting(frozenset({"a", "b", "c"}), 3),
        "blue": Posting(frozenset(), 0),
        "red": Posting(frozenset({"c", "d", "e", "f"}), 4),
        "unknown": Posting(frozenset(), 0),
    }
    assert answers[0][5] == 2


def test_a_tokens_holders_are_counted_past_the_posting_limit_once_per_record(aws):
    answers = []
    for repository in _both(aws):
        gains = [(sequence_key(n), "df", 1.0) for n in range(1, 6)]  # 5 items gain "tent"
        repository.count_postings({"tent": gains}, SHARD)
        repository.count_postings({"tent": gains[3:]}, SHARD)  # re-delivered: counted once
        full = repository.update_postings({"tent": {"a", "b", "c"}}, {}, limit=3)
        refused = repository.update_postings({"tent": {"d"}}, {}, limit=3)  # full, but counted
        repository.count_postings({"tent": [(sequence_key(6), "df", -1.0)]}, SHARD)  # one loses it
        answers.append((full, refused, repository.postings(["tent"])))
    assert answers[0] == answers[1]
    assert answers[0] == ({"tent": 5}, {"tent": 5}, {"tent": Posting(frozenset({"a", "b", "c"}), 4)})
    # The count has a small row of its own: counting does not rewrite (and pay for) the ids.
    dynamo = _both(aws)[1]
    rows = {
        key: dynamo.table.call("get_item", TableName=dynamo.table.name, Key={"item_id": {"S": key}})["Item"]
        for key in ("#tok:tent", "#df:tent")
    }
    assert "df" not in rows["#tok:tent"] and "items" not in rows["#df:tent"]
    assert float(rows["#df:tent"]["df"]["N"]) == 4


def _record(item: str, title: str, category: str, in_stock: bool, tags: list[str]) -> dict:
    return {
        "event_type": "item_upsert",
        "item_id": item,
        "title": title,
        "category": category,
        "price": 99,
        "in_stock": in_stock,
        "tags": tags,
        "timestamp": T0,
    }


RECORDS = [
    _record("tent-2p", "Ultralight 2-person tent", "camping", True, ["tent", "ultralight"]),
    _record("tent-3p", "Ultralight 3-person tent", "camping", False, ["tent"]),
    _record("bag", "Down sleeping bag", "camping", True, ["down"]),
    _record("grinder", "Burr coffee grinder", "coffee", True, []),
]


def test_catalog_pipeline_leaves_the_same_state_on_both_adapters(aws):
    settings = load_settings()
    client = boto3.client("dynamodb")
    dynamo_catalog = DynamoCatalogRepository(DynamoTable(aws.tables["CatalogTable"].name, client))
    dynamo_similarity = DynamoSimilarityRepository(DynamoTable(aws.tables["SimilarityTable"].name, client))
    memory_catalog, memory_similarity = InMemoryCatalogRepository(), InMemorySimilarityRepository()
    states = []
    for catalog, similarity in ((memory_catalog, memory_similarity), (dynamo_catalog, dynamo_similarity)):
        publisher = InMemoryChangePublisher()
        service = CatalogService(settings, catalog, publisher)
        rebuild = SimilarityService(
            settings,
            InMemoryCooccurrenceRepository(),
            InMemoryItemStatsRepository(),
            similarity,
            catalog=catalog,
        )
        for start, records in (
            (1, RECORDS[:2]),
            (3, RECORDS[2:]),
            (1, RECORDS[:2]),
        ):  # the last: re-delivered
            batch = [SequencedUpsert(sequence_key(start + n), parse_record(r)) for n, r in enumerate(records)]
            service.upsert(batch, SHARD)
            rebuild.recompute((), (), (), publisher.drain_content())
        items = ["tent-2p", "tent-3p", "bag", "grinder"]
        new_lists = [NEW_ARRIVALS_ROW, new_arrivals_row("camping"), new_arrivals_row("coffee")]
        rows, lists = similarity.get_many(items, [OUT_OF_STOCK_ROW, *new_lists])
        states.append(
            (
                catalog.get_many(items),
                catalog.postings(["tent", "ultralight", "camping", "coffee", "down"]),
                catalog.documents(),
                {i: [(n.item_id, round(n.score, 6)) for n in row.content] for i, row in rows.items()},
                [i for i, _ in lists[OUT_OF_STOCK_ROW].items],
                [lists[name].items for name in new_lists],
            )
        )
    assert states[0] == states[1]
    records, _, documents, content, out, new = states[0]
    assert documents == 4 and out == ["tent-3p"]
    # Every record the item's first, at T0; tent-3p, never in stock yet, is not listed yet.
    listed_at = {item: record.listed_at for item, record in records.items()}
    assert listed_at == {**dict.fromkeys(items, T0), "tent-3p": NOT_YET_LISTED}
    assert new == [
        [("bag", T0), ("grinder", T0), ("tent-2p", T0)],
        [("bag", T0), ("tent-2p", T0)],
        [("grinder", T0)],
    ]
    # tent-3p, the closest look-alike, is out of stock: not given a slot in the lists.
    assert content["tent-2p"] and "tent-3p" not in dict(content["tent-2p"])


def test_wiring_builds_the_catalog_side_from_settings(aws):
    settings = load_settings()
    assert settings.catalog_table == aws.tables["CatalogTable"].name
    assert wiring.catalog_service(settings) is not None
    assert wiring.similarity_service(settings).catalog is not None


def _forget_count(repository, token: str) -> None:
    """A posting row as written before holders were counted: its ids, no count."""
    if isinstance(repository, InMemoryCatalogRepository):
        del repository.token_counts[token]["df"]
    else:
        repository.table.call(
            "delete_item", TableName=repository.table.name, Key={"item_id": {"S": "#df:" + token}}
        )


def test_recount_corrects_the_counts_the_records_disagree_with(aws):
    for repository in _both(aws):
        service = CatalogService(load_settings(), repository, InMemoryChangePublisher())
        batch = [SequencedUpsert(sequence_key(1 + n), parse_record(r)) for n, r in enumerate(RECORDS)]
        service.upsert(batch, SHARD)
        # A race of two shards on one item counted it twice; a posting row from before holder
        # counts has ids but no count.
        repository.count_postings({"tent": [(sequence_key(1), "df", 1.0)]}, "shardId-000000000001")
        repository.add_documents([(sequence_key(1), "documents", 1.0)], "shardId-000000000001")
        _forget_count(repository, "down")
        tally = repository.stored_counts()
        assert (tally.items, tally.stored_documents, tally.stored_holders["down"]) == (4, 5.0, None)
        assert tally.holders["tent"] == 2  # counted from the records
        corrections = recount(tally)
        assert [(c.token, c.stored, c.counted) for c in corrections] == [
            ("down", None, 1),
            ("tent", 3.0, 2),
            (None, 5.0, 4),
        ]
        # Changed since it was read: left as it is, and named.
        stale = [("tent", 2.0, 2), ("down", None, 1), (None, 5.0, 4)]
        assert repository.set_counts(stale) == ["tent"]
        assert repository.set_counts([("tent", 3.0, 2)]) == []
        assert recount(repository.stored_counts()) == []
        assert repository.postings(["tent"])["tent"].count == 2 and repository.documents() == 4
