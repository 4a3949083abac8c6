"""A user's profile: recent items, time-decayed category affinities, event counts.

One GetItem of the user's row; nothing else is read. Affinities are decayed to ``now``
with ``half_life_hours`` (the same decay the personalized scores use).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from streamrec_core import decay

from streamrec.domain.model import shown_kind
from streamrec.repositories.base import UserRepository
from streamrec.settings import Settings


def iso_utc(seconds: float) -> str:
    """ISO-8601 UTC to the second, one format whatever the event's precision."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class UserProfile:
    user_id: str
    known: bool
    recent_items: list[dict[str, Any]] = field(default_factory=list)  # newest first
    categories: list[dict[str, Any]] = field(default_factory=list)  # strongest first
    event_counts: dict[str, int] = field(default_factory=dict)
    cart: list[str] = field(default_factory=list)
    purchases: int = 0


@dataclass
class ProfileService:
    settings: Settings
    users: UserRepository

    def for_user(self, user_id: str, now: float | None = None) -> UserProfile:
        now = time.time() if now is None else now
        state = self.users.get(user_id)
        if state is None:
            return UserProfile(user_id, known=False)
        # Newest first by event time: the row keeps items in arrival order, and an event can
        # arrive after a newer one (ties: the later arrival first).
        history = sorted(reversed(state.items), key=lambda entry: -entry.ref_time)
        ages = np.array([now - entry.ref_time for entry in history])
        factors = decay(ages, self.settings.half_life_seconds) if history else np.zeros(0)
        recent: list[dict[str, Any]] = []
        by_category: dict[str, float] = defaultdict(float)
        for entry, factor in zip(history, factors, strict=True):
            affinity = entry.affinity * float(factor)
            recent.append(
                {
                    "item_id": entry.item_id,
                    "kind": shown_kind(entry, state.cart),
                    "category": entry.category,
                    "affinity": affinity,
                    "last_seen": iso_utc(entry.ref_time),
                }
            )
            if entry.category:
                by_category[entry.category] += affinity
        categories = [
            {"category": name, "affinity": value}
            for name, value in sorted(by_category.items(), key=lambda pair: (-pair[1], pair[0]))
        ]
        return UserProfile(
            user_id,
            known=True,
            recent_items=recent,
            categories=categories,
            event_counts=dict(state.event_counts),
            cart=list(state.cart),
            purchases=len(state.purchased),
        )
