"""The bench's DynamoDB size and unit arithmetic, and its metered client against moto."""

from __future__ import annotations

import json

import pytest

from streamrec.bench.dynamo import MeteredDynamoClient, read_units, write_units
from streamrec.bench.runs import moto_cross_check
from streamrec.domain.model import OUT_OF_STOCK_ROW, PopularList
from streamrec.repositories.base import ConcurrentUpdateError
from streamrec.repositories.dynamodb import DynamoSimilarityRepository, DynamoTable
from streamrec.repositories.item_size import item_size, number_size

from .conftest import ROOT

T0 = 1_764_000_000.0


def test_sizes_follow_the_developer_guide():
    assert number_size("3.0") == 2  # one significant digit: 1 byte + 1
    assert number_size("12") == 2
    assert number_size("123") == 3
    assert number_size("1200") == 2  # trailing zeros trimmed
    assert number_size("0.000123") == 3  # leading zeros trimmed
    item = {"item_id": {"S": "abc"}, "c:x": {"N": "4"}, "m": {"M": {"k": {"S": "v"}}}}
    # item_id(7)+abc(3) + c:x(3)+2 + m(1) + map 3 + (k 1 + v 1 + 1 per element)
    assert item_size(item) == 10 + 5 + 1 + 3 + 3
    assert write_units(0, 1024) == 1 and write_units(1025, 10) == 2
    assert write_units(100, 100, transactional=True) == 2
    assert read_units(4096) == 0.5 and read_units(4097, consistent=True) == 2.0
    assert read_units(0) == 0.5  # a missing item still costs the minimum


def test_metered_client_applies_guarded_adds_like_dynamodb():
    client = MeteredDynamoClient({"t": ("item_id", "block")})
    table = DynamoTable("t", client)
    key = {"item_id": {"S": "a"}, "block": {"N": "3"}}
    table.apply_guarded(key, [("0011", "x", 1.0), ("0012", "x", 2.0)], "s")
    table.apply_guarded(key, [("0012", "x", 2.0), ("0013", "y", 0.5)], "s")  # replay
    (stored,) = client.items("t")
    assert stored["x"] == {"N": "3"} and stored["y"] == {"N": "0.5"} and stored["s#s"] == {"S": "0013"}
    meter = client.meters["t"]
    # two updates and one failed conditional write + the GetItem that re-reads the guard
    assert meter.calls["UpdateItem"] == 3 and meter.calls["GetItem"] == 1
    assert meter.write_units == 3


