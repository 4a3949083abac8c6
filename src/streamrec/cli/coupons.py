"""``streamrec coupons load|list|prune``: coupon definitions in the coupons table (local stack
or ``--table``), and expired coupons out of every scope's index."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamrec.cli import progress
from streamrec.cli.inputs import (
    checking,
    decode_json_lines,
    is_json_lines,
    json_problem,
    read_text,
    refuse_an_array_over_lines,
)
from streamrec.cli.target import Target, add_target_arguments, check_target_flags, resolve_target
from streamrec.cli.wording import count_noun, first_lines, named_ids, plain_number


def _add_coupons_table_arguments(parser: argparse.ArgumentParser) -> None:
    """--table and the target arguments of every `coupons` action."""
    parser.add_argument("--table", default=None, help="the coupons table name (e.g. on AWS)")
    add_target_arguments(parser, "--table")


def _coupons_target(args: argparse.Namespace) -> Target:
    """The coupons table of a `coupons` action: --table, or the local stack's."""
    return resolve_target(args, args.table, "--table", lambda o: o["tables"]["CouponsTable"])


def coupon_repository(target: Target) -> Any:
    """The DynamoDB coupon repository of a `coupons` action's table."""
    from streamrec.repositories.dynamodb import DynamoCouponRepository, DynamoTable

    return DynamoCouponRepository(DynamoTable(target.name, target.client("dynamodb")))


def add_coupons_parser(subparsers: Any) -> None:
    coupons = subparsers.add_parser(
        "coupons",
        help="load coupon definitions into the coupons table, list them, or prune expired ones from "
        "its index",
        description="Coupons live in CouponsTable. By default the local stack's table "
        "(.local/outputs.json, written by `streamrec run`); on AWS pass --table (the CouponsTableName "
        "output) and use your usual AWS credentials.",
    )
    actions = coupons.add_subparsers(dest="action", metavar="ACTION", required=True)
    load = actions.add_parser(
        "load",
        help="create or redefine coupons from FILE (.json: an object or a list; .jsonl: one per line)",
        description="Every record is validated first (the PUT /coupons/{coupon_id} schema plus its "
        "coupon_id); nothing is written when one is invalid or a coupon_id comes twice. "
        "Redefining a coupon keeps the redemptions already counted.",
    )
    load.add_argument("file", type=Path, help="FILE.json or FILE.jsonl (either may be gzip-compressed: .gz)")
    _add_coupons_table_arguments(load)
    load.set_defaults(func=_cmd_coupons_load)
    prune = actions.add_parser(
        "prune",
        help="take expired coupons out of every scope's index (upkeep after campaigns end)",
        description="A definition prunes its own scope, so a scope no longer defined in keeps its "
        "expired coupons listed: each request for a user of that scope reads them (never offers "
        "them). This reads the whole table once (a Scan) and takes every expired coupon out of "
        "the index; the coupon rows stay (their redemption counts are the shop's record). Safe "
        "to run at any time, also while coupons are being defined.",
    )
    _add_coupons_table_arguments(prune)
    prune.set_defaults(func=_cmd_coupons_prune)
    listing = actions.add_parser(
        "list",
        help="every coupon defined, with its counts and whether it is offered now",
        description="Reads the whole table once (a Scan) and prints each coupon, by id: its "
        "state (active, scheduled, exhausted, expired), scope, discount, validity, and "
        "redemptions (remaining of budget, redeemed, refused past the budget); then a count "
        "per state. One coupon's is GET /coupons/{coupon_id}.",
    )
    listing.add_argument(
        "--state",
        choices=COUPON_STATES,
        action="append",
        help="only coupons in this state (repeat for several)",
    )
    listing.add_argument(
        "--json", action="store_true", help="one JSON object per line, as GET /coupons/{coupon_id} answers"
    )
    _add_coupons_table_arguments(listing)
    listing.set_defaults(func=_cmd_coupons_list)
    coupons.set_defaults(func=lambda args: coupons.print_help() or 2)


