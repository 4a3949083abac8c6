"""Process settings of the functions that apply stream batches, in one place.

The ingest function's batches allocate tens of thousands of short-lived objects (a count
delta per co-occurring pair and direction) that hold no reference cycles. With CPython's
default first collector threshold (700 allocations) the young pass runs ~30 times per
1,000-event batch and promotes the batch's live plan into older generations, which are then
walked again. A first threshold of 10,000 keeps the collector on, at a tenth of the rate.
"""

from __future__ import annotations

import gc

BATCH_GC_THRESHOLD = 10_000


def tune_collector_for_batches() -> None:
    """Raise the collector's first threshold (the older generations' are kept)."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(BATCH_GC_THRESHOLD, older, oldest)
