"""``streamrec eval``: the protocols of ../shared/EVALUATION.md from the command line.

``add_eval_parser(subparsers)`` registers ``eval`` with these subcommands:

* ``eval p1`` - P1 on the Taobao head: the engine and its peers, JSON to stdout / ``--out``;
* ``eval p2`` - P2 on the Diginetica split (written to temporary files), both modes;
* ``eval sessions`` - P2 on any (session, item, time) files;
* ``eval p3`` - P3 on UCI Online Retail: cross-sell (basket completion) and its peers;
* ``eval p4`` - P4 (coupon relevance) on the Taobao head: engine and peers, JSON; with
  ``--fit``, fits the coupon model on cut-offs inside the warm-up (Settings.coupon_model);
* ``eval content`` - the project's own protocol for content similarity and cold items
  (UCI Online Retail with product descriptions as the catalog; see :mod:`content`);
* ``eval demand`` - the project's own protocol for the demand forecast (UCI Online Retail's
  daily units per product; see :mod:`demand`);
* ``eval all`` - P1 + P2 + P3 + P4 + content + demand, then eval/report.md,
  eval/report.json and eval/hr_at_k.png.

Each sets ``func`` (``args -> exit code``), like the other subcommands of ``streamrec``.
Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streamrec.argtypes import output_file, whole_number
from streamrec.evaluation.datasets import (
    DIGINETICA_DIR,
    DIGINETICA_FILE,
    DIGINETICA_TEST_FROM,
    TAOBAO_DIR,
    TAOBAO_FILE,
    DatasetInvalid,
    DatasetMissing,
    DumpNotWritten,
    default_data_dir,
    diginetica_split,
    read_session_file,
    write_session_file,
)
from streamrec.evaluation.report import RTREC_LAST, now_iso, write_report
from streamrec.events import json_type
from streamrec.settings import ConfigurationError

__all__ = [
    "add_eval_parser",
    "run_content_command",
    "run_p1_command",
    "run_p2_command",
    "run_p3_command",
    "run_p4_command",
]

SEPARATORS = {",": ",", ";": ";", "\t": "\t", "\\t": "\t", "tab": "\t", "comma": ",", "semicolon": ";"}


def repo_root() -> Path:
    """The checkout holding pyproject.toml (editable install), else the current directory."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    return Path.cwd()


def default_report_dir() -> Path:
    return repo_root() / "eval"


def _separator(text: str) -> str:
    try:
        return SEPARATORS[text]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"separator must be ',', ';' or a tab ('\\t'), got {text!r}"
        ) from None


def _names(text: str) -> list[str]:
    """The comma-separated names of ``text``, each once, in order ('' = none)."""
    return list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))


class UnknownPeer(ValueError):
    """A ``--peers`` name the protocol does not know."""


def check_peers(names: Sequence[str], known: Sequence[str]) -> None:
    """Fail before any data is loaded when a peer name is not one of ``known``."""
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UnknownPeer(
            f"unknown peer{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"--peers takes a comma-separated list of {', '.join(known)} ('' for none)"
        )


class NoTargets(ValueError):
    """The data held nothing to evaluate (no targets, positions or cases): all-zero figures
    would look like a result."""


def check_positions(test: Sequence[Any], where: object) -> None:
    """P2 predicts every click of a test session after its first: fail when there is none."""
    if len(test) <= len({click.session_id for click in test}):
        raise NoTargets(f"no positions to predict: every session of {where} has a single click")


def _progress(args: argparse.Namespace) -> Any:
    if getattr(args, "quiet", False):
        return None
    from streamrec.evaluation.p1 import StderrProgress

    return StderrProgress()


def _say(progress: Any, text: str) -> None:
    """A stage line (loading, ingesting, ...): always written, unless quiet."""
    if progress is not None:
        progress(text, final=True)


def _stages(progress: Any) -> Any:
    """``progress`` for a protocol whose every ``say(text)`` line is a stage (written at
    once, not thinned to one line every few seconds)."""
    if progress is None:
        return None
    return lambda text: _say(progress, text)


class ExtraMissing(RuntimeError):
    """A package of the ``eval`` extra is not installed."""


_PEER_MODULES = {
    "itemknn-cosine": ("implicit", "scipy"),
    "itemknn-bm25": ("implicit", "scipy"),
    "als": ("implicit", "scipy"),
    "rtrec": ("rtrec",),
}


# What a command reports as one line ("streamrec eval <command>: <message>", exit 1): bad
# data, a missing extra, a bad --peers or --set value, or nothing to evaluate.
USER_ERRORS = (
    DatasetMissing,
    DatasetInvalid,
    DumpNotWritten,
    ExtraMissing,
    UnknownPeer,
    NoTargets,
    argparse.ArgumentTypeError,
    ConfigurationError,
)


def require_extra(peers: Sequence[str] = (), plot: bool = False) -> None:
    """Fail before any work when a selected peer (or the plot) lacks its package."""
    import importlib.util

    needed = {module for name in peers for module in _PEER_MODULES.get(name, ())}
    if plot:
        needed.add("matplotlib")
    missing = sorted(module for module in needed if importlib.util.find_spec(module) is None)
    if missing:
        extras = "dev,eval,rtrec" if "rtrec" in missing else "dev,eval"
        raise ExtraMissing(f'missing package(s) {", ".join(missing)}: pip install -e ".[{extras}]"')