def read_coupon_file(path: Path) -> list[tuple[str, Any]]:
    """(coupon_id, CouponSpec) of every record of a .json or .jsonl file; SystemExit naming
    each invalid record (by position), or each coupon defined twice, otherwise."""
    from streamrec.domain.coupons import InvalidCoupon, coupon_record
    from streamrec.events import loads

    text = read_text(path)
    if not text.strip():
        raise SystemExit(f"error: nothing loaded; {path} holds no coupons")
    if is_json_lines(path):
        refuse_an_array_over_lines(path, text, "coupon")
        where, (records, problems) = "line", decode_json_lines(text)
    else:
        try:
            payload = loads(text)
        except json.JSONDecodeError as error:
            # "Extra data" after a first whole value: JSON lines, most likely.
            hint = " (one coupon per line? name the file .jsonl)" if error.msg == "Extra data" else ""
            raise SystemExit(f"error: nothing loaded; {path} is not valid JSON: {error}{hint}") from None
        except ValueError as error:
            raise SystemExit(
                f"error: nothing loaded; {path} is not valid JSON: {json_problem(error)}"
            ) from None
        items = payload if isinstance(payload, list) else [payload]
        where, records, problems = "record", list(enumerate(items, 1)), []
    parsed = []
    first_definition: dict[str, int] = {}
    for number, record in records:
        try:
            coupon_id, spec = coupon_record(record)
        except InvalidCoupon as error:
            problems.append((number, str(error)))
            continue
        parsed.append((coupon_id, spec))
        if coupon_id in first_definition:
            first = first_definition[coupon_id]
            problems.append((number, f"coupon_id {coupon_id!r} is already defined at {where} {first}"))
        else:
            first_definition[coupon_id] = number
    if problems:
        problems.sort(key=lambda problem: problem[0])  # in file order, whatever the kind
        named = [f"{path} {where} {number}: {reason}" for number, reason in problems]
        raise SystemExit("error: nothing loaded; invalid coupons:\n  " + "\n  ".join(named))
    if not parsed:
        raise SystemExit(f"error: nothing loaded; {path} holds no coupons")
    return parsed


SHOWN_KEPT = 20  # redefined coupons named by `coupons load` (a shop may redefine thousands)


def _refuse_full_scopes(path: Path, coupons: Sequence[tuple[str, Any]], now: float) -> None:
    """SystemExit, before anything is sent, when the file alone defines more coupons that
    have not expired in one scope than a scope lists (COUPONS_PER_SCOPE)."""
    from streamrec.domain.coupons import scope_keys
    from streamrec.repositories.base import COUPONS_PER_SCOPE, scope_words

    live: dict[str, int] = {}
    for _, spec in coupons:
        if spec.valid_to > now:
            for key in scope_keys(spec.scope):
                live[key] = live.get(key, 0) + 1
    over = sorted((key for key, count in live.items() if count > COUPONS_PER_SCOPE), key=lambda k: -live[k])
    if over:
        named = [" ".join(scope_words(key)) + f": {live[key]}" for key in over]
        raise SystemExit(
            f"error: nothing loaded; {path} defines more coupons that have not expired in one scope "
            f"than a scope lists ({COUPONS_PER_SCOPE}):\n" + first_lines(named, 10)
        )


def _cmd_coupons_load(args: argparse.Namespace) -> int:
    from streamrec.domain.coupons import coupon_state, scope_keys
    from streamrec.repositories.base import RepositoryError, ScopeFullError

    check_target_flags(args, args.table, "--table")
    with checking(args.file, "loaded"):
        coupons = read_coupon_file(args.file)
    now = time.time()
    _refuse_full_scopes(args.file, coupons, now)
    # The coupons the file ends first (valid_to passed), else in file order: a file that
    # ends campaigns and starts as many in a full scope frees their slots before it fills them.
    coupons.sort(key=lambda coupon: coupon[1].valid_to > now)
    target = _coupons_target(args)
    loaded = 0

    def interrupted() -> str:
        # Redefining a coupon keeps its redemptions, so loading again is safe.
        return f"loaded {loaded} of {len(coupons)} coupon(s) into {target.name} before it stopped"

    kept = []  # redefined coupons whose redemptions were kept: remaining < budget
    idle: dict[str, list[str]] = {"expired": [], "exhausted": []}  # stored, but never offered
    with target.failures(interrupted, again="re-run"):
        repository = coupon_repository(target)
        for coupon_id, spec in coupons:
            # Pruned once below, not per coupon: thousands in one scope would each read it.
            try:
                stored = repository.put(coupon_id, spec)
            except ScopeFullError as error:
                raise SystemExit(f"error: {error}; {interrupted()}") from None
            if stored.redeemed or stored.refused:  # remaining = budget - redeemed - refused
                refused = f", {stored.refused} refused past the budget" if stored.refused else ""
                kept.append(
                    f"{coupon_id}: remaining {stored.remaining} of {spec.budget} "
                    f"({stored.redeemed} redeemed{refused})"
                )
            state = coupon_state(stored, time.time())
            if state in idle:
                idle[state].append(coupon_id)
            loaded += 1
            progress.status(f"loaded {loaded}/{len(coupons)} coupons", done=loaded == len(coupons))
    if kept:
        print(f"{len(kept)} redefined coupon(s) keep the redemptions already counted:")
        print(first_lines(kept, SHOWN_KEPT))
    print(f"loaded {len(coupons)} coupon(s) into {target.name}")
    for state, why in (("expired", "their valid_to has passed"), ("exhausted", "no redemption left")):
        if idle[state]:
            print(
                f"note: {len(idle[state])} loaded coupon(s) are {state} ({why}): stored, never offered: "
                + named_ids(idle[state]),
                file=sys.stderr,
            )
    scopes = sorted({key for _, spec in coupons for key in scope_keys(spec.scope)})
    try:
        pruned = len(repository.prune_expired(scopes, time.time()))
    except RepositoryError as error:
        # The load is done; a stale index entry costs reads, never an offer.
        print(
            f"warning: the expired coupons of the loaded scopes were not pruned ({error}); "
            "the next definition in a scope prunes it",
            file=sys.stderr,
        )
        return 0
    if pruned:
        print(
            f"{pruned} expired coupon(s) left the index of the loaded coupons' scopes (never offered again)"
        )
    return 0