def test_metered_client_matches_moto_on_a_slice(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # moto in-process, not a server
    events = [
        {
            "event_id": f"e{n}",
            "event_type": ("view", "view", "add_to_cart", "purchase")[n % 4],
            "user_id": f"u{n % 13}",
            "item_id": f"i{(n * 7) % 29}",
            "timestamp": 1_700_000_000 + n,
            "category": f"c{n % 3}",
        }
        for n in range(150)
    ]
    from streamrec.settings import Settings

    result = moto_cross_check(events, Settings(), ROOT / "template.yaml")
    assert result["agree"], result


def test_bench_stops_with_a_message_without_the_data(tmp_path, capsys):
    from streamrec.cli import main

    assert main(["bench", "--data", str(tmp_path), "--output", str(tmp_path / "r.json")]) == 2
    message = capsys.readouterr().err
    assert "taobao_userbehavior_head" in message and str(tmp_path) in message
    assert not (tmp_path / "r.json").exists()


def _shop_events(count: int, users: int, categories: int = 0) -> list[dict]:
    """Views, cart adds and purchases of ``users`` users over 23 items (in ``categories``
    categories when given)."""
    return [
        {
            "event_id": f"e{n}",
            "event_type": ("view", "view", "add_to_cart", "purchase")[n % 4],
            "user_id": f"u{n % users}",
            "item_id": f"i{(n * 5) % 23}",
            "timestamp": 1_700_000_000 + n,
            **({"category": f"c{n % categories}"} if categories else {}),
        }
        for n in range(count)
    ]


def test_cost_replay_merges_writes_below_the_naive_design():
    from streamrec.bench.runs import dynamodb_cost
    from streamrec.settings import Settings

    events = _shop_events(240, users=7)
    cost, _ = dynamodb_cost(events, Settings(), batch=60, naive_window=20, block_sweep=(4,))

    naive = cost["naive"]["20"]
    every_pair = naive["every_pair"]["total"]["wru_per_event"]
    changed_only = naive["changed_pairs_only"]["total"]["wru_per_event"]
    production = cost["production_ingest"]["total"]["wru_per_event"]
    assert 0 < changed_only <= every_pair
    assert 0 < production < changed_only  # a batch's deltas merge into one write per row
    assert cost["ratio_vs_naive"] == production / every_pair
    assert set(cost["blocks_sweep"]) == {"16", "4"}
    # The designs differ in their pair rows only: the naive design's user, stats and trend
    # writes are production's at the same window and batch size (not once per event).
    for window in ("10", "20"):
        for design in ("every_pair", "changed_pairs_only"):
            naive_rows = cost["naive"][window][design]
            assert set(naive_rows) == {"pairs_all" if design == "every_pair" else "pairs", *SHARED, "total"}
    assert all(cost["naive"]["10"]["every_pair"][t] == cost["production_ingest"][t] for t in SHARED)
    assert set(cost["production_by_window"]) == {"10", "20"}
    assert cost["ratio_same_window"]["20"] == cost["production_by_window"]["20"] / every_pair


SHARED = ("users", "item_stats", "trends")


def test_metered_client_takes_a_split_list_like_dynamodb():
    client = MeteredDynamoClient({"t": ("item_id",)})
    similarity = DynamoSimilarityRepository(DynamoTable("t", client))
    entries = sorted((f"sku-{n:07d}", T0 + n) for n in range(20_000))
    similarity.put_list(OUT_OF_STOCK_ROW, PopularList(entries, 0, 0))
    assert similarity.get_list(OUT_OF_STOCK_ROW) == PopularList(entries, 1, 0)
    (head,) = [item for item in client.items("t") if item["item_id"]["S"] == OUT_OF_STOCK_ROW]
    parts = len(json.loads(head["digests"]["S"]))
    meter = client.meters["t"]
    assert parts >= 8 and meter.calls["TransactWriteItems.Put"] == 1 + parts
    assert meter.write_units >= 2 * 566  # some 580,000 bytes (566 KiB) written, each KiB billed twice
    with pytest.raises(ConcurrentUpdateError):
        similarity.put_list(OUT_OF_STOCK_ROW, PopularList(entries[1:], 0, 0))  # a stale version


def test_the_cost_model_counts_requests_not_the_items_a_batch_write_carries():
    from streamrec.bench.runs import requests

    assert requests({"BatchWriteItem": 2, "BatchWriteItem.Put": 50, "GetItem": 1}) == 3


class _Echo:
    def get_item(self, **kwargs):
        return kwargs


def test_round_trip_clock_counts_the_calls_on_the_critical_path():
    from concurrent.futures import ThreadPoolExecutor

    from streamrec.bench.runs import RoundTripClock

    clock = RoundTripClock(_Echo(), latency=0.01)
    for n in range(3):  # one after the other: 3 round trips
        assert clock.get_item(Key=n) == {"Key": n}
    assert clock.calls == 3 and 2.9 <= clock.round_trips < 3.3
    # 0.1 s calls: a thread waking 50-100 ms late on a busy machine stretches the busy time
    # by far less than one call.
    clock = RoundTripClock(_Echo(), latency=0.1)
    with ThreadPoolExecutor(max_workers=8) as pool:  # 16 at once, 8 at a time: 2 waves
        assert list(pool.map(lambda n: clock.get_item(Key=n), range(16))) == [{"Key": n} for n in range(16)]
    # 2 waves; some slack for staggered starts (16 serial).
    assert clock.calls == 16 and 1.9 <= clock.round_trips < 6


def test_the_cost_replay_measures_both_functions_critical_paths():
    from streamrec.bench.runs import dynamodb_cost
    from streamrec.settings import Settings

    events = _shop_events(200, users=9, categories=3)
    cost, _ = dynamodb_cost(events, Settings(), batch=100, naive_window=20, block_sweep=())
    stage = cost["similarity_stage"]
    ingest_calls = sum(sum(cost["production_ingest"][t]["calls"].values()) for t in ("users", "cooccurrence"))
    # Concurrent calls overlap, so each function waits for fewer calls than it makes, but
    # for at least one per batch.
    assert 2 / 200 <= cost["ingest_round_trips_per_event"] < ingest_calls / 200
    similarity_calls = sum(
        n
        for t in ("cooccurrence", "item_stats", "similarity", "trends")
        for o, n in stage[t]["calls"].items()
        if "." not in o
    )
    assert 2 / 200 <= stage["round_trips_per_event"] < similarity_calls / 200
    # The service's own CPU leaves out the metered client's (which DynamoDB would spend).
    assert 0 < stage["service_cpu_s_per_event"] < stage["cpu_s_per_event"]


def test_call_cpu_charges_each_call_its_own_threads_cpu():
    import time
    from concurrent.futures import ThreadPoolExecutor

    from streamrec.bench.runs import CallCpu

    class Busy:
        def get_item(self, **kwargs):
            return sum(range(300_000))  # some CPU

    client = CallCpu(Busy())
    client.phase = "ingest"
    client.get_item(Key=0)
    client.phase = "similarity"
    started = time.process_time()
    with ThreadPoolExecutor(max_workers=4) as pool:  # calls from worker threads, as the adapters make them
        list(pool.map(lambda n: client.get_item(Key=n), range(8)))
    process = time.process_time() - started
    assert dict(client.calls) == {"ingest": 1, "similarity": 8}
    # Each call is charged its own thread's CPU, not the process's (which would count the
    # other threads' work 4 times over): the sum is at most the process's CPU meanwhile.
    assert 0 < client.cpu_s["similarity"] <= process * 1.05
    assert 4 * client.cpu_s["ingest"] < client.cpu_s["similarity"]


def test_metered_client_removes_attributes_and_reports_the_units_when_asked():
    client = MeteredDynamoClient({"t": ("item_id", "block")})
    key = {"item_id": {"S": "a"}, "block": {"N": "0"}}
    values = {":x": {"N": "1"}, ":y": {"S": "y" * 2000}}
    asked = client.update_item(
        TableName="t",
        Key=key,
        UpdateExpression="SET y = :y ADD x :x",
        ExpressionAttributeValues=values,
        ReturnConsumedCapacity="TOTAL",
    )
    assert asked["ConsumedCapacity"]["CapacityUnits"] == 2.0  # 2,000+ bytes: 2 started KB
    assert (
        client.update_item(
            TableName="t", Key=key, UpdateExpression="REMOVE #0", ExpressionAttributeNames={"#0": "y"}
        )
        == {}
    )
    (stored,) = client.items("t")
    assert "y" not in stored and stored["x"] == {"N": "1"}


def test_a_count_row_budget_bounds_a_hot_items_rows_and_units():
    from streamrec.bench.runs import hot_item_cost
    from streamrec.settings import Settings

    result = hot_item_cost(8000, Settings(), (0, 4))
    unbounded, bounded = result["0"], result["4"]
    assert unbounded["hot_item_largest_row_bytes"] > 4096 >= bounded["hot_item_largest_row_bytes"]
    assert bounded["hot_item_partners"] < unbounded["hot_item_partners"]
    assert bounded["count_rru_per_event"] > 0 == unbounded["count_rru_per_event"]  # the trims' reads


def test_metered_client_evaluates_the_conditions_the_catalog_writes_use():
    client = MeteredDynamoClient({"t": ("item_id",)})
    stored = {
        "item_id": {"S": "a"},
        "timestamp": {"N": "5"},
        "shard": {"S": "s1"},
        "norm_documents": {"N": "3"},
    }
    client.put_item(TableName="t", Item=stored)
    names = {"#t": "timestamp", "#h": "shard", "#d": "norm_documents", "#n": "norm"}

    def refresh(timestamp: str, documents: str) -> bool:
        try:
            client.update_item(
                TableName="t",
                Key={"item_id": {"S": "a"}},
                UpdateExpression="SET #n = :norm, #d = :documents",
                ConditionExpression="#t = :t AND #h = :h AND (attribute_not_exists(#d) OR #d < :documents)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    ":t": {"N": timestamp},
                    ":h": {"S": "s1"},
                    ":documents": {"N": documents},
                    ":norm": {"N": "2.5"},
                },
            )
        except Exception:
            return False
        return True

    assert not refresh("4", "10")  # another record
    assert not refresh("5", "3")  # not older
    assert refresh("5", "10")
    (item,) = client.items("t")
    assert item["norm"] == {"N": "2.5"} and item["norm_documents"] == {"N": "10"}


