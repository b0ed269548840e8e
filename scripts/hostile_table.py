"""Write docs/hostile-inputs.md: every case of the hostile-input CLI modules
(tests/cli/test_bad_inputs*.py) with its exit code before and after the fixes.

    PYTHONPATH=$PWD python scripts/hostile_table.py                      # rewrite the table
    PYTHONPATH=$PWD python scripts/hostile_table.py --record-before DIR  # re-record "before"

Each case builds its inputs in a temporary folder with this checkout's test helpers; the
CLI then runs in a child process whose ``audit`` comes from the code root being measured
(this checkout for "after", the ``--record-before`` checkout for "before"), one case at a
time with a 60 s alarm so an input that hangs a version is recorded as a hang, not waited
on forever. "Before" codes are kept in docs/hostile-inputs.before.json: they describe the
code before the fixes, which a later checkout no longer has.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MODULES = {
    "tests.cli.test_bad_inputs": "config",
    "tests.cli.test_bad_inputs_suites": "suite",
    "tests.cli.test_bad_inputs_records": "record/gate",
}
TABLE = REPO / "docs" / "hostile-inputs.md"
BEFORE = REPO / "docs" / "hostile-inputs.before.json"
TIMEOUT_S = 60


class _Hang(BaseException):
    """Raised by the alarm; a BaseException so the CLI's boundary does not catch it."""


def _exec_cases() -> None:
    """Child mode: run the cases given on stdin with the ``audit`` on PYTHONPATH."""
    from audit.cli import main

    def alarm(*_: Any) -> None:
        raise _Hang

    signal.signal(signal.SIGALRM, alarm)
    results = {}
    for case in json.load(sys.stdin):
        os.environ["AUDIT_RUNS_DIR"] = case["runs"]
        out, err = io.StringIO(), io.StringIO()
        signal.alarm(TIMEOUT_S)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    main(case["args"])
                    code: int | str = 0
                except SystemExit as exc:
                    code = int(exc.code or 0)
        except _Hang:
            code = "hang"
        finally:
            signal.alarm(0)
        results[case["id"]] = {
            "code": code,
            "out": out.getvalue()[-20_000:],
            "err": err.getvalue()[-20_000:],
        }
    json.dump(results, sys.stdout)


def _build(tmp: Path) -> list[dict[str, Any]]:
    """Every case's inputs under ``tmp/<id>``; skipped cases carry ``skip``, the others
    their :class:`~tests.helpers.hostile.Expect` under ``expect`` (not sent to the child)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from tests.helpers.hostile import as_expect

    cases = []
    for mod_name, group in MODULES.items():
        mod = importlib.import_module(mod_name)
        for fn in mod.CASES:
            cid = f"{mod_name.rsplit('.', 1)[1]}::{fn.__name__[2:]}"
            d = tmp / re.sub(r"\W", "_", cid)
            d.mkdir()
            os.environ["AUDIT_RUNS_DIR"] = str(d / "runs")
            entry: dict[str, Any] = {"id": cid, "group": group, "runs": str(d / "runs")}
            try:
                exp = as_expect(fn(d))
            except BaseException as exc:  # pytest.skip raises a BaseException
                if type(exc).__name__ != "Skipped":
                    raise
                entry["skip"] = str(exc) or "skipped"
            else:
                entry.update(args=exp.args, expected_code=exp.code, expect=exp)
            cases.append(entry)
    return cases


def _run_under(root: Path, cases: list[dict[str, Any]]) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    todo = [{k: c[k] for k in ("id", "args", "runs")} for c in cases if "skip" not in c]
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--exec"],
        input=json.dumps(todo),
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        check=True,
    )
    result: dict[str, Any] = json.loads(proc.stdout)
    for c in cases:  # judged here, while the inputs (and the runs folder) still exist
        if c["id"] in result:
            result[c["id"]].update(_judge(c, result[c["id"]]))
    return result


def _judge(case: dict[str, Any], res: dict[str, Any]) -> dict[str, Any]:
    """The test module's own assertions on one outcome: ``ok`` and the message line."""
    from tests.helpers.hostile import check_outcome, error_line

    exp = case["expect"]
    try:
        check_outcome(exp, res["code"], res["out"], res["err"], Path(case["runs"]))
        ok, why = True, ""
    except AssertionError as exc:
        ok, why = False, str(exc).splitlines()[0][:200] if str(exc) else "assertion failed"
    try:
        src = res["err"] if res["err"].strip() or not exp.report else res["out"]
        if exp.report:
            src = "\n".join(ln for ln in src.splitlines() if ln.startswith("invalid "))
        line = error_line(src)
    except AssertionError:
        line = " / ".join(ln for ln in res["err"].splitlines() if ln.strip())[:300]
    return {"ok": ok, "why": why, "line": line}