def _writable_folder(path: Path) -> None:
    """ArgumentTypeError unless the predictions can be written into ``path``'s folder: said
    before a run of minutes, not after it."""
    if path.parent.exists() and not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{path.parent} is a file, not a folder")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"folder {path.parent} is not writable")


def _dump_file(text: str) -> Path:
    """An argparse type: a file to write in an existing, writable folder."""
    path = output_file(text)
    _writable_folder(path)
    if path.exists() and not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"{path} is not writable")
    return path


def _dump_prefix(text: str) -> Path:
    """An argparse type: PREFIX of PREFIX.<mode>.csv files, in an existing, writable folder."""
    path = Path(text)
    _writable_folder(path)
    return path


def _folder(text: str) -> Path:
    """An argparse type: a folder (created when absent), not a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file, not a folder")
    return path


def _write_json(payload: dict[str, Any], path: Path | None, command: str) -> int:
    """Print the result, then write it to ``path`` too; 1 (and one error line) when that fails."""
    text = json.dumps(payload, indent=2)
    print(text)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n")
        except OSError as error:
            print(
                f"streamrec eval {command}: cannot write --out {path}: {error.strerror or error}",
                file=sys.stderr,
            )
            return 1
    return 0


# ---- P1 --------------------------------------------------------------------------------------
def run_p1_command(
    data_dir: Path,
    k: int = 20,
    peers: list[str] | None = None,
    with_rtrec: bool = False,
    warmup_batch: int = 1000,
    progress: Any = None,
    max_test_events: int | None = None,
    engine: bool = True,
) -> dict[str, Any]:
    """Load the Taobao head and run P1; the summary dict (see :func:`p1.summarize`)."""
    from streamrec.evaluation import p1
    from streamrec.evaluation.datasets import load_taobao

    names = list(p1.DEFAULT_PEERS if peers is None else peers)
    if with_rtrec and "rtrec" not in names:
        names.append("rtrec")
    check_peers(names, p1.ALL_PEERS)
    if not engine and not names:
        raise NoTargets("nothing to evaluate: --no-engine and no --peers")
    require_extra(names)
    p1.limit_blas_threads()
    _say(progress, f"P1: loading {TAOBAO_DIR}/{TAOBAO_FILE} ...")
    data = load_taobao(data_dir)
    methods: list[Any] = [p1.EngineMethod(warmup_batch=warmup_batch)] if engine else []
    methods += [p1.make_peer(name) for name in names]
    _say(
        progress,
        f"P1: {len(data.events):,} events ({data.warmup:,} warm-up); ingesting the warm-up "
        f"({', '.join(method.name for method in methods)}) ...",
    )
    run = p1.run_p1(data, methods, k=k, progress=progress, max_test_events=max_test_events)
    summary = p1.summarize(run)
    if not summary.get("targets"):
        raise NoTargets(
            f"no targets: no test event (after the warm-up) of {TAOBAO_DIR}/{TAOBAO_FILE} is a user's "
            "next new item"
        )
    summary["protocol"] = "P1"
    summary["dataset"] = f"{TAOBAO_DIR}/events.csv"
    summary["date"] = now_iso()
    summary["warmup_batch"] = warmup_batch
    return summary


def _cmd_p1(args: argparse.Namespace) -> int:
    try:
        summary = run_p1_command(
            args.data,
            k=args.k,
            peers=_names(args.peers),
            with_rtrec=args.with_rtrec,
            warmup_batch=args.warmup_batch,
            progress=_progress(args),
            max_test_events=args.max_test_events,
            engine=not args.no_engine,
        )
    except USER_ERRORS as error:
        print(f"streamrec eval p1: {error}", file=sys.stderr)
        return 1
    if "rtrec" in summary["peers"] and args.max_test_events is None:
        from streamrec.evaluation.report import save_rtrec_record

        try:
            if save_rtrec_record(summary, args.rtrec_record):
                print(f"rtrec figures saved to {args.rtrec_record}", file=sys.stderr)
        except OSError as error:  # the result below still prints
            print(
                f"streamrec eval p1: cannot write {args.rtrec_record}: {error.strerror or error}",
                file=sys.stderr,
            )
    return _write_json(summary, args.out, "p1")


# ---- P2 --------------------------------------------------------------------------------------
def run_p2_command(
    data_dir: Path,
    k: int = 20,
    peers: list[str] | None = None,
    progress: Any = None,
    dump_prefix: Path | None = None,
) -> dict[str, Any]:
    """Build the Diginetica split into temporary files, then run P2 on them in both modes."""
    from streamrec.evaluation import sessions

    peers = list(sessions.SESSION_PEERS if peers is None else peers)
    check_peers(peers, sessions.SESSION_PEERS)
    require_extra(peers)
    _say(progress, f"P2: loading {DIGINETICA_DIR}/{DIGINETICA_FILE} ...")
    train_clicks, test_clicks = diginetica_split(data_dir)
    if not train_clicks or not test_clicks:
        raise NoTargets(
            f"{DIGINETICA_DIR}/{DIGINETICA_FILE}: {len(train_clicks):,} training and {len(test_clicks):,} "
            f"test clicks (sessions dated from {DIGINETICA_TEST_FROM} are the test file); both are needed"
        )
    check_positions(test_clicks, f"{DIGINETICA_DIR}/{DIGINETICA_FILE} (test sessions)")
    with tempfile.TemporaryDirectory(prefix="streamrec-p2-") as folder:
        train_path, test_path = Path(folder) / "train.tsv", Path(folder) / "test.tsv"
        write_session_file(train_clicks, train_path)
        write_session_file(test_clicks, test_path)
        train = read_session_file(train_path, "\t", "SessionId", "ItemId", "Time")
        test = read_session_file(test_path, "\t", "SessionId", "ItemId", "Time")
    dump = None
    if dump_prefix is not None:
        dump = {mode: Path(f"{dump_prefix}.{mode}.csv") for mode in sessions.MODES}
    result = sessions.run_sessions(
        train,
        test,
        k=k,
        modes=sessions.MODES,
        peers=peers,
        dump=dump,
        progress=progress,
    )
    result["protocol"] = "P2"
    result["dataset"] = f"{DIGINETICA_DIR}/train-item-views.csv (sessions from 2016-05-25 = test)"
    result["date"] = now_iso()
    return result


def _cmd_p2(args: argparse.Namespace) -> int:
    try:
        result = run_p2_command(
            args.data, k=args.k, peers=_names(args.peers), progress=_progress(args), dump_prefix=args.dump
        )
    except USER_ERRORS as error:
        print(f"streamrec eval p2: {error}", file=sys.stderr)
        return 1
    return _write_json(result, args.out, "p2")


def _load_p4_data(data_dir: Path, progress: Any, test: bool = True) -> Any:
    """The Taobao head, with a warm-up (and with ``test``, test events after it)."""
    from streamrec.evaluation.datasets import load_taobao

    _say(progress, f"P4: loading {TAOBAO_DIR}/{TAOBAO_FILE} ...")
    data = load_taobao(data_dir)
    tests = len(data.events) - data.warmup
    if not data.warmup or (test and not tests):
        raise NoTargets(
            f"{TAOBAO_DIR}/{TAOBAO_FILE}: {data.warmup:,} warm-up and {tests:,} test events (the warm-up "
            f"ends 2017-12-02 00:00 China time); P4 needs {'both' if test else 'a warm-up'}"
        )
    return data


def run_p4_command(data_dir: Path, progress: Any = None) -> dict[str, Any]:
    """Load the Taobao head and run P4 at the default settings (see :mod:`p4`)."""
    from streamrec.evaluation import p4

    data = _load_p4_data(data_dir, progress)
    _say(
        progress,
        f"P4: replaying {data.warmup:,} warm-up events, ranking the coupons of every warm-up user "
        "(engine, its ablation and the peers) ...",
    )
    result = p4.run_p4(data)
    if not result.get("targets"):
        raise NoTargets(
            f"no targets: no warm-up user of {TAOBAO_DIR}/{TAOBAO_FILE} bought anything in the test stream"
        )
    return result


def fit_p4_command(data_dir: Path, progress: Any = None) -> dict[str, Any]:
    """Load the Taobao head and fit the coupon model on cut-offs inside its warm-up (see
    :func:`p4.fit_coupon_model`)."""
    import warnings

    import numpy as np

    from streamrec.evaluation import p4

    data = _load_p4_data(data_dir, progress, test=False)
    # numpy's warnings about empty example sets come before the failure they explain: they
    # are held back, and shown only when the fit succeeds after all.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        try:
            result = p4.fit_coupon_model(data, progress=_stages(progress))
        except np.linalg.LinAlgError as error:
            raise NoTargets(
                f"cannot fit the coupon model ({error}): the cut-offs of the warm-up of "
                f"{TAOBAO_DIR}/{TAOBAO_FILE} give too few (user, coupon) examples"
            ) from None
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return result


def _cmd_p4(args: argparse.Namespace) -> int:
    command = fit_p4_command if args.fit else run_p4_command
    try:
        result = command(args.data, progress=_progress(args))
    except USER_ERRORS as error:
        print(f"streamrec eval p4: {error}", file=sys.stderr)
        return 1
    return _write_json(result, args.out, "p4")


def _cmd_sessions(args: argparse.Namespace) -> int:
    from streamrec.evaluation import sessions

    progress = _progress(args)
    try:
        check_peers(_names(args.peers), sessions.SESSION_PEERS)
        require_extra(_names(args.peers))
        _say(progress, f"P2: loading {args.train} and {args.test} ...")
        train = read_session_file(args.train, args.sep, args.session_col, args.item_col, args.time_col)
        test = read_session_file(args.test, args.sep, args.session_col, args.item_col, args.time_col)
        check_positions(test, args.test)
    except USER_ERRORS as error:
        print(f"streamrec eval sessions: {error}", file=sys.stderr)
        return 1
    dump = {args.mode: args.dump} if args.dump else None
    try:
        result = sessions.run_sessions(
            train,
            test,
            k=args.k,
            modes=[args.mode],
            peers=_names(args.peers),
            dump=dump,
            progress=progress,
        )
    except USER_ERRORS as error:  # writing --dump failed after all (its folder was checked first)
        print(f"streamrec eval sessions: {error}", file=sys.stderr)
        return 1
    engine = result["engine"][args.mode]
    if "error" in engine:
        print(f"streamrec eval sessions: {engine['error']}", file=sys.stderr)
        return 1
    # The engine's figures at the top level, the rest beside them.
    payload: dict[str, Any] = {"mode": args.mode, **engine}
    payload["sessions"] = result["test_sessions"]
    payload["intervals"] = result["intervals"].get(f"engine ({args.mode})", {})
    payload["hr_curve"] = result["hr_curve"].get(f"engine ({args.mode})", [])
    if result["peers"]:
        payload["peers"] = result["peers"]
        payload["peer_intervals"] = {n: result["intervals"][n] for n in result["peers"]}
    payload["train_clicks"] = result["train_clicks"]
    payload["test_clicks"] = result["test_clicks"]
    payload["wall_time_s"] = result["wall_time_s"]
    return _write_json(payload, args.out, "sessions")


# ---- P3 --------------------------------------------------------------------------------------
def run_p3_command(
    data_dir: Path,
    peers: list[str] | None = None,
    progress: Any = None,
    overrides: dict[str, Any] | None = None,
    max_invoices: int | None = None,
    validation: bool = False,
) -> dict[str, Any]:
    """Load UCI Online Retail and run P3; the summary dict (see :func:`p3.run_p3`).

    ``validation``: the training period's validation split instead (:func:`p3.split`)."""
    from streamrec.evaluation import p3

    names = list(p3.PEERS if peers is None else peers)
    check_peers(names, p3.PEERS)
    require_extra(names)
    from streamrec.evaluation.p1 import limit_blas_threads

    limit_blas_threads()
    settings = p3.engine_settings(overrides)
    _say(progress, f"P3: loading {p3.RETAIL_DIR}/ ({len(p3.RETAIL_FILES)} files) ...")
    train, test = _retail_split(p3.load_online_retail(data_dir), validation, max_invoices)
    _say(
        progress,
        f"P3: {len(train):,} training invoices, {len(test):,} test invoices; ingesting the training "
        "invoices into the engine" + (" and the peers" if names else "") + " ...",
    )
    result = p3.run_p3(train, test, peers=names, settings=settings, progress=progress)
    result["protocol"] = "P3 validation split" if validation else "P3"
    result["dataset"] = f"{p3.RETAIL_DIR}/*.csv.gz"
    result["date"] = now_iso()
    result["engine_settings"] = p3.cross_sell_settings(settings)
    return result


