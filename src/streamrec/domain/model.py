"""Domain records shared by the services and the repositories."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

# Global rows live beside item rows; '#' can never start an item id (see events.ID_PATTERN).
TOTALS_ROW = "#totals"
POPULAR_ROW = "#popular"


def block_of(item_id: str, blocks: int) -> int:
    """The co-occurrence block that neighbour ``item_id`` is stored in (stable across runs)."""
    return zlib.crc32(item_id.encode()) % blocks


def sequence_key(sequence_number: str | int) -> str:
    """An order-preserving string form of a Kinesis sequence number.

    Sequence numbers are decimal strings of up to 129 digits, larger than DynamoDB numbers
    hold exactly; prefixing the digit count makes string order equal numeric order.
    """
    digits = str(sequence_number).lstrip("0") or "0"
    return f"{len(digits):03d}{digits}"


@dataclass
class HistoryItem:
    """One of a user's recent distinct items.

    ``max_weight`` is the largest event weight the user gave the item (its contribution to
    co-occurrence counts); ``affinity`` is the time-decayed weight sum as of ``ref_time``.
    ``kind`` is the event type behind ``max_weight`` (used in reasons).
    """

    item_id: str
    max_weight: float
    affinity: float
    ref_time: float
    kind: str


@dataclass
class UserState:
    """A user's row: recent items (oldest first), purchases, cart and replay guards."""

    user_id: str
    items: list[HistoryItem] = field(default_factory=list)
    purchased: list[str] = field(default_factory=list)
    cart: list[str] = field(default_factory=list)
    recent_event_ids: list[str] = field(default_factory=list)
    # shard id -> sequence_key of the last applied record of that shard for this user.
    applied: dict[str, str] = field(default_factory=dict)
    version: int = 0

    def find(self, item_id: str) -> HistoryItem | None:
        for entry in self.items:
            if entry.item_id == item_id:
                return entry
        return None


@dataclass(frozen=True)
class Delta:
    """An increment of one numeric attribute, tagged with the record that caused it."""

    sequence: str  # sequence_key of the Kinesis record
    attribute: str
    value: float


@dataclass(frozen=True)
class Neighbour:
    item_id: str
    score: float


@dataclass
class SimilarityRow:
    """The top-K neighbours of one item, best first."""

    item_id: str
    neighbours: list[Neighbour]
    measure: str = ""
    updated_at: float = 0.0


@dataclass
class PopularList:
    """The most interacted-with items (by total weight), best first; versioned for CAS."""

    items: list[tuple[str, float]] = field(default_factory=list)
    version: int = 0


@dataclass
class ItemStats:
    """Per-item totals: ``weight`` is c_ii; ``events`` counts events by type."""

    item_id: str
    weight: float = 0.0
    events: dict[str, float] = field(default_factory=dict)
