"""`streamrec run` as a user runs it: Ctrl-C stops it cleanly, also when a second Ctrl-C
comes while it is stopping (that used to cut the stop short and leave the process hanging)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_second_ctrl_c_while_stopping_does_not_cut_the_stop_short(tmp_path):
    run = subprocess.Popen(
        [sys.executable, "-m", "streamrec.cli", "run", "--port", "0", "--events", "3000"]
        + ["--outputs", str(tmp_path / "outputs.json")],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    try:
        assert run.stderr is not None
        lines = []
        while not any("local stack up" in line for line in lines):
            line = run.stderr.readline()
            assert line, f"streamrec run ended before its stack was up: {''.join(lines)}"
            lines.append(line)
        # The line names the HTTP API, which answers while the demo events are loaded.
        api = re.search(r"HTTP API on (http://127\.0\.0\.1:\d+);", lines[-1])
        assert api, lines[-1]
        with urllib.request.urlopen(f"{api.group(1)}/health", timeout=10) as answer:  # noqa: S310
            assert answer.status == 200
        # The outputs file is there already, so the CLI reaches this stack during the demo load.
        outputs = json.loads((tmp_path / "outputs.json").read_text())
        assert outputs["api_url"] == api.group(1) and outputs["ready"] is False
        assert "demo_users" not in outputs
        time.sleep(1.0)  # the demo events are being loaded
        run.send_signal(signal.SIGINT)
        time.sleep(0.3)  # it is stopping
        run.send_signal(signal.SIGINT)
        _, rest = run.communicate(timeout=60)  # it used to hang here for a minute or more
        err = "".join(lines) + rest
        assert run.returncode == 0, err
    finally:
        run.kill()
        run.wait()
    assert "still stopping" in err and "\nstopped\n" in err, err
    assert "Traceback" not in err and "can't create new thread" not in err, err
    # A script polling `ready` sees the stack is gone.
    stopped = json.loads((tmp_path / "outputs.json").read_text())
    assert (stopped["ready"], stopped["stopped"], stopped["api_url"]) == (False, True, api.group(1))