COUPON_STATES = ("active", "scheduled", "exhausted", "expired")


def _coupon_line(coupon: Any, state: str) -> str:
    """One coupon of `coupons list`: id, state, scope, discount, validity, counts."""
    spec = coupon.spec
    if spec.scope.category is not None:
        scope = f"category {spec.scope.category}"
    else:
        items = list(spec.scope.items or ())
        scope = f"items {', '.join(items[:3])}" + (f" (+{len(items) - 3})" if len(items) > 3 else "")
    value = plain_number(spec.discount.value)
    discount = f"{value}% off" if spec.discount.kind == "percent" else f"{value} off"
    if spec.min_spend:
        discount += f" from {plain_number(spec.min_spend)}"

    def moment(seconds: float) -> str:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    valid = f"{moment(spec.valid_from)}..{moment(spec.valid_to)}"
    return (
        f"{coupon.coupon_id}  {state}  {scope}; {discount}; {valid}; "
        f"remaining {coupon.remaining} of {spec.budget}, redeemed {coupon.redeemed}, refused {coupon.refused}"
    )


def _cmd_coupons_list(args: argparse.Namespace) -> int:
    from streamrec.domain.coupons import coupon_state, stored_coupon

    target = _coupons_target(args)
    with target.failures():
        repository = coupon_repository(target)
        coupons = []
        for coupon in repository.all_coupons():  # a Scan: a large table takes a while
            coupons.append(coupon)
            if len(coupons) % 1000 == 0:
                progress.status(f"read {len(coupons)} coupons")
    if len(coupons) >= 1000:
        progress.status(f"read {len(coupons)} coupons", done=True)  # ends the progress line
    coupons.sort(key=lambda coupon: coupon.coupon_id)
    now = time.time()
    states = {coupon.coupon_id: coupon_state(coupon, now) for coupon in coupons}
    shown = [coupon for coupon in coupons if not args.state or states[coupon.coupon_id] in args.state]
    for coupon in shown:
        print(
            json.dumps(stored_coupon(coupon, now))
            if args.json
            else _coupon_line(coupon, states[coupon.coupon_id])
        )
    if not args.json:
        per_state = ", ".join(
            f"{sum(1 for coupon in shown if states[coupon.coupon_id] == state)} {state}"
            for state in COUPON_STATES
        )
        print(f"{count_noun(len(shown), 'coupon')} ({per_state}) in {target.name}")
    return 0


# Scope index rows pruned per step of `coupons prune` (a progress line each).
PRUNE_SCOPES_PER_STEP = 100


def _cmd_coupons_prune(args: argparse.Namespace) -> int:

    target = _coupons_target(args)
    checked, pruned = 0, set[str]()

    def interrupted() -> str:
        # A prune takes out only what has expired: running it again is safe.
        return f"{len(pruned)} expired coupon(s) left the index of {checked} scope(s) before it stopped"

    with target.failures(interrupted, again="re-run"):
        repository = coupon_repository(target)
        progress.status(f"reading the scope index of {target.name}")
        scopes = repository.indexed_scopes()
        # One clock for the whole run: a coupon expiring meanwhile is left for the next one.
        now = time.time()
        for start in range(0, len(scopes), PRUNE_SCOPES_PER_STEP):
            step = scopes[start : start + PRUNE_SCOPES_PER_STEP]
            pruned |= repository.prune_expired(step, now)
            checked += len(step)
            progress.status(f"checked {checked}/{len(scopes)} scopes", done=checked == len(scopes))
    print(
        f"{len(pruned)} expired coupon(s) left the index of {target.name} "
        f"({len(scopes)} scope(s) checked; never offered again, their rows kept)"
    )
    return 0
