"""Commands that act on the local stack through its outputs file fail fast, in one line, when
the stack is not running (a stale file) or stops in the middle of the command."""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

import streamrec.cli
from streamrec.cli import build_parser, main
from streamrec.cli.progress import StatusLine
from streamrec.cli.target import LOCAL_OUTPUTS
from streamrec.local.template import load_template
from streamrec.repositories.dynamodb import DynamoCouponRepository
from tests.unit.test_catalog_cli import TENT
from tests.unit.test_coupons import LOAD_RECORD as COUPON

ROOT = Path(__file__).resolve().parents[2]
SRC = Path(streamrec.cli.__file__).resolve().parents[2]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port nothing listens on (held, so that nothing else takes it meanwhile)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def _outputs(path: Path, endpoint: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "endpoint_url": endpoint,
                "region": "us-east-1",
                "event_stream": "streamrec-events",
                "dead_letter_queue_url": f"{endpoint}/123456789012/streamrec-dlq",
                "tables": {"CouponsTable": "streamrec-coupons", "CatalogTable": "streamrec-catalog"},
            }
        )
    )
    return path


def _files(tmp_path: Path) -> dict[str, Path]:
    catalog, coupons = tmp_path / "catalog.jsonl", tmp_path / "coupons.json"
    catalog.write_text(json.dumps(TENT) + "\n")
    coupons.write_text(json.dumps([COUPON]))
    return {"catalog": catalog, "coupons": coupons}


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (["dlq", "list"], "--queue-url"),
        (["dlq", "redrive"], "--queue-url"),
        (["coupons", "load", "{coupons}"], "--table"),
        (["catalog", "load", "{catalog}"], "--stream"),
        (["catalog", "recount"], "--table"),
    ],
)
def test_a_stale_outputs_file_fails_fast_in_one_line(tmp_path, closed_port, command, flag):
    endpoint = f"http://127.0.0.1:{closed_port}"
    outputs = _outputs(tmp_path / "outputs.json", endpoint)
    files = _files(tmp_path)
    argv = [part.format(**files) for part in command] + ["--outputs", str(outputs)]
    started = time.monotonic()
    with pytest.raises(SystemExit) as failed:
        main(argv)
    assert time.monotonic() - started < 2.0  # botocore's retries took 5-26 s
    assert failed.value.code == (
        f"error: the local stack at {endpoint} is not running ({outputs} is from an earlier run): "
        f"start it (`streamrec run`) or pass {flag}"
    )