def _summary(line: str, tmp: Path) -> str:
    """The error line without its temporary paths, clipped for a table cell."""
    s = line.removeprefix("error: ").removeprefix("invalid ")
    s = re.sub(re.escape(str(tmp)) + r"/[^/\s]+/", "", s)
    s = re.sub(r"/tmp/\S*?/(in|suites|runs)/", r"\1/", s)
    s = s.replace(str(REPO) + "/", "")  # the checkout's own files, relative
    s = s.split(". Fix:")[0]
    s = s.replace("|", "\\|")
    return s if len(s) <= 140 else s[:137] + "..."


def _cell(code: Any, ok: bool) -> str:
    return f"{code} {'✓' if ok else '✗'}"


def _write_table(cases: list[dict[str, Any]], after: dict[str, Any], tmp: Path) -> None:
    before: dict[str, Any] = json.loads(BEFORE.read_text()) if BEFORE.exists() else {}
    judged = [c for c in cases if "skip" not in c]
    n_before_bad = sum(1 for c in judged if c["id"] in before and not before[c["id"]]["ok"])
    n_after_bad = sum(1 for c in judged if not after[c["id"]]["ok"])
    rows = []
    for c in cases:
        if "skip" in c:
            rows.append(f"| `{c['id']}` | {c['group']} | – | skipped | {c['skip']} |")
            continue
        a = after[c["id"]]
        b = before.get(c["id"])
        bcell = _cell(b["code"], b["ok"]) if b else "n/a"
        rows.append(
            f"| `{c['id']}` | {c['group']} | {bcell} | {_cell(a['code'], a['ok'])} "
            f"| {_summary(a['line'], tmp)} |"
        )
    n = len(cases)
    text = f"""# Hostile inputs: the CLI's bad-input cases

Generated by `scripts/hostile_table.py` from the case lists of
`tests/cli/test_bad_inputs.py`, `tests/cli/test_bad_inputs_suites.py` and
`tests/cli/test_bad_inputs_records.py`; do not edit by hand. Regenerate with

    PYTHONPATH=$PWD python scripts/hostile_table.py

Every case asserts: the exit code (2 for bad input or config, 3 when the gate refuses a
candidate it cannot trust; the table is in `audit/errors.py`), exactly one message line
naming the file and the field with `expected … got …`, no Python traceback, and nothing
left under the runs folder (no run directory, no `running` record).

**Before** is the code before the hostile-input fixes (recorded once with
`--record-before <checkout>` into `docs/hostile-inputs.before.json`), **after** this
checkout: the exit code, then ✓ when the case's assertions all hold and ✗ when one does
not (an exit code can be right while the message is not: no field, no expected/got, a
traceback, the wrong file). `hang`: blocked for {TIMEOUT_S} s; 130: a truncated file
read as "aborted"; 3 with "internal error": an unhandled exception; 0: the bad input was
accepted.

{n} cases ({n - len(judged)} skipped here); before the fixes {n_before_bad} failed their
assertions, after them {n_after_bad}.

| case | input | before | after | message (after, paths shortened) |
|---|---|---|---|---|
"""
    TABLE.write_text(text + "\n".join(rows) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exec", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--record-before", type=Path, metavar="CHECKOUT")
    args = ap.parse_args()
    if args.exec:
        _exec_cases()
        return
    sys.path.insert(0, str(REPO))
    if args.record_before:
        # fresh inputs per code root: a version that accepts a bad input may write into them
        with tempfile.TemporaryDirectory(prefix="hostile-") as td:
            before = _run_under(args.record_before.resolve(), _build(Path(td)))
        BEFORE.write_text(
            json.dumps(
                {k: {"code": v["code"], "ok": v["ok"]} for k, v in sorted(before.items())},
                indent=1,
            )
            + "\n",
            encoding="utf-8",
        )
        print(f"recorded {len(before)} before codes from {args.record_before} in {BEFORE}")
    with tempfile.TemporaryDirectory(prefix="hostile-") as td:
        tmp = Path(td)
        cases = _build(tmp)
        after = _run_under(REPO, cases)
        _write_table(cases, after, tmp)
    bad = [c["id"] for c in cases if "skip" not in c and not after[c["id"]]["ok"]]
    print(f"{TABLE}: {len(cases)} cases, {len(bad)} failing their assertions {bad}")


if __name__ == "__main__":
    main()
