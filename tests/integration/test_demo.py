"""The demo data of `streamrec run`: events and coupons, answered by the local HTTP API."""

from __future__ import annotations

from streamrec.cli import _load_demo_coupons
from streamrec.local.demo import demo_coupons, demo_users, generate_demo_events
from streamrec.local.stack import LocalStack

from .support import ApiClient


def test_demo_users_get_coupons_of_their_interests(local_stack: LocalStack, api: ApiClient) -> None:
    events = generate_demo_events(600)
    local_stack.put_events(events)
    local_stack.drain(timeout=120)
    loaded = _load_demo_coupons(local_stack, local_stack.outputs()["tables"]["CouponsTable"])
    assert loaded == [record["coupon_id"] for record in demo_coupons()]

    offered_any = False
    for user in demo_users(3, events):
        reply = api.request("GET", f"/users/{user}/coupons?k=5")
        assert reply.status == 200, reply
        coupons = reply.body["coupons"]
        assert "camping-expired" not in {c["coupon_id"] for c in coupons}
        for coupon in coupons:
            assert coupon["reasons"], coupon
        offered_any = offered_any or bool(coupons)
    assert offered_any, "the demo users browse categories that have coupons"