def test_the_script_exits_1_with_one_line_on_stderr(tmp_path, closed_port):
    outputs = _outputs(tmp_path / "outputs.json", f"http://127.0.0.1:{closed_port}")
    finished = subprocess.run(
        [sys.executable, "-m", "streamrec.cli", "dlq", "list", "--outputs", str(outputs)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        timeout=30,
    )
    assert finished.returncode == 1
    assert finished.stderr.count("\n") == 1 and "is not running" in finished.stderr


def test_an_outputs_folder_is_named_as_such(tmp_path):
    with pytest.raises(SystemExit) as failed:
        main(["dlq", "list", "--outputs", str(tmp_path)])
    assert (
        failed.value.code
        == f"error: {tmp_path} is a directory: --outputs takes the file `streamrec run` wrote"
    )


def test_an_outputs_file_that_is_not_one_is_named(tmp_path):
    outputs = tmp_path / "outputs.json"
    outputs.write_text('{"region": "us-east-1"')
    with pytest.raises(SystemExit, match="is not an outputs file of `streamrec run`"):
        main(["dlq", "list", "--outputs", str(outputs)])


# ---- the stack stops in the middle of a command -------------------------------------------
@pytest.fixture
def moto_server(closed_port) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A moto server in its own process (as `streamrec run`'s is), to be killed by a test."""
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert server.stderr is not None
        line = b""
        while b"Running on http://" not in line:
            line = server.stderr.readline()
            assert line, "the moto server did not start"
        endpoint = line.split(b"Running on ", 1)[1].strip().decode()
        server.stderr.close()
        yield endpoint, server
    finally:
        server.kill()
        server.wait()


def _client(service: str, endpoint: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_catalog_load_says_how_far_it_got_when_the_stack_stops(tmp_path, moto_server, monkeypatch):
    endpoint, server = moto_server
    _client("kinesis", endpoint).create_stream(StreamName="streamrec-events", ShardCount=1)
    outputs = _outputs(tmp_path / "outputs.json", endpoint)
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("\n".join(json.dumps({**TENT, "item_id": f"item-{n}"}) for n in range(1201)))

    class StopAfterFirstChunk(StatusLine):
        def __call__(self, text: str, *, done: bool = False) -> None:
            super().__call__(text, done=done)
            if text.startswith("sent 500/"):
                server.kill()
                server.wait()

    monkeypatch.setattr(streamrec.cli.progress, "status", StopAfterFirstChunk())
    started = time.monotonic()
    with pytest.raises(SystemExit) as failed:
        main(["catalog", "load", str(catalog), "--outputs", str(outputs)])
    assert time.monotonic() - started < 10.0
    assert failed.value.code == (
        f"error: the local stack at {endpoint} stopped answering; sent 500 of 1201 records to "
        "streamrec-events before it stopped: re-run to send all"
    )


def _three_coupons_to_load(tmp_path: Path, endpoint: str) -> tuple[Any, Path, Path]:
    """The coupons table on the moto server at ``endpoint``, an outputs file naming it, and a
    file of 3 coupons: (table, outputs, coupons)."""
    table = load_template(ROOT / "template.yaml").tables["CouponsTable"]
    _client("dynamodb", endpoint).create_table(**table.create_kwargs)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps({"endpoint_url": endpoint, "region": "us-east-1", "tables": {"CouponsTable": table.name}})
    )
    coupons = tmp_path / "coupons.json"
    coupons.write_text(json.dumps([{**COUPON, "coupon_id": f"coupon-{n}"} for n in range(3)]))
    return table, outputs, coupons


def test_coupons_load_says_how_far_it_got_when_the_stack_stops(tmp_path, moto_server, monkeypatch, capsys):
    endpoint, server = moto_server
    table, outputs, coupons = _three_coupons_to_load(tmp_path, endpoint)
    put = DynamoCouponRepository.put

    def put_then_stop(self, coupon_id, spec):
        stored = put(self, coupon_id, spec)
        server.kill()
        server.wait()
        return stored

    monkeypatch.setattr(DynamoCouponRepository, "put", put_then_stop)
    with pytest.raises(SystemExit) as failed:
        main(["coupons", "load", str(coupons), "--outputs", str(outputs)])
    assert failed.value.code == (
        f"error: the local stack at {endpoint} stopped answering; loaded 1 of 3 coupon(s) into "
        f"{table.name} before it stopped: re-run"
    )
    assert capsys.readouterr().out == ""  # the summary is only for a finished load


def test_events_load_names_the_redeemed_coupons_the_local_stack_does_not_define(
    tmp_path, moto_server, capsys
):
    endpoint, _ = moto_server
    _, outputs, coupons = _three_coupons_to_load(tmp_path, endpoint)
    assert main(["coupons", "load", str(coupons), "--outputs", str(outputs)]) == 0
    _client("kinesis", endpoint).create_stream(StreamName="streamrec-events", ShardCount=1)
    outputs.write_text(json.dumps({**json.loads(outputs.read_text()), "event_stream": "streamrec-events"}))
    redeemed = [
        {
            "event_id": f"r{n}",
            "event_type": "coupon_redeemed",
            "user_id": "u1",
            "coupon_id": coupon,
            "timestamp": n,
        }
        for n, coupon in enumerate(
            ["coupon-1", "winter-10", "coupon-2", "winter-10", "spring"], start=1_764_000_000
        )
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(r) for r in redeemed))
    capsys.readouterr()
    assert main(["events", "load", str(events), "--outputs", str(outputs)]) == 0
    err = capsys.readouterr().err
    assert "5 coupon_redeemed events: 2 coupons not defined in the local stack (spring, winter-10)" in err
    # All defined: nothing to say.
    events.write_text(json.dumps({**redeemed[0], "event_id": "r9"}))
    assert main(["events", "load", str(events), "--outputs", str(outputs)]) == 0
    assert "coupon_redeemed" not in capsys.readouterr().err


def test_a_region_other_than_the_local_stacks_is_refused(tmp_path, moto_server):
    endpoint = moto_server[0]
    table, outputs, coupons = _three_coupons_to_load(tmp_path, endpoint)
    with pytest.raises(SystemExit) as failed:
        main(["coupons", "load", str(coupons), "--outputs", str(outputs), "--region", "eu-west-1"])
    assert failed.value.code == (
        f"error: the local stack of {outputs} is in region us-east-1, so --region eu-west-1 would "
        "find none of its resources: leave --region out, or name a resource on AWS with --table"
    )
    # Also with --endpoint-url: the resource names still come from the local stack's outputs.
    with pytest.raises(SystemExit, match="is in region us-east-1, so --region eu-west-1 would find none"):
        main(
            [
                "coupons",
                "load",
                str(coupons),
                "--outputs",
                str(outputs),
                "--region",
                "eu-west-1",
                "--endpoint-url",
                endpoint,
            ]
        )
    # Its own region is harmless.
    assert main(["coupons", "load", str(coupons), "--outputs", str(outputs), "--region", "us-east-1"]) == 0


def test_a_missing_table_or_stream_gives_the_cause_and_no_re_run_advice(tmp_path, moto_server, monkeypatch):
    endpoint = moto_server[0]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    _, _, coupons = _three_coupons_to_load(tmp_path, endpoint)
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text(json.dumps(TENT))
    aws = ["--endpoint-url", endpoint, "--region", "us-east-1"]
    with pytest.raises(SystemExit) as table_missing:
        main(["coupons", "load", str(coupons), "--table", "nosuch", *aws])
    assert table_missing.value.code == (
        "error: update_item on nosuch failed: ResourceNotFoundException (Requested resource not found); "
        "loaded 0 of 3 coupon(s) into nosuch before it stopped"
    )
    with pytest.raises(SystemExit) as stream_missing:
        main(["catalog", "load", str(catalog), "--stream", "nosuch", *aws])
    assert "Stream nosuch under account" in str(stream_missing.value.code)
    assert str(stream_missing.value.code).endswith("; sent 0 of 1 records to nosuch before it stopped")


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        ("ProvisionedThroughputExceededException", True),
        ("InternalServerError", True),
        ("ResourceNotFoundException", False),
        ("AccessDeniedException", False),
        ("KMSAccessDeniedException", False),
    ],
)
def test_re_run_is_advised_only_when_running_again_can_finish(code, advice):
    from botocore.exceptions import ClientError

    from streamrec.repositories.base import RepositoryError

    target = streamrec.cli.target.Target("events", {})
    error = ClientError({"Error": {"Code": code, "Message": "m"}}, "PutRecords")
    for raised in (error, RepositoryError("put_records on events failed")):
        raised.__cause__ = error if raised is not error else None
        with pytest.raises(SystemExit) as failed, target.failures(lambda: "sent 3 of 9", again="re-run"):
            raise raised
        assert str(failed.value.code).endswith("; sent 3 of 9: re-run" if advice else "; sent 3 of 9")


