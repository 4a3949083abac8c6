"""Similarity function: changed-items stream -> recomputed top-K neighbour rows."""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

from streamrec import wiring
from streamrec.observability import logger
from streamrec.settings import load_settings
from streamrec.stream import parse_change, process_batch, similarity_records

settings = load_settings()
processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
recompute_rows = similarity_records(wiring.similarity_service(settings))
dead_letters = wiring.dead_letter_sink(settings)


@logger.inject_lambda_context
def lambda_handler(event, context):
    return process_batch(event, context, processor, parse_change, recompute_rows, dead_letters)
