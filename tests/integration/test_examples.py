"""The sample files of examples/, loaded with the commands the README gives, on the local
stack: a shop engineer's first own data does what the README says it does."""

from __future__ import annotations

import json
from pathlib import Path

from streamrec.cli import main
from streamrec.cli.run import _load_demo_catalog
from streamrec.local.demo import generate_demo_events
from streamrec.local.stack import LocalStack

from .support import ApiClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_example_files_load_and_show_in_the_api(
    local_stack: LocalStack, api: ApiClient, tmp_path: Path, capsys
) -> None:
    _load_demo_catalog(local_stack)  # the demo shop the examples extend, as `make run` loads it
    local_stack.put_events(generate_demo_events(600))
    local_stack.drain(timeout=180)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(local_stack.outputs()))
    for command in (["catalog", "load", "catalog.jsonl"], ["coupons", "load", "coupons.json"]):
        assert main([*command[:2], str(EXAMPLES / command[2]), "--outputs", str(outputs)]) == 0
    # The commands put records as another process would: drain waits for polls after them.
    local_stack.clock.mark_activity()
    local_stack.drain(timeout=120)  # the catalog before the events that name its items
    assert main(["events", "load", str(EXAMPLES / "events.jsonl"), "--outputs", str(outputs)]) == 0
    local_stack.clock.mark_activity()
    local_stack.drain(timeout=120)
    assert "not defined" not in capsys.readouterr().err

    # The new bivy tent (no interactions but the example user's) beside the demo's 2-person tent.
    similar = api.request("GET", "/items/tent-2-person-ultralight/similar?k=10")
    assert "tent-1-person-bivy" in [i["item_id"] for i in similar.body["items"]], similar
    profile = api.request("GET", "/users/user-example/profile")
    assert profile.status == 200 and profile.body["event_counts"]["purchase"] == 1, profile
    offered = api.request("GET", "/users/user-example/coupons?k=3")
    assert {"ultralight-15", "hiking-10-off"} <= {c["coupon_id"] for c in offered.body["coupons"]}, offered
    # The trekking poles are out of stock: in no list.
    for path in ("/users/user-example/recommendations?k=50", "/items/headlamp-400/similar?k=50"):
        reply = api.request("GET", path)
        assert reply.status == 200 and "trekking-poles-carbon" not in json.dumps(reply.body), reply