def test_missing_credentials_are_not_fixed_by_running_again():
    from botocore.exceptions import NoCredentialsError

    target = streamrec.cli.target.Target("t", {})
    with pytest.raises(SystemExit) as failed, target.failures(lambda: "did 0", "re-run"):
        raise NoCredentialsError()
    assert failed.value.code == (
        "error: Unable to locate AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, or run aws configure); did 0"
    )


def test_ctrl_c_in_the_middle_says_how_far_it_got(tmp_path, moto_server, monkeypatch, capsys):
    table, outputs, coupons = _three_coupons_to_load(tmp_path, moto_server[0])
    put = DynamoCouponRepository.put

    def put_then_interrupt(self, coupon_id, spec):
        stored = put(self, coupon_id, spec)
        if coupon_id == "coupon-1":
            raise KeyboardInterrupt
        return stored

    monkeypatch.setattr(DynamoCouponRepository, "put", put_then_interrupt)
    with pytest.raises(SystemExit) as stopped:
        main(["coupons", "load", str(coupons), "--outputs", str(outputs)])
    assert stopped.value.code == 130
    # After the progress lines (written or not, as their pace allows), one line says how far.
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"streamrec: interrupted; loaded 1 of 3 coupon(s) into {table.name} before it stopped: re-run"
    )


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["openapi", "extra"], "usage: streamrec openapi "),
        (["dlq", "list", "extra"], "usage: streamrec dlq list "),
        (["eval", "p4", "--nope"], "usage: streamrec eval p4 "),
    ],
)
def test_an_unknown_argument_is_named_with_the_commands_own_usage(argv, usage, capsys):
    with pytest.raises(SystemExit) as refused:
        main(argv)
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage), err
    command = usage.split(": ", 1)[1].strip()
    assert err.rstrip().endswith(f"{command}: error: unrecognized arguments: {argv[-1]}")


