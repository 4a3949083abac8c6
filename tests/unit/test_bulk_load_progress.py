"""The evaluation engine's bulk load reports its progress (long training ingests of P3 and
the content protocol are otherwise silent for about a minute)."""

from __future__ import annotations

from streamrec.evaluation import engine as engine_module
from streamrec.evaluation.engine import InMemoryEngine
from streamrec.settings import Settings


def _views(count: int) -> list[dict]:
    return [
        {
            "event_id": f"e{n}",
            "event_type": "view",
            "user_id": f"u{n % 7}",
            "item_id": f"i{n % 11}",
            "timestamp": 1_764_000_000 + n,
        }
        for n in range(count)
    ]


def test_bulk_load_reports_events_done_of_all(monkeypatch):
    monkeypatch.setattr(engine_module, "BULK_PROGRESS_EVENTS", 40)
    events = _views(100)
    seen: list[tuple[int, int]] = []
    InMemoryEngine(Settings()).bulk_load(
        [events[n : n + 30] for n in range(0, 100, 30)], lambda d, t: seen.append((d, t))
    )
    assert seen == [(60, 100), (100, 100)]