def test_metered_client_keeps_string_sets_and_returns_what_dynamodb_returns():
    from botocore.exceptions import ClientError

    client = MeteredDynamoClient({"t": ("item_id",)})

    def add(ids: list[str], limit: int = 3) -> dict:
        return client.update_item(
            TableName="t",
            Key={"item_id": {"S": "#tok:red"}},
            UpdateExpression="ADD #i :ids",
            ConditionExpression="attribute_not_exists(#i) OR size(#i) < :limit",
            ExpressionAttributeNames={"#i": "items"},
            ExpressionAttributeValues={":ids": {"SS": ids}, ":limit": {"N": str(limit)}},
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    assert add(["b", "a"])["Attributes"]["items"] == {"SS": ["a", "b"]}
    assert add(["c", "a"])["Attributes"]["items"] == {"SS": ["a", "b", "c"]}
    with pytest.raises(ClientError) as failed:
        add(["d"])  # full: 3 ids, not under the limit
    assert failed.value.response["Item"]["items"] == {"SS": ["a", "b", "c"]}  # type: ignore[typeddict-item]
    for ids in (["a", "b"], ["c"]):
        client.update_item(
            TableName="t",
            Key={"item_id": {"S": "#tok:red"}},
            UpdateExpression="DELETE #i :ids",
            ExpressionAttributeNames={"#i": "items"},
            ExpressionAttributeValues={":ids": {"SS": ids}},
        )
    (item,) = client.items("t")
    assert "items" not in item  # DynamoDB drops a set left empty
    meter = client.meters["t"]
    assert (
        set(meter.write_units_by_kind) == {"#tok"} and meter.write_units == 5
    )  # a failed condition costs too


def _catalog(items: int) -> list[dict]:
    words = ["red", "blue", "mug", "lamp", "heart", "tin", "bag", "glass", "star", "candle"]
    return [
        {
            "event_type": "item_upsert",
            "item_id": f"p{n:03d}",
            "title": f"{words[n % 10]} {words[(n * 3 + 1) % 10]} {words[(n * 7 + 2) % 10]} n{n % 17}",
            "category": "home",
            "price": 1.0 + n,
            "in_stock": True,
            "timestamp": 1_764_000_000.0,
        }
        for n in range(items)
    ]


def test_catalog_cost_charges_a_price_change_its_record_alone():
    from streamrec.bench.runs import CATALOG, catalog_cost
    from streamrec.settings import Settings

    cost = catalog_cost(_catalog(120), Settings(), batch=40)
    load, prices, titles = (cost["phases"][p] for p in ("load", "price change", "title change"))
    assert load["announced"] == 120 and load["ingest"][CATALOG]["wru_per_record_by_kind"]["#tok"] > 0
    assert load["similarity"]["total"]["wru_per_record"] > 0
    # A price change writes its record (1 unit: under 1 KB) and nothing else, and the
    # similarity function has nothing to do.
    assert prices["records"] == 120 and prices["announced"] == 0
    assert prices["ingest"][CATALOG]["wru_per_record_by_kind"] == {"item": 1.0}
    assert prices["similarity"]["total"] == {"wru_per_record": 0.0, "rru_per_record": 0.0}
    assert titles["records"] == 12 and 0 < titles["announced"] <= 12
    assert cost["catalog_rows"]["item"]["rows"] == 120 and cost["catalog_rows"]["#catalog"]["rows"] == 1


def test_catalog_metering_matches_moto(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # moto in-process, not a server
    from streamrec.bench.runs import catalog_moto_cross_check
    from streamrec.settings import Settings

    result = catalog_moto_cross_check(_catalog(60), Settings(), ROOT / "template.yaml", batch=25)
    assert result["agree"], result
    assert result["tables"]["catalog"]["writes_moto"] > 60  # postings and counts, not records only


def test_metered_conditions_follow_dynamodb_on_missing_attributes_types_and_sets():
    from streamrec.bench.dynamo import _Condition

    stored = {"tags": {"SS": ["x", "y"]}, "n": {"N": "3"}}
    values = {":set": {"SS": ["y", "x"]}, ":three": {"N": "3"}, ":text": {"S": "3"}}

    def holds(condition: str) -> bool:
        return _Condition(condition, stored, {}, values).holds()

    assert holds("tags = :set")  # a set equals itself in any order
    assert holds("missing <> :three") and not holds("missing = :three") and not holds("missing < :three")
    assert not holds("n = :text") and holds("n <> :text")  # a number is no string
    assert holds("NOT (n < :three) AND (n = :three OR attribute_exists(nothing))")
    with pytest.raises(NotImplementedError):
        holds("size(n) < :three")  # DynamoDB refuses size() of a number


def test_a_backlog_handled_in_larger_batches_costs_less_and_ends_with_the_same_rows():
    # `bench --similarity-backlog`: the changed-items records of several ingest batches pooled
    # into one invocation share its reads and rebuilds; the rows they leave are the same.
    from streamrec.bench import runs
    from streamrec.settings import Settings

    events = _shop_events(300, users=9, categories=3)
    payloads = [json.dumps(e).encode() for e in events]
    rows = {}
    for batch in (3, 1000):
        tables = runs.metered_tables()
        consumer = runs.BacklogConsumer(batch, ingest_batches=6)
        stage = runs._replay(tables, payloads, Settings(), 50, similarity=True, consume=consumer)
        assert not consumer.queue and stage["announcements"] > 0
        # The neighbour and complement lists; two-hop lists use their sources as the
        # invocation's boundaries left them (fresh if rebuilt in it), so they may differ.
        rows[batch] = {
            item["item_id"]["S"]: (item["neighbours"], item["complements"])
            for item in tables.client.items(tables.names[runs.SIMILARITY])
            if not item["item_id"]["S"].startswith("#")
        }
        assert consumer.invocations == (-(-stage["announcements"] // 3) if batch == 3 else 1)
    assert rows[3] and rows[3] == rows[1000]

    result = runs.similarity_backlog(events, Settings(), (3, 1000), ingest_batch=50)
    small, large = result["batches"]["3"], result["batches"]["1000"]
    assert small["records"] == large["records"] > 0
    assert large["rru_per_event"] < small["rru_per_event"] and large["wru_per_event"] < small["wru_per_event"]
    assert large["round_trips_per_event"] < small["round_trips_per_event"]
    assert 0 < large["calls_per_event"] < small["calls_per_event"]


def test_the_stock_bench_times_full_lists_that_hold_no_out_of_stock_item():
    from streamrec.bench.runs import _stock_requests, _stock_shop, stock_latency
    from streamrec.domain.model import OUT_OF_STOCK_ROW
    from streamrec.settings import Settings

    engine, users, top = _stock_shop(Settings(), 2_000, seed=7)
    stock = {item for item, _ in engine.similarity.get_list(OUT_OF_STOCK_ROW).items}
    assert len(stock) == 2_000
    for name, request in _stock_requests(engine, users, top).items():
        listed = [r.item_id for r in request(3).items]
        assert len(listed) == 10 and not stock & set(listed), name
    result = stock_latency((0, 500), Settings(), samples=3, sessions=300)
    assert set(result["sizes"]) == {"0", "500"}
    assert all(value > 0 for row in result["sizes"].values() for value in row.values())