def test_ctrl_c_anywhere_else_is_one_line_and_status_130(monkeypatch, capsys):
    def interrupted(_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(streamrec.cli.openapi, "_cmd_openapi", interrupted)
    assert main(["openapi"]) == 130
    assert capsys.readouterr().err == "streamrec: interrupted\n"


def test_a_reader_that_goes_away_ends_the_command_quietly():
    # `streamrec ... | head -1`: no BrokenPipeError traceback, the status of a SIGPIPE.
    script = (
        "import streamrec.cli as cli\n"
        "import streamrec.cli.openapi as openapi_command\n"
        "def chatty(_args):\n"
        "    for n in range(200_000):\n"
        "        print(f'line {n}')\n"
        "    return 0\n"
        "openapi_command._cmd_openapi = chatty\n"
        "raise SystemExit(cli.main(['openapi']))\n"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )
    assert writer.stdout is not None and writer.stderr is not None
    assert writer.stdout.readline() == b"line 0\n"
    writer.stdout.close()  # the reader goes away
    assert writer.wait(timeout=60) == 141
    assert writer.stderr.read() == b""


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (["dlq", "list", "--queue-url", "https://sqs.us-east-1.amazonaws.com/1/q"], "--queue-url"),
        (["coupons", "load", "{coupons}", "--table", "coupons"], "--table"),
        (["catalog", "load", "{catalog}", "--stream", "events"], "--stream"),
        # Before the file is read (a large one takes a while): this one does not exist.
        (["events", "load", "no-such-file.jsonl", "--dry-run", "--stream", "events"], "--stream"),
        (["catalog", "load", "no-such-file.jsonl", "--stream", "events"], "--stream"),
        (["coupons", "load", "no-such-file.json", "--table", "coupons"], "--table"),
    ],
)
def test_outputs_and_a_resource_flag_are_refused_together(tmp_path, command, flag):
    # --stream targets AWS: with --outputs too, which one was meant is a guess.
    files = _files(tmp_path)
    argv = [part.format(**files) for part in command] + ["--outputs", str(tmp_path / "outputs.json")]
    with pytest.raises(SystemExit) as refused:
        main(argv)
    assert str(refused.value.code).startswith(f"error: --outputs and {flag} do not go together")


