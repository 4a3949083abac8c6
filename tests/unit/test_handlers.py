"""The three handlers, called directly with the sample events of events/ on moto."""

from __future__ import annotations

import json

import boto3

from streamrec.observability import embedded_metrics, logger
from tests.unit.conftest import FakeLambdaContext, import_handler, load_event


def _changed_items(template) -> list[dict]:
    kinesis = boto3.client("kinesis")
    stream = template.streams["ChangedItemsStream"].name
    shard = kinesis.describe_stream(StreamName=stream)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = kinesis.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    return [json.loads(r["Data"]) for r in records]


def test_ingest_handler_applies_valid_events_and_dead_letters_poison(aws):
    ingest = import_handler("ingest")
    response = ingest.lambda_handler(load_event("ingest_kinesis.json"), FakeLambdaContext())
    assert response == {"batchItemFailures": []}  # poison records must not block the shard

    users = boto3.client("dynamodb").scan(TableName=aws.tables["UsersTable"].name)["Items"]
    assert sorted(u["user_id"]["S"] for u in users) == ["user-0001", "user-0002"]
    announced = {c["item_id"]: c["norm_changed"] for c in _changed_items(aws)}
    assert announced == {"tent-2-person-ultralight": True, "sleeping-bag-down": True}

    sqs = boto3.client("sqs")
    queue = sqs.get_queue_url(QueueName=aws.queues["DeadLetterQueue"].name)["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    reasons = sorted(json.loads(m["Body"])["reason"] for m in messages)
    assert len(reasons) == 2
    assert reasons[0].startswith("not valid JSON")
    assert "event_type" in reasons[1]


def test_the_ingested_batch_line_carries_its_figures_as_cloudwatch_metrics(aws, log_lines):
    # The embedded metric format: CloudWatch Logs makes each declared key of the line a
    # metric. A metric must name a number at the line's top level, as must its dimension a
    # string, or CloudWatch drops the record.
    ingest = import_handler("ingest")
    ingest.lambda_handler(load_event("ingest_kinesis.json"), FakeLambdaContext())
    [line] = [line for line in log_lines() if line["message"] == "ingested batch"]
    [directive] = line["_aws"]["CloudWatchMetrics"]
    assert isinstance(line["_aws"]["Timestamp"], int)
    assert directive["Namespace"] == "streamrec" and directive["Dimensions"] == [["function_name"]]
    assert line["function_name"] == FakeLambdaContext().function_name
    units = {metric["Name"]: metric["Unit"] for metric in directive["Metrics"]}
    assert units == {
        "records": "Count",
        "applied": "Count",
        "duplicates": "Count",
        "late": "Count",
        "event_age_max_s": "Seconds",
    }
    assert all(isinstance(line[name], int | float) for name in units)
    assert (line["records"], line["applied"], line["duplicates"]) == (5, 5, 0)
    # Without a function name to file them under (a script's lines), no metrics.
    logger.remove_keys(["function_name"])
    assert embedded_metrics({"records": 3}, {"records": "Count"}) == {}


def test_ingest_handler_redelivery_changes_nothing(aws):
    ingest = import_handler("ingest")
    event = load_event("ingest_kinesis.json")
    ingest.lambda_handler(event, FakeLambdaContext())
    dynamodb = boto3.client("dynamodb")

    def every_table() -> dict[str, list]:
        return {name: dynamodb.scan(TableName=table.name)["Items"] for name, table in aws.tables.items()}

    before = every_table()
    ingest.lambda_handler(event, FakeLambdaContext())  # Lambda retried the same batch
    assert every_table() == before
    assert before["CooccurrenceTable"] and before["ItemStatsTable"] and before["UsersTable"]


def test_similarity_then_api_handlers(aws):
    import_handler("ingest").lambda_handler(load_event("ingest_kinesis.json"), FakeLambdaContext())
    similarity = import_handler("similarity")
    assert similarity.lambda_handler(load_event("similarity_kinesis.json"), FakeLambdaContext()) == {
        "batchItemFailures": []
    }
    api = import_handler("api")

    similar = api.lambda_handler(load_event("api_similar.json"), FakeLambdaContext())
    assert similar["statusCode"] == 200
    body = json.loads(similar["body"])
    assert [i["item_id"] for i in body["items"] if i["source"] == "similar"] == ["sleeping-bag-down"]

    recs = api.lambda_handler(load_event("api_recommendations.json"), FakeLambdaContext())
    body = json.loads(recs["body"])
    assert recs["statusCode"] == 200 and body["fallback"] is False
    by_id = {item["item_id"]: item for item in body["items"]}
    # user-0001 viewed the tent and carted the bag (the stronger signal): both come back
    # (only purchases are excluded by default), the bag first, as a recent item of theirs.
    assert body["items"][0]["item_id"] == "sleeping-bag-down"
    assert by_id["sleeping-bag-down"]["reasons"] == ["you recently looked at sleeping-bag-down"]
    assert by_id["tent-2-person-ultralight"]["source"] == "personalized"

    health = api.lambda_handler(load_event("api_health.json"), FakeLambdaContext())
    assert (health["statusCode"], json.loads(health["body"])) == (200, {"status": "ok"})

    bad = api.lambda_handler(load_event("api_bad_k.json"), FakeLambdaContext())
    assert bad["statusCode"] == 400
    assert json.loads(bad["body"]) == {
        "error": "bad_request",
        "message": "k must be an integer between 1 and 100",
    }


# The tent shares 2 baskets with the stove, 1 with the bag and 1 with the headlamp: with
# the default minimum support of 2 baskets and confidence, the stove is its one complement.
COMPLEMENTS = ["camping-stove"]


def test_cross_sell_routes(aws, monkeypatch):
    """Baskets: order-1001 {tent, bag, stove}, order-1002 {tent, stove, headlamp} (one via
    order_id), user-0012's cart {headlamp, stove} (no id: one basket by time), user-0013's
    cart {tent}. Scored by confidence (CROSS_SELL_MEASURE): in 4 baskets the default,
    added_value, finds no complement (see the next test)."""
    monkeypatch.setenv("CROSS_SELL_MEASURE", "confidence")
    import_handler("ingest").lambda_handler(load_event("ingest_baskets_kinesis.json"), FakeLambdaContext())
    similarity = import_handler("similarity")
    similarity.lambda_handler(load_event("similarity_baskets_kinesis.json"), FakeLambdaContext())
    api = import_handler("api")

    posted = api.lambda_handler(load_event("api_cross_sell_post.json"), FakeLambdaContext())
    assert posted["statusCode"] == 200
    body = json.loads(posted["body"])
    assert body["fallback"] is False
    assert len(body["items"]) == 3  # padded with popular items
    assert [i["item_id"] for i in body["items"] if i["source"] == "cross_sell"] == COMPLEMENTS
    assert "tent-2-person-ultralight" not in [i["item_id"] for i in body["items"]]
    for item in body["items"][: len(COMPLEMENTS)]:
        assert item["because"] == ["tent-2-person-ultralight"]
        assert item["reasons"] == ["often in baskets with tent-2-person-ultralight, which is in your cart"]

    # user-0013's cart holds the tent (the bag was only viewed): the same complements.
    mine = api.lambda_handler(load_event("api_cross_sell_user.json"), FakeLambdaContext())
    assert mine["statusCode"] == 200
    body = json.loads(mine["body"])
    assert body["user_id"] == "user-0013" and body["fallback"] is False
    assert [i["item_id"] for i in body["items"] if i["source"] == "cross_sell"] == COMPLEMENTS

    profile = api.lambda_handler(load_event("api_profile.json"), FakeLambdaContext())
    assert profile["statusCode"] == 200
    body = json.loads(profile["body"])
    assert body["known"] and body["cart"] == ["tent-2-person-ultralight"]
    assert body["event_counts"] == {"view": 1, "add_to_cart": 1}

    bad = api.lambda_handler(load_event("api_cross_sell_bad_items.json"), FakeLambdaContext())
    assert bad["statusCode"] == 400
    assert json.loads(bad["body"])["message"].startswith("items must be a list of 1..50 item ids")


def test_catalog_records_through_the_handlers(aws):
    """item_upsert records: valid ones stored and announced, bad ones dead-lettered with
    their reason; the similarity function computes content neighbours and the stock row;
    the API lists the new tent beside the old one, never the out-of-stock stove."""
    ingest = import_handler("ingest")
    assert ingest.lambda_handler(load_event("ingest_catalog_kinesis.json"), FakeLambdaContext()) == {
        "batchItemFailures": []
    }
    dynamodb = boto3.client("dynamodb")
    stored = dynamodb.scan(TableName=aws.tables["CatalogTable"].name)["Items"]
    assert sorted(i["item_id"]["S"] for i in stored if not i["item_id"]["S"].startswith("#")) == [
        "camping-stove",
        "sleeping-bag-down",
        "tent-2-person-ultralight",
        "tent-3-person-ultralight",
    ]
    content = {c["item_id"] for c in _changed_items(aws) if c.get("content_changed")}
    assert content == {
        "camping-stove",
        "sleeping-bag-down",
        "tent-2-person-ultralight",
        "tent-3-person-ultralight",
    }
    # the user event named no category: the catalog's went into the user's history
    user = dynamodb.get_item(TableName=aws.tables["UsersTable"].name, Key={"user_id": {"S": "user-0101"}})
    assert json.loads(user["Item"]["items"]["S"])[0][5] == "camping"

    sqs = boto3.client("sqs")
    queue = sqs.get_queue_url(QueueName=aws.queues["DeadLetterQueue"].name)["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    letters = sorted(
        (json.loads(m["Body"])["partition_key"], json.loads(m["Body"])["reason"]) for m in messages
    )
    assert [key for key, _ in letters] == ["headlamp", "water-filter"]
    assert letters[0][1].startswith("item_upsert schema violation: in_stock:")
    assert letters[1][1].startswith("item_upsert schema violation: price:")

    similarity = import_handler("similarity")
    assert similarity.lambda_handler(load_event("similarity_catalog_kinesis.json"), FakeLambdaContext()) == {
        "batchItemFailures": []
    }
    api = import_handler("api")
    event = load_event("api_similar.json")
    similar = api.lambda_handler(event, FakeLambdaContext())
    body = json.loads(similar["body"])
    listed = [i["item_id"] for i in body["items"]]
    assert body["item_id"] == "tent-2-person-ultralight"
    assert listed[0] == "tent-3-person-ultralight" and "camping-stove" not in listed
    assert body["items"][0]["reasons"] == ["similar to tent-2-person-ultralight (title, category, tags)"]


def test_cross_sell_default_measure_finds_no_complement_in_an_item_bought_at_random(aws):
    """The stove is in 3 of the 4 baskets but in only 2 of the tent's 3: P(stove | tent) = 2/3
    < P(stove) = 3/4, so by added_value (the default) it is no complement of the tent, and
    the answer is the popular fallback."""
    import_handler("ingest").lambda_handler(load_event("ingest_baskets_kinesis.json"), FakeLambdaContext())
    import_handler("similarity").lambda_handler(
        load_event("similarity_baskets_kinesis.json"), FakeLambdaContext()
    )
    posted = import_handler("api").lambda_handler(load_event("api_cross_sell_post.json"), FakeLambdaContext())
    body = json.loads(posted["body"])
    assert posted["statusCode"] == 200 and body["fallback"] is True
    assert all(item["source"] != "cross_sell" for item in body["items"])