def _retail_split(invoices: Sequence[Any], validation: bool, max_invoices: int | None) -> tuple[Any, Any]:
    """P3's (train, test[:max_invoices]) split (:func:`p3.split`); NoTargets when either is empty."""
    from streamrec.evaluation import p3

    train, test = p3.split(invoices, validation=validation)
    if not train or not test:
        split = "validation split" if validation else "split"
        raise NoTargets(
            f"{p3.RETAIL_DIR}/: {len(train):,} training and {len(test):,} test invoices (of 2 products or "
            f"more) in the {split}; both are needed"
        )
    return train, test[:max_invoices]


def _overrides(pairs: list[str]) -> dict[str, Any]:
    from streamrec.settings import Settings

    result: dict[str, Any] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name.strip():
            raise argparse.ArgumentTypeError(f"--set {pair}: expected NAME=VALUE")
        default = getattr(Settings(), name, None)
        if not isinstance(default, str | int | float) or isinstance(default, bool):
            raise argparse.ArgumentTypeError(f"--set {pair}: no such scalar setting")
        try:
            result[name] = type(default)(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--set {pair}: not a valid {type(default).__name__}") from None
    return result


def _cmd_p3(args: argparse.Namespace) -> int:
    try:
        result = run_p3_command(
            args.data,
            peers=_names(args.peers),
            progress=_progress(args),
            overrides=_overrides(args.set),
            max_invoices=args.max_invoices,
            validation=args.validation,
        )
    except USER_ERRORS as error:
        print(f"streamrec eval p3: {error}", file=sys.stderr)
        return 1
    return _write_json(result, args.out, "p3")


# ---- content (the project's own protocol) ----------------------------------------------------
def run_content_command(
    data_dir: Path,
    progress: Any = None,
    overrides: dict[str, Any] | None = None,
    max_invoices: int | None = None,
    validation: bool = False,
) -> dict[str, Any]:
    """Load UCI Online Retail and its descriptions and run the content protocol; the
    summary dict (see :func:`content.run_content`)."""
    from dataclasses import replace

    from streamrec.evaluation import content, p3
    from streamrec.settings import Settings

    settings = replace(Settings(), **{**content.REPLAY_SHORTCUTS, **(overrides or {})})
    _say(progress, f"content: loading the catalog (product descriptions) from {p3.RETAIL_DIR}/ ...")
    catalog = content.load_catalog(data_dir)
    _say(progress, f"content: loading the invoices of {p3.RETAIL_DIR}/ ...")
    train, test = _retail_split(p3.load_online_retail(data_dir), validation, None)
    cold = content.cold_products(train, test)  # the same draw with or without --max-invoices
    result = content.run_content(
        catalog, train, test[:max_invoices], settings=settings, progress=_stages(progress), cold=cold
    )
    result["protocol"] = "content, validation split" if validation else "content"
    result["dataset"] = f"{p3.RETAIL_DIR}/*.csv.gz"
    result["date"] = now_iso()
    return result


def _cmd_content(args: argparse.Namespace) -> int:
    try:
        result = run_content_command(
            args.data,
            progress=_progress(args),
            overrides=_overrides(args.set),
            max_invoices=args.max_invoices,
            validation=args.validation,
        )
    except USER_ERRORS as error:
        print(f"streamrec eval content: {error}", file=sys.stderr)
        return 1
    return _write_json(result, args.out, "content")


# ---- demand (the project's own protocol) -----------------------------------------------------
def run_demand_command(data_dir: Path, progress: Any = None, validation: bool = False) -> dict[str, Any]:
    """Run the demand protocol (see :mod:`streamrec.evaluation.demand`) on UCI Online Retail."""
    from streamrec.evaluation import demand, p3

    def counted(stage: str, done: int, total: int) -> None:
        if progress is not None:
            what = "events replayed" if stage == "replay" else "origin days forecast"
            progress(f"demand: {done:,} of {total:,} {what}", final=done == total)

    result = demand.run_demand(data_dir, validation, say=_stages(progress), progress=counted)
    result["dataset"] = f"{p3.RETAIL_DIR}/*.csv.gz"
    result["date"] = now_iso()
    return result


def _cmd_demand(args: argparse.Namespace) -> int:
    try:
        result = run_demand_command(args.data, progress=_progress(args), validation=args.validation)
    except USER_ERRORS as error:
        print(f"streamrec eval demand: {error}", file=sys.stderr)
        return 1
    return _write_json(result, args.out, "demand")


# ---- report ----------------------------------------------------------------------------------
class ReportInvalid(ValueError):
    """report.json is not a report written by ``streamrec eval all``."""


def check_report(path: Path) -> dict[str, Any]:
    """``path`` (report.json) read; ReportInvalid when it is not JSON or not a report (an
    object with at least its date and settings), before anything is re-rendered."""
    try:
        report = json.loads(path.read_text())
    except UnicodeDecodeError as error:
        raise ReportInvalid(f"{path} is not text ({error}); re-run `make eval`") from None
    except json.JSONDecodeError as error:
        raise ReportInvalid(f"{path} is not valid JSON ({error}); re-run `make eval`") from None
    if not isinstance(report, dict):
        raise ReportInvalid(f"{path} holds {json_type(report)}, not a report; re-run `make eval`")
    missing = [key for key in ("date", "settings") if key not in report]
    if missing:
        raise ReportInvalid(
            f"{path} is not a report of `streamrec eval all` (no {', '.join(map(repr, missing))}); "
            "re-run `make eval`"
        )
    if not isinstance(report["settings"], dict):
        raise ReportInvalid(f"{path}: 'settings' is not an object; re-run `make eval`")
    return report


def warn_unreadable_rtrec_record(path: Path, command: str) -> None:
    """rtrec's dated row comes from ``path`` (rtrec_last.json) when present: say so when it
    is there but cannot be read, instead of dropping the row silently."""
    if not path.exists():
        return
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        problem = f"cannot be read ({error})"
    else:
        if isinstance(record, dict):
            return
        problem = f"holds {json_type(record)}, not rtrec's figures"
    print(
        f"{command}: warning: {path} {problem}; the report has no dated rtrec row "
        "(`streamrec eval p1 --no-engine --peers rtrec` measures it again)",
        file=sys.stderr,
    )


def _cmd_report(args: argparse.Namespace) -> int:
    from streamrec.evaluation.report import REPORT_JSON, RTREC, rerender_report

    path = Path(args.report_dir) / REPORT_JSON
    try:
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found")
        report = check_report(path)
        if RTREC not in ((report.get("p1") or {}).get("peers") or {}):
            warn_unreadable_rtrec_record(Path(args.report_dir) / RTREC_LAST, "streamrec eval report")
        paths = rerender_report(args.report_dir)
    except FileNotFoundError as error:
        print(f"streamrec eval report: {error}; run `make eval` first", file=sys.stderr)
        return 1
    except ReportInvalid as error:
        print(f"streamrec eval report: {error}", file=sys.stderr)
        return 1
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        # A report.json of the right shape at the top but not below (edited by hand?).
        print(
            f"streamrec eval report: {path} is not a report of `streamrec eval all` "
            f"({type(error).__name__}: {error}); re-run `make eval`",
            file=sys.stderr,
        )
        return 1
    except OSError as error:
        print(f"streamrec eval report: {error}", file=sys.stderr)
        return 1
    print(f"re-rendered {paths['md']} and {paths['png']}")
    return 0


# ---- all -------------------------------------------------------------------------------------
def _cmd_all(args: argparse.Namespace) -> int:
    data_dir: Path = args.data
    if not data_dir.is_dir() and data_dir != default_data_dir():
        # Named with --data: a typo must not pass for "no data here" (make eval, CI).
        print(f"error: the data folder {data_dir} given with --data is not a folder", file=sys.stderr)
        return 1
    if not data_dir.is_dir():
        print(
            f"streamrec eval all: skipped: the data folder {data_dir} is absent (the real data sets are not "
            "part of the repository; see ../shared/EVALUATION.md, or pass --data DIR).",
            file=sys.stderr,
        )
        return 0
    started = time.monotonic()
    progress = _progress(args)
    try:
        from streamrec.evaluation import p1, sessions

        rtrec = ["rtrec"] if args.with_rtrec else []
        require_extra([*p1.DEFAULT_PEERS, *sessions.SESSION_PEERS, *rtrec], plot=True)
        print("P1 (Taobao, prequential next-new-item) ...", file=sys.stderr)
        p1_result = run_p1_command(
            data_dir, k=args.k, with_rtrec=args.with_rtrec, warmup_batch=args.warmup_batch, progress=progress
        )
        print("P2 (Diginetica sessions, stream and frozen) ...", file=sys.stderr)
        p2_result = run_p2_command(data_dir, k=args.k, progress=progress)
        print("P3 (Online Retail, basket completion / cross-sell) ...", file=sys.stderr)
        p3_result = run_p3_command(data_dir, progress=progress)
        print("P4 (Taobao, coupon relevance) ...", file=sys.stderr)
        protocols = {"p4": run_p4_command(data_dir, progress=progress)}
        print(
            "Content similarity and cold items (Online Retail, the project's own protocol) ...",
            file=sys.stderr,
        )
        content_result = run_content_command(data_dir, progress=progress)
        print("Demand forecast (Online Retail, the project's own protocol) ...", file=sys.stderr)
        demand_result = run_demand_command(data_dir, progress=progress)
    except USER_ERRORS as error:
        print(f"streamrec eval all: {error}", file=sys.stderr)
        return 1
    if not args.with_rtrec:
        warn_unreadable_rtrec_record(Path(args.report_dir) / RTREC_LAST, "streamrec eval all")
    command = "streamrec eval all" + (" --with-rtrec" if args.with_rtrec else "")
    try:
        paths: dict[str, Path] | None = write_report(
            args.report_dir,
            p1_result,
            p2_result,
            command=command,
            root=repo_root(),
            wall_time_s=time.monotonic() - started,
            p3=p3_result,
            protocols=protocols,
            content=content_result,
            demand=demand_result,
        )
    except OSError as error:  # the figures below still print
        print(f"streamrec eval all: cannot write the report: {error}", file=sys.stderr)
        paths = None
    k = args.k
    lines = [f"P1 ({p1_result['targets']:,} targets)  HR@{k}  MRR@{k}"]
    for name, values in [("engine", p1_result["engine"]), *p1_result["peers"].items()]:
        lines.append(f"  {name:<16} {values[f'hr@{k}']:.4f}  {values[f'mrr@{k}']:.4f}")
    lines.append(f"P2 ({p2_result['positions']:,} positions)  HR@{k}  MRR@{k}")
    for mode, values in p2_result["engine"].items():
        if "error" not in values:
            lines.append(
                f"  engine ({mode}){'':<{7 - len(mode)}} {values[f'hr@{k}']:.4f}  {values[f'mrr@{k}']:.4f}"
            )
    for name, values in p2_result["peers"].items():
        lines.append(f"  {name:<16} {values[f'hr@{k}']:.4f}  {values[f'mrr@{k}']:.4f}")
    lines.append(f"P3 ({p3_result['targets']:,} cases)  HR@10  MRR@10")
    for name, values in [("engine", p3_result["engine"]), *p3_result["peers"].items()]:
        lines.append(f"  {name:<16} {values['hr@10']:.4f}  {values['mrr@10']:.4f}")
    for protocol, result in protocols.items():
        metrics = [m for m, v in result["engine"].items() if isinstance(v, float)]
        lines.append(f"{protocol.upper()} ({result['targets']:,} targets)  " + "  ".join(metrics))
        for name, values in [("engine", result["engine"]), *result["peers"].items()]:
            lines.append(f"  {name:<16} " + "  ".join(f"{values[m]:.4f}" for m in metrics))
    from streamrec.evaluation.content import METHODS

    lines.append("content (precision@10)  " + "  ".join(METHODS))
    for group, part in content_result["groups"].items():
        if part["cases"]:
            lines.append(f"  {group:<17} " + "  ".join(f"{part[m]['precision@10']:.4f}" for m in METHODS))
    lines.append(f"demand ({demand_result['cases']:,} cases)  WAPE next_7d  next_24h")
    for name, values in demand_result["methods"].items():
        lines.append(f"  {name:<44} {values['wape_7d']:.4f}  {values['wape_24h']:.4f}")
    if paths is not None:
        lines.append(
            f"wrote {paths['md']}, {paths['json']}, {paths['png']} in {time.monotonic() - started:,.0f} s"
        )
    print("\n".join(lines))
    return 0 if paths is not None else 1


# ---- Parser ----------------------------------------------------------------------------------
def _common(parser: argparse.ArgumentParser, data: bool = True) -> None:
    if data:
        parser.add_argument(
            "--data",
            type=Path,
            default=default_data_dir(),
            help="folder holding the data sets (default: ../shared/datasets beside the repository)",
        )
    parser.add_argument(
        "--k", type=whole_number(1), default=20, help="list length K, at least 1 (default 20)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def _data_and_output(parser: argparse.ArgumentParser) -> None:
    """--data, -q and --out, as the Online Retail protocols take them."""
    parser.add_argument(
        "--data",
        type=Path,
        default=default_data_dir(),
        help="folder holding the data sets (default: ../shared/datasets beside the repository)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--out", "--output", type=output_file, help="also write the JSON result here")


def _retail_arguments(parser: argparse.ArgumentParser, set_example: str) -> None:
    """The options P3 and the content protocol share (both walk Online Retail's invoices)."""
    from streamrec.evaluation import p3

    _data_and_output(parser)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"override an engine setting (tuning), e.g. {set_example}",
    )
    parser.add_argument(
        "--validation",
        action="store_true",
        help=f"tune without the test invoices: train before {p3.VALIDATION_FROM[:10]}, evaluate the "
        f"invoices from then until {p3.TEST_FROM[:10]}",
    )
    parser.add_argument(
        "--max-invoices", type=whole_number(1), default=None, help="evaluate only the first N invoices"
    )


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``eval`` and its subcommands on a ``streamrec`` subparsers object."""
    from streamrec.evaluation import p1, p3, sessions

    evaluate = subparsers.add_parser(
        "eval",
        help="run the evaluation protocols of ../shared/EVALUATION.md",
        description="Run the evaluation protocols (P1, P2, P3, P4) of ../shared/EVALUATION.md, P2 on any "
        "session files (sessions) and the project's own content and demand protocols (content, demand) on "
        "the production "
        "engine (in-memory adapters) and its peers; `all` runs them and writes the report, `report` "
        "re-renders it.",
    )
    commands = evaluate.add_subparsers(
        dest="eval_command", metavar="{p1,p2,p3,p4,content,demand,sessions,all,report}", required=True
    )

    one = commands.add_parser(
        "p1",
        help="P1: prequential next-new-item on the Taobao head",
        description="P1 of EVALUATION.md: walk the Taobao stream; for each target ask every method for "
        "top-K before ingesting the event. JSON to stdout (and --out).",
    )
    _common(one)
    one.add_argument("--out", "--output", type=output_file, help="also write the JSON result here")
    one.add_argument(
        "--peers",
        default=",".join(p1.DEFAULT_PEERS),
        help=f"comma-separated peers (default {','.join(p1.DEFAULT_PEERS)}; '' for none; also: rtrec)",
    )
    one.add_argument(
        "--with-rtrec",
        action="store_true",
        help="also run rtrec (online SLIM; about an hour) and save its figures to --rtrec-record",
    )
    one.add_argument(
        "--rtrec-record",
        type=output_file,
        default=default_report_dir() / RTREC_LAST,
        help="where rtrec's dated figures go (default eval/rtrec_last.json)",
    )
    one.add_argument(
        "--warmup-batch",
        type=whole_number(1),
        default=1000,
        help="warm-up events per engine ingest call (Kinesis-sized batches; default 1000; the test "
        "stream always goes one event per call)",
    )
    one.add_argument(
        "--no-engine",
        action="store_true",
        help="run the peers only (--no-engine --peers rtrec refreshes rtrec's figures, no engine)",
    )
    one.add_argument("--max-test-events", type=whole_number(1), default=None, help=argparse.SUPPRESS)
    one.set_defaults(func=_cmd_p1)

    two = commands.add_parser(
        "p2",
        help="P2 on the Diginetica split, stream and frozen modes",
        description="Build the Diginetica split of EVALUATION.md into temporary files and run P2 on them "
        "in both modes, with the session peers. JSON to stdout (and --out).",
    )
    _common(two)
    two.add_argument("--out", "--output", type=output_file, help="also write the JSON result here")
    two.add_argument(
        "--peers",
        default=",".join(sessions.SESSION_PEERS),
        help=f"comma-separated session peers (default {','.join(sessions.SESSION_PEERS)}; '' for none)",
    )
    two.add_argument(
        "--dump", type=_dump_prefix, help="write predictions to DUMP.stream.csv and DUMP.frozen.csv"
    )
    two.set_defaults(func=_cmd_p2)

    four = commands.add_parser(
        "p4",
        help="P4: coupon relevance (precision@3) on the Taobao head",
        description="P4 of EVALUATION.md: coupons for the 200 most-bought warm-up categories, each "
        "warm-up user's top 3 at the warm-up's end, relevant when bought from in the test stream. "
        "Engine and peers (most_bought, most_viewed); JSON to stdout (and --out).",
    )
    four.add_argument(
        "--data",
        type=Path,
        default=default_data_dir(),
        help="folder holding the data sets (default: ../shared/datasets beside the repository)",
    )
    four.add_argument("--out", "--output", type=output_file, help="also write the JSON result here")
    four.add_argument(
        "--fit",
        action="store_true",
        help="instead, fit the coupon model (COUPON_MODEL) on cut-offs inside the warm-up only and "
        "report each cut-off's precision@3, model (fitted on the other cut-offs) vs affinity, and the "
        "model with short lists filled from the most-bought categories",
    )
    four.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    four.set_defaults(func=_cmd_p4)

    any_files = commands.add_parser(
        "sessions",
        help="P2 on any (session, item, time) files",
        description="P2 of EVALUATION.md on a training and a test file with a header row. Prints a JSON "
        "object with hr@K, mrr@K and positions.",
    )
    any_files.add_argument("--train", type=Path, required=True, help="training file")
    any_files.add_argument("--test", type=Path, required=True, help="test file")
    any_files.add_argument("--sep", type=_separator, default=",", help="field separator: ',', ';' or '\\t'")
    any_files.add_argument("--session-col", required=True, help="session id column")
    any_files.add_argument("--item-col", required=True, help="item id column")
    any_files.add_argument("--time-col", required=True, help="time column (epoch seconds or ISO-8601)")
    _common(any_files, data=False)
    any_files.add_argument("--mode", choices=sessions.MODES, default="stream", help="default stream")
    any_files.add_argument(
        "--dump", type=_dump_file, help="write SessionId;Position;Recommendations;Scores here"
    )
    any_files.add_argument("--out", "--output", type=output_file, help="also write the JSON result here")
    any_files.add_argument(
        "--peers",
        default="",
        help=f"comma-separated frozen peers to run too ({','.join(sessions.SESSION_PEERS)})",
    )
    any_files.set_defaults(func=_cmd_sessions)

    three = commands.add_parser(
        "p3",
        help="P3: basket completion (cross-sell) on UCI Online Retail",
        description="P3 of EVALUATION.md: for each test invoice and each of its first 10 products, ask "
        "for top-10 cross-sell given the invoice's other products, then ingest the invoice. Engine and "
        "peers side by side; JSON to stdout (and --out).",
    )
    _retail_arguments(three, "--set cross_sell_measure=llr")
    three.add_argument(
        "--peers",
        default=",".join(p3.PEERS),
        help=f"comma-separated peers (default {','.join(p3.PEERS)}; '' for none)",
    )
    three.set_defaults(func=_cmd_p3)

    text = commands.add_parser(
        "content",
        help="content similarity and cold items on UCI Online Retail (the project's own protocol)",
        description="The project's own protocol (no protocol of EVALUATION.md has a catalog): product "
        "descriptions are the catalog, 20% of the test's products are made cold (their training "
        "lines removed), and for each test invoice the customer's top-10 recommendations and, for "
        "each of its first 10 products X, the top-10 similar items of X are checked against the "
        "invoice's products. The engine, behaviour alone and content alone, by group (cold first "
        "sale, cold later sales, warm, personalized); JSON to stdout (and --out).",
    )
    _retail_arguments(text, "--set content_weight=0.5")
    text.set_defaults(func=_cmd_content)

    from streamrec.evaluation import demand

    forecast = commands.add_parser(
        "demand",
        help="the demand forecast on UCI Online Retail (the project's own protocol)",
        description="The project's own protocol (no protocol of EVALUATION.md has a forecast): every "
        "sale is replayed through the production ingest, then at 00:00 UTC of each origin day the "
        "demand forecast of each product sold in the 28 days before is checked against the units "
        "sold that day (next_24h) and that week (next_7d): WAPE, bias and RMSE, the engine at its "
        "defaults and with other demand settings beside the last 7 days and zero; JSON to stdout "
        "(and --out).",
    )
    _data_and_output(forecast)
    forecast.add_argument(
        "--validation",
        action="store_true",
        help=f"the origins the defaults were chosen on ({' .. '.join(demand.VALIDATION_ORIGINS)}) "
        f"instead of the test origins ({' .. '.join(demand.TEST_ORIGINS)})",
    )
    forecast.set_defaults(func=_cmd_demand)

    everything = commands.add_parser(
        "all",
        help="P1 + P2 + P3 + P4 + content + demand, then eval/report.md, report.json and hr_at_k.png",
        description="Run P1, P2, P3, P4 and the content and demand protocols on ../shared/datasets "
        "(skipped with a "
        "message when the folder is absent) and write the report.",
    )
    _common(everything)
    everything.add_argument("--with-rtrec", action="store_true", help="also run rtrec in P1 (about an hour)")
    everything.add_argument(
        "--report-dir",
        type=_folder,
        default=default_report_dir(),
        help="where the report goes (default eval/)",
    )
    everything.add_argument("--warmup-batch", type=whole_number(1), default=1000, help=argparse.SUPPRESS)
    everything.set_defaults(func=_cmd_all)

    again = commands.add_parser(
        "report",
        help="re-render the report from eval/report.json and rtrec's last measured figures",
        description="Re-render report.md and hr_at_k.png from report.json, taking rtrec's figures from "
        "rtrec_last.json (as written by `streamrec eval p1 --no-engine --peers rtrec`). Nothing is re-run.",
    )
    again.add_argument(
        "--report-dir", type=Path, default=default_report_dir(), help="the report's folder (default eval/)"
    )
    again.set_defaults(func=_cmd_report)
    return evaluate