def test_no_region_for_aws_is_a_configuration_error_not_a_partial_run(tmp_path, monkeypatch):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    with pytest.raises(SystemExit) as refused:
        main(["catalog", "load", str(_files(tmp_path)["catalog"]), "--stream", "events"])
    assert refused.value.code == "error: no AWS region: pass --region (or set AWS_REGION); nothing was done"


def test_coupons_load_prunes_the_expired_coupons_of_the_loaded_scopes_once(tmp_path, moto_server, capsys):
    from streamrec.domain.coupons import coupon_record
    from streamrec.repositories.dynamodb import DynamoTable

    endpoint = moto_server[0]
    table, outputs, coupons = _three_coupons_to_load(tmp_path, endpoint)
    now = int(time.time())
    repository = DynamoCouponRepository(DynamoTable(table.name, _client("dynamodb", endpoint)))
    repository.put(
        *coupon_record(
            {
                **COUPON,
                "coupon_id": "last-year",
                "valid_from": now - 400 * 86_400,
                "valid_to": now - 300 * 86_400,
            }
        )
    )
    repository.put(
        *coupon_record(
            {
                **COUPON,
                "coupon_id": "other-scope",
                "scope": {"category": "kitchen"},
                "valid_from": now - 400 * 86_400,
                "valid_to": now - 300 * 86_400,
            }
        )
    )
    live = {**COUPON, "valid_from": now - 86_400, "valid_to": now + 30 * 86_400}
    records = [
        {**live, "coupon_id": "this-month"},
        {**live, "coupon_id": "ended", "valid_to": now - 60},
        {**live, "coupon_id": "spent", "budget": 0},
    ]
    coupons.write_text(json.dumps(records))
    puts = []
    put = DynamoCouponRepository.put

    def counted_put(self, coupon_id, spec, now=None):
        puts.append(now)
        return put(self, coupon_id, spec, now)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DynamoCouponRepository, "put", counted_put)
        assert main(["coupons", "load", str(coupons), "--outputs", str(outputs)]) == 0
    assert puts == [None, None, None]  # no prune per coupon: one for the whole load
    assert repository.in_scope(["cat:camping"]) == {"this-month", "spent"}
    assert repository.in_scope(["cat:kitchen"]) == {"other-scope"}  # no coupon loaded there
    captured = capsys.readouterr()
    assert (
        "2 expired coupon(s) left the index of the loaded coupons' scopes (never offered again)"
        in captured.out
    )
    # The file's own expired coupon is stored (a record), and said never to be offered.
    assert (
        "note: 1 loaded coupon(s) are expired (their valid_to has passed): stored, never offered: ended"
        in captured.err
    )
    assert (
        "note: 1 loaded coupon(s) are exhausted (no redemption left): stored, never offered: spent"
        in captured.err
    )


def test_coupons_load_that_cannot_prune_still_reports_the_load(tmp_path, moto_server, monkeypatch, capsys):
    from streamrec.repositories.base import RepositoryError

    table, outputs, coupons = _three_coupons_to_load(tmp_path, moto_server[0])

    def refused(self, scope_keys, now, limit=None):
        raise RepositoryError("TransactWriteItems on coupons failed: AccessDeniedException")

    monkeypatch.setattr(DynamoCouponRepository, "prune_expired", refused)
    assert main(["coupons", "load", str(coupons), "--outputs", str(outputs)]) == 0
    captured = capsys.readouterr()
    assert f"loaded 3 coupon(s) into {table.name}" in captured.out
    assert (
        "warning: the expired coupons of the loaded scopes were not pruned (TransactWriteItems on coupons "
        "failed: AccessDeniedException); the next definition in a scope prunes it"
    ) in captured.err


