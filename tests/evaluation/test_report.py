"""The report files from results shaped like p1.summarize / sessions.run_sessions output."""

from __future__ import annotations

import json

import pytest

from streamrec.evaluation import report

pytest.importorskip("matplotlib", reason="the 'eval' extra is not installed")

CURVE = [0.001 * k for k in range(1, 21)]


def _p1(peers=("pop", "als")):
    metrics = {"hr@10": 0.004, "hr@20": 0.0068, "mrr@20": 0.0015, "ndcg@20": 0.0026,
               "hr@20_unpadded": 0.0068, "coverage@20": 0.33, "padded_share": 0.001}
    ci = {"hr@10": [0.003, 0.005], "hr@20": [0.0054, 0.0085], "mrr@20": [0.001, 0.002],
          "ndcg@20": [0.002, 0.003], "hr@20_unpadded": [0.0054, 0.0085]}
    names = ["engine", *peers, "engine (as served)"]
    return {
        "engine": metrics, "peers": {p: metrics for p in peers}, "variants": {"engine (as served)": metrics},
        "intervals": {n: ci for n in names}, "hr_curve": {n: CURVE for n in names},
        "targets": 16546, "target_users": 809, "k": 20,
        "events": {"total": 84287, "warmup": 61453, "test": 22834}, "catalogue_items": 55233,
        "wall_time_s": 400.0, "method_time_s": {n: 1.0 for n in ["engine", *peers]},
        "refits": {"als": [[1512144000.0, 61453], [1512230400.0, 72932]]},
        "peer_config": {p: f"{p} config" for p in peers}, "date": "2026-01-02T03:04:05Z",
    }


def _p2():
    values = {"hr@20": 0.32, "mrr@20": 0.15, "positions": 1059}
    ci = {"hr@20": [0.28, 0.36], "mrr@20": [0.13, 0.18]}
    return {
        "k": 20, "engine": {"frozen": values, "stream": values}, "peers": {"pop": values},
        "intervals": {"engine (frozen)": ci, "engine (stream)": ci, "pop": ci},
        "hr_curve": {"engine (frozen)": CURVE, "engine (stream)": CURVE, "pop": CURVE},
        "time_s": {"engine stream": 1.0}, "positions": 1059, "train_clicks": 11024, "test_clicks": 1367,
        "test_sessions": 308, "wall_time_s": 6.0, "peer_config": {"pop": "pop config"},
    }


def test_report_files_with_rtrec_from_its_last_measurement(tmp_path):
    (tmp_path / report.RTREC_LAST).write_text(json.dumps({
        "date": "2025-12-01T10:00:00Z", "rtrec_version": "0.2.7", "metrics": _p1()["engine"],
        "intervals": _p1()["intervals"]["engine"], "hr_curve": CURVE, "targets": 16546, "time_s": 3000.0,
        "config": "rtrec SLIM",
    }))
    paths = report.write_report(tmp_path, _p1(), _p2(), wall_time_s=410.0)
    text = paths["md"].read_text()
    assert "| **engine** | 0.0040 | 0.0068 [0.0054, 0.0085] |" in text
    assert "rtrec (measured 2025-12-01, not rerun)" in text
    assert "_engine (as served)_" in text
    assert "**engine** (stream)" in text and "pop (frozen)" in text
    assert "16,546 targets" in text and "1,059 positions" in text
    assert "| similarity_measure |" in text  # the production configuration
    saved = json.loads(paths["json"].read_text())
    assert saved["p1"]["engine"]["hr@20"] == 0.0068
    assert saved["rtrec_last"]["date"] == "2025-12-01T10:00:00Z"
    assert saved["settings"]["history_length"] >= 1
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_with_rtrec_saves_its_dated_figures(tmp_path):
    paths = report.write_report(tmp_path, _p1(peers=("pop", "rtrec")), None)
    record = json.loads((tmp_path / report.RTREC_LAST).read_text())
    assert record["date"] == "2026-01-02T03:04:05Z"
    assert record["metrics"]["hr@20"] == 0.0068 and len(record["hr_curve"]) == 20
    text = paths["md"].read_text()
    assert "| rtrec |" in text and "not rerun" not in text
    assert json.loads(paths["json"].read_text())["rtrec_last"] is None


def test_no_rtrec_measurement_yet(tmp_path):
    text = report.write_report(tmp_path, _p1(), None)["md"].read_text()
    assert "rtrec: no measurement yet" in text


def test_other_protocols_get_a_table_of_engine_and_peers(tmp_path):
    p4 = {
        "engine": {"precision@3": 0.0729, "hits": 54, "targets_offered_fewer_than_3": 48},
        "engine_by_affinity": {"precision@3": 0.0702, "hits": 52},
        "engine_fill_none": {"precision@3": 0.0715, "hits": 53},
        "peers": {"most_viewed": {"precision@3": 0.0553, "hits": 41}},
        "intervals": {"engine": {"precision@3": [0.0540, 0.0931]}},
        "differences": {
            "most_viewed": {"precision@3": [0.0081, 0.0283]},
            "engine_fill_none": {"precision@3": [0.0, 0.0040]},
        },
        "targets": 247,
    }
    paths = report.write_report(tmp_path, None, None, protocols={"p4": p4})
    text = paths["md"].read_text()
    assert "## P4: coupon relevance" in text and "247 targets" in text
    assert "| method | precision@3 |" in text
    assert "| **engine** | 0.0729 [0.0540, 0.0931] |" in text and "| most_viewed | 0.0553 |" in text
    # an engine variant (ablation) gets its row between the engine and the peers
    assert (
        "| **engine** | 0.0729 [0.0540, 0.0931] |\n| engine by affinity | 0.0702 |\n"
        "| engine without the fill | 0.0715 |\n| most_viewed" in text
    )
    assert "- engine − engine without the fill, precision@3: +0.0014 [+0.0000, +0.0040]" in text
    assert "- engine − most viewed, precision@3: +0.0176 [+0.0081, +0.0283]" in text
    assert json.loads(paths["json"].read_text())["protocols"]["p4"]["engine"]["hits"] == 54


def test_rerendering_takes_rtrecs_newer_figures(tmp_path):
    report.write_report(tmp_path, _p1(), _p2(), wall_time_s=410.0)
    assert "rtrec: no measurement yet" in (tmp_path / report.REPORT_MD).read_text()
    (tmp_path / report.RTREC_LAST).write_text(
        json.dumps(
            {
                "date": "2026-11-28T03:40:00Z",
                "rtrec_version": "0.2.7",
                "metrics": _p1()["engine"],
                "intervals": _p1()["intervals"]["engine"],
                "hr_curve": CURVE,
                "targets": 16546,
                "time_s": 5000.0,
                "config": "rtrec SLIM",
            }
        )
    )
    before = json.loads((tmp_path / report.REPORT_JSON).read_text())
    report.rerender_report(tmp_path)
    text = (tmp_path / report.REPORT_MD).read_text()
    assert "rtrec (measured 2026-11-28, not rerun)" in text
    after = json.loads((tmp_path / report.REPORT_JSON).read_text())
    assert after["date"] == before["date"] and after["p1"] == before["p1"]
    assert after["rtrec_last"]["date"] == "2026-11-28T03:40:00Z"
