"""Reliability fixtures: real Taobao events (skipped when the data folder is absent).

Tests here use two kinds of AWS stand-in, never at the same time (moto's state is
process-global): the in-process sandbox (``streamrec.reliability.sandbox``), and the
local stack (moto server, pollers, HTTP API), which is module-scoped where used so that it
is closed before the next module's sandbox starts.
"""

from __future__ import annotations

from typing import Any

import pytest

from streamrec.evaluation.datasets import DatasetMissing, default_data_dir


def taobao_events(count: int, coupons: bool = True) -> list[dict[str, Any]]:
    """``count`` real events in stream order, each 4th followed by a ``coupon_redeemed``
    event (see ``with_coupon_redemptions``) and with catalog records mixed in (see
    ``with_catalog_records``) unless ``coupons`` is False, or skip with the reason."""
    from streamrec.reliability.faults import load_events, with_catalog_records, with_coupon_redemptions

    try:
        events = load_events(count)
        return with_catalog_records(with_coupon_redemptions(events)) if coupons else events
    except DatasetMissing as error:
        pytest.skip(f"the real data sets are not here ({default_data_dir()}): {error}".splitlines()[0])
