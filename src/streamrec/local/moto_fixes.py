"""Work-arounds for moto performance problems that the local pipelines hit.

moto 5.2's ReceiveMessage checks each message it returns against the queue's retention
period by computing *every* queue attribute, including the approximate message counts,
which walk the whole queue: receiving a queue of n messages costs O(n²) (0.6 s per
ReceiveMessage of 10 at 1,000 messages). The dead-letter queue of a poison-record replay
holds thousands. :func:`apply` replaces that check with an O(1) one of the same meaning.
"""

from __future__ import annotations

from typing import Any

__all__ = ["apply"]


def apply() -> None:
    """Patch moto's SQS backend (idempotent; only speeds up, never changes an answer)."""
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    if getattr(SQSBackend, "_streamrec_fast_retention_check", False):
        return

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return retention + message.sent_timestamp / 1000 > unix_time()

    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
    SQSBackend._streamrec_fast_retention_check = True
