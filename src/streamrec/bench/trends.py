"""DynamoDB units the trends counters and trending lists add, on the bench's replay.

Kept apart from ``streamrec bench`` so that its published figures stay comparable: the same
replay (events in time order, batches of 1,000, the similarity function's chunks of 500
announced items) on a :class:`MeteredDynamoClient` holding only the trends table; the other
tables are in memory. The similarity side refreshes the lists as of the newest event of
each batch (the replay's own clock), as it would with live events.

``python -m streamrec.bench.trends [--events 20000] [--data DIR]`` prints the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from streamrec.bench.dynamo import MeteredDynamoClient, TableMeter
from streamrec.bench.runs import SHARD, SIMILARITY_BATCH, _sequenced
from streamrec.domain.ingest import IngestService
from streamrec.domain.trends import TrendsService
from streamrec.repositories.dynamodb import DynamoTable, DynamoTrendsRepository
from streamrec.repositories.memory import (
    InMemoryChangePublisher,
    InMemoryCooccurrenceRepository,
    InMemoryItemStatsRepository,
    InMemoryUserRepository,
)
from streamrec.settings import Settings

TABLE = "bench-trends"


def _per_event(meter: TableMeter, events: int) -> dict[str, Any]:
    return {
        "wru_per_event": meter.write_units / events,
        "writes_per_event": meter.writes / events,
        "rru_per_event": meter.read_units / events,
        "calls": dict(meter.calls),
    }


def trends_cost(events: Sequence[Mapping[str, Any]], settings: Settings, batch: int = 1000) -> dict[str, Any]:
    """Units per event of the ingest's counter writes and the similarity side's list upkeep."""
    payloads = [json.dumps(e, separators=(",", ":")).encode() for e in events]
    client = MeteredDynamoClient({TABLE: ("item_id", "day")})
    repository = DynamoTrendsRepository(DynamoTable(TABLE, client), settings.trends_retention_days)
    stats = InMemoryItemStatsRepository()
    publisher = InMemoryChangePublisher()
    ingest = IngestService(
        settings,
        InMemoryUserRepository(),
        InMemoryCooccurrenceRepository(),
        stats,
        publisher,
        trends=repository,
    )
    trends = TrendsService(settings, repository)
    for offset in range(0, len(payloads), batch):
        sequenced = _sequenced(payloads[offset : offset + batch], offset + 1)
        client.set_phase("ingest")
        ingest.ingest(sequenced, SHARD)
        _, _, popular = publisher.drain()
        client.set_phase("similarity")
        now = max(s.event.timestamp for s in sequenced)
        found = stats.get_many(popular)
        ordered = sorted(popular)
        for start in range(0, len(ordered), SIMILARITY_BATCH):
            chunk = ordered[start : start + SIMILARITY_BATCH]
            trends.refresh({item: found[item].category if item in found else None for item in chunk}, now)
    count = max(len(payloads), 1)
    sizes = client.sizes[TABLE]
    lists = [size for key, size in sizes.items() if str(key[0]).startswith("#trending")]
    return {
        "events": len(payloads),
        "batch": batch,
        "ingest": _per_event(client.phases.get("ingest", {}).get(TABLE) or TableMeter(), count),
        "similarity": _per_event(client.phases.get("similarity", {}).get(TABLE) or TableMeter(), count),
        "counter_rows": len(sizes) - len(lists),
        "mean_counter_row_bytes": sum(s for k, s in sizes.items() if not str(k[0]).startswith("#"))
        / max(len(sizes) - len(lists), 1),
        "lists": len(lists),
        "max_list_bytes": max(lists, default=0),
    }


def main(argv: Sequence[str] | None = None) -> int:
    from streamrec.evaluation.datasets import default_data_dir, load_taobao

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--data", default=None)
    args = parser.parse_args(argv)
    events = load_taobao(Path(args.data) if args.data else default_data_dir()).events[: args.events]
    print(json.dumps(trends_cost(events, Settings()), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