@pytest.fixture
def other_server() -> Iterator[str]:
    """A plain HTTP server: another program that took a stopped stack's port."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_stale_outputs_file_whose_port_another_program_took_is_named(tmp_path, other_server):
    outputs = _outputs(tmp_path / "outputs.json", other_server)
    with pytest.raises(SystemExit) as failed:
        main(["coupons", "list", "--outputs", str(outputs)])
    assert failed.value.code == (
        f"error: the local stack at {other_server} is not running ({outputs} is from an earlier run, "
        "and another program now listens there): start it (`streamrec run`) or pass --table"
    )


def test_run_refuses_the_outputs_file_of_a_stack_still_running(tmp_path, moto_server, other_server):
    endpoint, _ = moto_server
    outputs = _outputs(tmp_path / "outputs.json", endpoint)
    with pytest.raises(SystemExit) as failed:
        main(["run", "--no-demo", "--port", "0", "--outputs", str(outputs)])
    assert failed.value.code == (
        f"error: {outputs} belongs to a local stack still running at {endpoint}: stop that one, "
        "or give this one its own outputs file (--outputs FILE)"
    )
    assert json.loads(outputs.read_text())["endpoint_url"] == endpoint  # left as it was
    # A stale file (its stack stopped, the port taken by another program) is not in the way.
    streamrec.cli.run._refuse_outputs_of_a_running_stack(_outputs(tmp_path / "stale.json", other_server))


def test_run_refuses_one_port_for_both_servers():
    with pytest.raises(SystemExit, match="--port and --moto-port are both 4711"):
        main(["run", "--no-demo", "--port", "4711", "--moto-port", "4711"])


@pytest.mark.parametrize(
    ("given", "taken"),
    [
        ("https://shop.example.com", "https://shop.example.com"),
        ("http://a.example, http://b.example:8080/", "http://a.example,http://b.example:8080"),
        ("HTTP://LOCALHOST:8080", "http://localhost:8080"),
        ("*", "*"),
    ],
)
def test_cors_origins_are_written_as_browsers_send_them(given, taken):
    assert streamrec.cli.run._origins(given) == taken


def test_the_printed_commands_are_typed_as_this_shell_finds_them(tmp_path, monkeypatch):
    program = tmp_path / ".venv" / "bin" / "streamrec"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert streamrec.cli.run._as_typed(str(program)) == ".venv/bin/streamrec"  # as `make run` runs it
    monkeypatch.setenv("PATH", f"{program.parent}:/usr/bin:/bin")
    assert streamrec.cli.run._as_typed(str(program)) == "streamrec"  # an activated venv


def _printed_load_commands(outputs_file: str) -> list[list[str]]:
    outputs = {
        "api_url": "http://127.0.0.1:3000",
        "endpoint_url": "http://127.0.0.1:5000",
        "region": "us-east-1",
        "event_stream": "streamrec-events",
        "outputs_file": outputs_file,
    }
    banner = streamrec.cli.run._examples(outputs)
    lines = [shlex.split(line) for line in banner.splitlines() if " load examples/" in line]
    # After the program, typed as one word or as `python -m streamrec.cli`.
    return [words[words.index("load") - 1 :] for words in lines]


@pytest.mark.parametrize("outputs_file", ["elsewhere/stack two.json", "-o.json", str(LOCAL_OUTPUTS)])
def test_the_printed_load_commands_reach_the_stack_that_printed_them(outputs_file):
    commands = _printed_load_commands(outputs_file)
    assert [command[:2] for command in commands] == [
        ["catalog", "load"],
        ["coupons", "load"],
        ["events", "load"],
    ]
    for command in commands:
        args = build_parser().parse_args(command)
        # Unset means the default file; a stack started with its own --outputs must be named.
        assert (args.outputs or LOCAL_OUTPUTS) == Path(outputs_file), command
        named = any(word.startswith("--outputs") for word in command)
        assert named == (Path(outputs_file) != LOCAL_OUTPUTS)


def test_the_printed_python_is_the_venvs_own_not_the_interpreter_it_links_to(tmp_path, monkeypatch):
    base = tmp_path / "base" / "python3.12"
    base.parent.mkdir()
    base.write_text("#!/bin/sh\n")
    base.chmod(0o755)
    venv_python = tmp_path / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.symlink_to(base)  # as venv makes it: the base one lacks the venv's boto3
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert streamrec.cli.run._as_typed(str(venv_python)) == ".venv/bin/python"
    monkeypatch.setenv("PATH", f"{venv_python.parent}:/usr/bin:/bin")
    assert streamrec.cli.run._as_typed(str(venv_python)) == "python"


class FakeStack:
    """A local stack that starts at once and serves nothing: `run` up to its wait."""

    api_url = "http://127.0.0.1:1"
    abandoned: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> FakeStack:
        return self

    def __exit__(self, *exc: object) -> bool:
        return False

    def outputs(self) -> dict[str, Any]:
        return {
            "api_url": self.api_url,
            "endpoint_url": "http://127.0.0.1:2",
            "region": "us-east-1",
            "event_stream": "events",
            "dead_letter_queue_url": "http://127.0.0.1:2/queue",
            "tables": {},
        }

    def client(self, service: str) -> None:
        return None


def test_run_reports_an_outputs_file_it_cannot_write_in_one_line(tmp_path, monkeypatch, capsys):
    import streamrec.local.stack as stack_module

    monkeypatch.setattr(stack_module, "LocalStack", FakeStack)
    monkeypatch.setattr(streamrec.cli.run, "_refuse_outputs_of_a_running_stack", lambda path: None)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["run", "--no-demo", "--outputs", str(blocker / "outputs.json")]) == 1
    err = capsys.readouterr().err
    assert f"error: cannot write {blocker / 'outputs.json'}" in err and "Traceback" not in err


def test_run_names_its_outputs_in_the_dead_letter_hint(tmp_path, monkeypatch, capsys):
    import streamrec.local.stack as stack_module

    followed: dict[str, Any] = {}

    def follow(stack, stop, **options):
        followed.update(options)
        raise KeyboardInterrupt  # as Ctrl-C ends the wait

    monkeypatch.setattr(stack_module, "LocalStack", FakeStack)
    monkeypatch.setattr(streamrec.cli.run, "_refuse_outputs_of_a_running_stack", lambda path: None)
    monkeypatch.setattr(streamrec.cli.run, "_follow", follow)
    outputs = tmp_path / "second stack.json"
    assert main(["run", "--no-demo", "--outputs", str(outputs)]) == 0
    words = shlex.split(followed["dlq_list"])
    args = build_parser().parse_args(words[words.index("dlq") :])
    assert (args.command, args.outputs) == ("dlq", outputs)
    assert json.loads(outputs.read_text())["stopped"] is True


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Takes connections and never answers: a local stack too busy to serve its page."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def test_a_stack_too_busy_to_answer_is_not_taken_for_another_program(tmp_path, silent_server, monkeypatch):
    monkeypatch.setattr(streamrec.cli.target, "LOCAL_STACK_ANSWER_SECONDS", 0.2)
    outputs = _outputs(tmp_path / "outputs.json", silent_server)
    with pytest.raises(SystemExit) as failed:
        main(["coupons", "list", "--outputs", str(outputs)])
    assert failed.value.code == (
        f"error: the local stack at {silent_server} takes connections but did not answer within 1 s "
        "(busy loading or replaying?): try again, or pass --table"
    )
    # Nor are its outputs taken over by a new stack.
    with pytest.raises(SystemExit, match="belongs to a local stack still running"):
        streamrec.cli.run._refuse_outputs_of_a_running_stack(outputs)


@pytest.fixture
def banner_server() -> Iterator[str]:
    """Another program on the port that does not speak HTTP (an SSH banner)."""
    import threading

    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def test_a_program_that_does_not_speak_http_is_another_program(tmp_path, banner_server):
    outputs = _outputs(tmp_path / "outputs.json", banner_server)
    with pytest.raises(SystemExit) as failed:
        main(["coupons", "list", "--outputs", str(outputs)])
    assert "another program now listens there" in str(failed.value.code)
    streamrec.cli.run._refuse_outputs_of_a_running_stack(outputs)  # not a running stack: no error
