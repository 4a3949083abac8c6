"""Ingest function: Kinesis user events -> user history, co-occurrence counts, item stats;
catalog records (item_upsert) -> the catalog table and its token postings."""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

from streamrec import wiring
from streamrec.events import parse_record
from streamrec.observability import logger
from streamrec.runtime import tune_collector_for_batches
from streamrec.settings import load_settings
from streamrec.stream import ingest_records, process_batch

tune_collector_for_batches()
settings = load_settings()
processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
client = wiring.dynamodb_client()
apply_events = ingest_records(
    wiring.ingest_service(settings, client), wiring.catalog_service(settings, client)
)
dead_letters = wiring.dead_letter_sink(settings)


@logger.inject_lambda_context
def lambda_handler(event, context):
    return process_batch(event, context, processor, parse_record, apply_events, dead_letters)
