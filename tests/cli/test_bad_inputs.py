"""Bad input: each case exits 2 with one line naming file, field, expected and actual
value, no traceback, and leaves no run recorded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.cli import run_cli
from tests.helpers.hostile import (
    Case,
    Expect,
    as_expect,
    card,
    cfg_file,
    check_outcome,
    csv_suite,
    missing_from_table,
)
from tests.helpers.suites import CARD, base_config, mini_rows, write_config, write_suite

_cfg = cfg_file
_card = card


def c_unknown_key(t: Path):
    p = _cfg(t, lambda c: c.update(modrators=[]))
    return ["run", str(p)], str(p), "modrators"


def c_wrong_type(t: Path):
    p = _cfg(t, lambda c: c["moderators"][0].update(batch_size="big"))
    return ["run", str(p)], str(p), "moderators[0].batch_size"


def c_missing_config(t: Path):
    p = t / "nope.yaml"
    return ["run", str(p)], str(p), ""


def c_bad_yaml(t: Path):
    p = t / "bad.yaml"
    p.write_text("name: x\nsuites: [a, b\n")
    return ["run", str(p)], str(p), ""


def c_unknown_moderator(t: Path):
    p = _cfg(t, lambda c: c["moderators"][0].update(type="fak"))
    return ["run", str(p)], str(p), "moderators[0].type"


def c_threshold_range(t: Path):
    p = _cfg(t, lambda c: c["moderators"][0].update(thresholds={"default": 1.5}))
    return ["run", str(p)], str(p), "moderators[0].thresholds"


def c_threshold_category(t: Path):
    p = _cfg(t, lambda c: c["moderators"][0].update(thresholds={"hat": 0.5}))
    return ["run", str(p)], str(p), "moderators[0].thresholds.hat"


def c_params_unknown(t: Path):
    p = _cfg(t, lambda c: c["moderators"][0].update(params={"sed": 1}))
    return ["run", str(p)], str(p), "moderators[0].params.sed"


def c_params_wrong_type(t: Path):
    p = _cfg(t, lambda c: c["moderators"][0].update(params={"seed": "abc"}))
    return ["run", str(p)], str(p), "moderators[0].params.seed"


def c_duplicate_moderator(t: Path):
    p = _cfg(t, lambda c: c["moderators"].append(dict(c["moderators"][0])))
    return ["run", str(p)], str(p), "(top level)"


def c_empty_suites(t: Path):
    p = _cfg(t, lambda c: c.update(suites=[]))
    return ["run", str(p)], str(p), "suites"


def c_unknown_policy(t: Path):
    p = _cfg(t, lambda c: c.update(policy="platform-v9"))
    return ["run", str(p)], "platform-v9", ""


def c_unknown_suite(t: Path):
    p = _cfg(t, lambda c: c.update(suites=[{"name": "short_vdeo_v1"}]))
    return ["run", str(p)], "short_vdeo_v1", ""


def c_card_unknown_key(t: Path):
    p = _cfg(t, card=_card(slicez={"x": "y"}))
    return ["run", str(p)], "suite.yaml", "slicez"


def c_label_not_in_policy(t: Path):
    rows = mini_rows()
    rows[2]["labels"] = ["hates"]
    p = _cfg(t, rows=rows)
    return ["run", str(p)], "suite.yaml", "labels.list_column"


def c_duplicate_ids(t: Path):
    rows = mini_rows()
    rows[5]["id"] = rows[4]["id"]
    p = _cfg(t, rows=rows)
    return ["run", str(p)], "suite.yaml", "id"


def c_empty_suite(t: Path):
    p = _cfg(t, raw_lines="")
    return ["run", str(p)], "suite.yaml", "source"


def c_missing_column(t: Path):
    p = _cfg(t, card=_card(fields={"caption": "capton"}))
    return ["run", str(p)], "suite.yaml", "fields.caption"


def c_missing_data_file(t: Path):
    card = _card(
        source={"local": {"root": "data", "format": "jsonl", "splits": {"test": "gone.jsonl"}}}
    )
    p = _cfg(t, card=card)
    return ["run", str(p)], "suite.yaml", "source.local.root"


def c_covers_not_in_policy(t: Path):
    labels = dict(CARD["labels"], covers=["hate", "spamm"])
    p = _cfg(t, card=_card(labels=labels))
    return ["run", str(p)], "suite.yaml", "labels.covers"


def c_unmapped_label_value(t: Path):
    rows = mini_rows()
    for r in rows:
        r["is_hate"] = "yes" if "hate" in r["labels"] else "no"
    rows[7]["is_hate"] = "maybe"
    labels = {
        "covers": ["hate"],
        "rules": [
            {"category": "hate", "column": "is_hate", "positive": ["yes"], "negative": ["no"]}
        ],
    }
    p = _cfg(t, card=_card(labels=labels), rows=rows)
    return ["run", str(p)], "suite.yaml", "labels.rules[0]"


def c_invalid_json_line(t: Path):
    p = _cfg(t, raw_lines='{"id": "a", "caption": "x", "labels": []}\n{"id": "b", caption\n')
    return ["run", str(p)], "test.jsonl", ""


def c_policy_mismatch(t: Path):
    p = _cfg(t, card=_card(policy="platform-v2"))
    return ["run", str(p)], "suite.yaml", "policy"


def c_item_without_text(t: Path):
    rows = mini_rows()
    rows[3]["caption"] = None
    rows[3]["comment"] = ""
    p = _cfg(t, rows=rows)
    return ["run", str(p)], "suite.yaml", "fields"


def c_top_level_list(t: Path):
    p = t / "list.yaml"
    p.write_text(yaml.safe_dump([1, 2]))
    return ["run", str(p)], str(p), ""


def c_set_no_equals(t: Path):
    p = _cfg(t)
    return ["run", str(p), "--set", "metrics.bootstrap"], "--set", ""


def c_set_unknown_entry(t: Path):
    p = _cfg(t)
    return ["run", str(p), "--set", "moderators.nobody.batch_size=4"], "--set", "moderators.nobody"


def c_set_wrong_type(t: Path):
    p = _cfg(t)
    return ["run", str(p), "--set", "metrics.bootstrap=lots"], str(p), "metrics.bootstrap"


def c_hf_model_missing(t: Path):
    def m(c: dict[str, Any]) -> None:
        c["moderators"] = [
            {
                "name": "clf",
                "type": "hf_classifier",
                "params": {"model": str(t / "no-model"), "label_map": "identity"},
            }
        ]

    p = _cfg(t, m)
    return ["run", str(p)], str(p), ""


def c_unknown_split(t: Path):
    p = _cfg(t)
    cfg = yaml.safe_load(p.read_text())
    cfg["suites"][0]["split"] = "validation"
    write_config(p, cfg)
    return ["run", str(p)], "suite.yaml", "source.local.splits"


def c_unknown_flag(t: Path):
    p = _cfg(t)
    return Expect(["run", str(p), "--bogus"], "--bogus", "", has_expected=False)


# --- YAML and strict types (issue 9 item 5) ---------------------------------------------


def c_duplicate_key(t: Path):
    p = _cfg(t)
    text = p.read_text()
    p.write_text(text + "name: second-name\n")
    first = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith("name:"))
    return ["run", str(p)], str(p), f"lines {first} and"


def c_threshold_string(t: Path):
    p = _cfg(t, lambda c: c["moderators"][0].update(thresholds={"default": "0.5"}))
    return ["run", str(p)], str(p), "moderators[0].thresholds.default"


def c_threshold_bool(t: Path):
    p = _cfg(t, lambda c: c["moderators"][0].update(thresholds={"default": True}))
    return ["run", str(p)], str(p), "moderators[0].thresholds.default"


def c_batch_size_bool(t: Path):
    p = _cfg(t, lambda c: c["moderators"][0].update(batch_size=True))
    return ["run", str(p)], str(p), "moderators[0].batch_size"


def c_batch_size_float(t: Path):
    p = _cfg(t, lambda c: c["moderators"][0].update(batch_size=8.0))
    return ["run", str(p)], str(p), "moderators[0].batch_size"


def c_negative_seed(t: Path):
    p = _cfg(t, lambda c: c.update(seed=-1))
    return ["run", str(p)], str(p), "seed"


def c_alias_bomb(t: Path):
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    p = t / "bomb.yaml"
    p.write_text("\n".join(lines) + "\nname: bomb\n")
    return ["run", str(p)], str(p), ""


def c_recursive_alias(t: Path):
    p = t / "loop.yaml"
    p.write_text("name: loop\nx: &x [1, *x]\n")
    return ["run", str(p)], str(p), ""


def c_too_deep(t: Path):
    p = t / "deep.yaml"
    p.write_text("name: deep\nx: " + "[" * 200 + "]" * 200 + "\n")
    return ["run", str(p)], str(p), ""


def c_config_is_directory(t: Path):
    d = t / "a_dir.yaml"
    d.mkdir()
    return ["run", str(d)], str(d), ""


def c_not_utf8(t: Path):
    p = t / "latin1.yaml"
    p.write_bytes("name: caf\xe9\n".encode("latin-1"))
    return ["run", str(p)], str(p), ""


def c_huge_value_in_error(t: Path):
    p = _cfg(t, lambda c: c.update(name="x" * 200_000))
    return ["run", str(p)], str(p), "name"


def c_hub_revision_branch(t: Path):
    card = _card()
    card["source"] = {**card["source"], "hub": {"id": "org/set", "revision": "main"}}
    p = _cfg(t, card=card)
    return ["run", str(p)], "suite.yaml", "source.hub.revision"


# --- suite data that lies (issue 9 item 7) ---------------------------------------------


_csv_suite = csv_suite


def c_csv_too_few_cells(t: Path):
    p = _csv_suite(t, "id,text,label\na,hello,0\nb,world\n")
    return ["run", str(p)], "test.csv:3", "source.local"


def c_csv_too_many_cells(t: Path):
    p = _csv_suite(t, "id,text,label\na,hello,0\nb,wor,ld,1\n")
    return ["run", str(p)], "test.csv:3", "source.local"


def c_csv_wrong_delimiter(t: Path):
    p = _csv_suite(t, "id;text;label\na;hello, there;0\nb;world;1\n")
    return ["run", str(p)], "test.csv", "source.local"


def c_unknown_encoding(t: Path):
    p = _csv_suite(t, "id,text,label\na,hello,0\n", encoding="utf-9")
    return ["run", str(p)], "suite.yaml", "source.local.encoding"


def c_jsonl_line_not_object(t: Path):
    p = _cfg(t, raw_lines='{"id": "a", "caption": "x", "labels": []}\n[1, 2]\n')
    return ["run", str(p)], "test.jsonl:2", "source.local"


def c_text_field_is_mapping(t: Path):
    rows = mini_rows()
    rows[3]["caption"] = {"en": "hello", "fr": "bonjour"}
    rows[3]["comment"] = None
    p = _cfg(t, rows=rows)
    return ["run", str(p)], "suite.yaml", "fields.caption"


def c_value_positive_and_negative(t: Path):
    card = _card(
        labels={
            "covers": ["hate"],
            "rules": [
                {"category": "hate", "column": "x", "positive": [1, "yes"], "negative": ["1"]}
            ],
        }
    )
    p = _cfg(t, card=card)
    return ["run", str(p)], "suite.yaml", "labels.rules[0]"


def c_positive_if_not_a_condition(t: Path):
    card = _card(
        labels={
            "covers": ["hate"],
            "rules": [{"category": "hate", "column": "x", "positive_if": "big"}],
        }
    )
    p = _cfg(t, card=card)
    return ["run", str(p)], "suite.yaml", "labels.rules[0]"


def c_positive_if_on_text(t: Path):
    p = _csv_suite(t, "id,text,label\na,hello,0.7\nb,world,lots\n")
    card_p = t / "suites" / "mini" / "suite.yaml"
    card = yaml.safe_load(card_p.read_text())
    card["labels"]["rules"][0] = {"category": "hate", "column": "label", "positive_if": ">= 0.5"}
    card_p.write_text(yaml.safe_dump(card))
    return ["run", str(p)], "suite.yaml", "labels.rules[0].positive_if"


def c_json_records_path_missing(t: Path):
    card = _card(
        source={"local": {"root": "data", "format": "json", "splits": {"test": "t.json"},
                          "records_path": "instances"}},
    )  # fmt: skip
    suite = write_suite(t, card=card)
    (suite.parent / "data" / "t.json").write_text('{"data": []}', encoding="utf-8")
    p = write_config(t / "run.yaml", base_config(suite, t / "runs"))
    return ["run", str(p)], "t.json", "source.local.records_path"


def c_constant_rule_with_column(t: Path):
    card = _card(
        labels={"covers": ["hate"], "overall": {"constant": "positive", "column": "x"}, "rules": []}
    )
    p = _cfg(t, card=card)
    return ["run", str(p)], "suite.yaml", "labels.overall"


def c_same_suite_twice_via_two_paths(t: Path):
    suite = write_suite(t)
    cfg = base_config(suite, t / "runs")
    cfg["suites"] = [{"name": str(suite)}, {"name": str(suite.parent)}]
    p = write_config(t / "run.yaml", cfg)
    return ["run", str(p)], str(p), "suites[1]"


# --- config values that only the run can check (issue 9 item 6) -------------------------


def c_unknown_metric_name(t: Path):
    p = _cfg(t, lambda c: c["metrics"].update(names=["f1", "auprcc"]))
    return ["run", str(p)], str(p), "metrics.names[1]"


def c_output_dir_is_a_file(t: Path):
    f = t / "a_file"
    f.write_text("x")
    p = _cfg(t, lambda c: c.update(output_dir=str(f)))
    return ["run", str(p)], str(p), "output_dir"


def c_output_dir_special_path(t: Path):
    p = _cfg(t, lambda c: c.update(output_dir="/dev/null"))
    return ["run", str(p)], str(p), "output_dir"


def c_output_dir_under_a_file(t: Path):
    f = t / "a_file"
    f.write_text("x")
    p = _cfg(t, lambda c: c.update(output_dir=str(f / "runs")))
    return ["run", str(p)], str(p), "output_dir"


def c_cache_dir_is_a_file(t: Path):
    f = t / "cache_file"
    f.write_text("x")
    p = _cfg(t, lambda c: c["runner"].update(cache_dir=str(f)))
    return ["run", str(p)], str(p), "runner.cache_dir"


def c_cache_dir_under_proc(t: Path):
    p = _cfg(t, lambda c: c["runner"].update(cache_dir="/proc/audit-cache"))
    return ["run", str(p)], str(p), "runner.cache_dir"


# --- config files and fields, by class (the hostile-input pass of issue 9) ----------------
# Each class of value a field can take wrongly: wrong type, bool or string for a number,
# out of range, null, empty, huge, unicode, paths that escape or are not files, and the
# byte-level ways a file can be broken (BOM, CRLF, tabs, NUL, undecodable bytes).


def c_empty_config_file(t: Path):
    p = t / "empty.yaml"
    p.write_text("# nothing but a comment\n")
    return Expect(["run", str(p)], str(p), "", extra=("an empty file",))


def c_config_is_scalar(t: Path):
    p = t / "scalar.yaml"
    p.write_text("42\n")
    return ["run", str(p)], str(p), ""


def c_name_null(t: Path):
    p = _cfg(t, lambda c: c.update(name=None))
    return ["run", str(p)], str(p), "name"


def c_name_empty(t: Path):
    p = _cfg(t, lambda c: c.update(name=""))
    return ["run", str(p)], str(p), "name"


def c_name_path_traversal(t: Path):
    p = _cfg(t, lambda c: c.update(name="../../escaped"))
    return ["run", str(p)], str(p), "name"


def c_name_unicode_homoglyph(t: Path):
    # Cyrillic "е" in a run name: it would make a run id that looks equal to another one
    p = _cfg(t, lambda c: c.update(name="t\u0435st-run"))
    return ["run", str(p)], str(p), "name"


def c_missing_name(t: Path):
    p = _cfg(t, lambda c: c.pop("name"))
    return Expect(["run", str(p)], str(p), "name", extra=("missing",))


def c_unknown_nested_key_did_you_mean(t: Path):
    p = _cfg(t, lambda c: c["runner"].update(error_budgt=0.1))
    return Expect(["run", str(p)], str(p), "runner.error_budgt", extra=("'error_budget'",))


def c_unknown_moderator_key_did_you_mean(t: Path):
    p = _cfg(t, lambda c: c["moderators"][0].update(treshold={"default": 0.5}))
    return Expect(["run", str(p)], str(p), "moderators[0].treshold", extra=("'thresholds'",))


def c_seed_bool(t: Path):
    p = _cfg(t, lambda c: c.update(seed=True))
    return ["run", str(p)], str(p), "seed"


def c_seed_string(t: Path):
    p = _cfg(t, lambda c: c.update(seed="7"))
    return ["run", str(p)], str(p), "seed"


def c_bootstrap_as_float(t: Path):
    p = _cfg(t, lambda c: c["metrics"].update(bootstrap=100.5))
    return ["run", str(p)], str(p), "metrics.bootstrap"


def c_bootstrap_negative(t: Path):
    p = _cfg(t, lambda c: c["metrics"].update(bootstrap=-5))
    return ["run", str(p)], str(p), "metrics.bootstrap"


def c_bootstrap_huge(t: Path):
    p = _cfg(t, lambda c: c["metrics"].update(bootstrap=10**9))
    return ["run", str(p)], str(p), "metrics.bootstrap"


def c_ci_out_of_range(t: Path):
    p = _cfg(t, lambda c: c["metrics"].update(ci=1.5))
    return ["run", str(p)], str(p), "metrics.ci"


def c_error_budget_string(t: Path):
    p = _cfg(t, lambda c: c["runner"].update(error_budget="0.1"))
    return ["run", str(p)], str(p), "runner.error_budget"


def c_error_budget_above_one(t: Path):
    p = _cfg(t, lambda c: c["runner"].update(error_budget=2))
    return ["run", str(p)], str(p), "runner.error_budget"


def c_progress_as_string(t: Path):
    p = _cfg(t, lambda c: c["runner"].update(progress="no"))
    return ["run", str(p)], str(p), "runner.progress"


def c_engine_unknown(t: Path):
    p = _cfg(t, lambda c: c["runner"].update(engine="spark"))
    return ["run", str(p)], str(p), "runner.engine"


def c_moderators_mapping(t: Path):
    p = _cfg(t, lambda c: c.update(moderators={"name": "fake_a", "type": "fake"}))
    return ["run", str(p)], str(p), "moderators"


def c_moderator_entry_scalar(t: Path):
    p = _cfg(t, lambda c: c.update(moderators=["fake"]))
    return ["run", str(p)], str(p), "moderators[0]"


def c_moderator_name_path(t: Path):
    # the name becomes a prediction file name: a slash would write outside the run folder
    p = _cfg(t, lambda c: c["moderators"][0].update(name="../../fake_a"))
    return ["run", str(p)], str(p), "moderators[0].name"


def c_threshold_nan(t: Path):
    p = _cfg(t, lambda c: c["moderators"][0].update(thresholds={"default": float("nan")}))
    return ["run", str(p)], str(p), "moderators[0].thresholds"


def c_threshold_negative_infinity(t: Path):
    p = _cfg(t, lambda c: c["moderators"][0].update(thresholds={"default": float("-inf")}))
    return ["run", str(p)], str(p), "moderators[0].thresholds"


def c_thresholds_list(t: Path):
    p = _cfg(t, lambda c: c["moderators"][0].update(thresholds=[0.5]))
    return ["run", str(p)], str(p), "moderators[0].thresholds"


def c_batch_size_zero(t: Path):
    p = _cfg(t, lambda c: c["moderators"][0].update(batch_size=0))
    return ["run", str(p)], str(p), "moderators[0].batch_size"


def c_batch_size_huge(t: Path):
    p = _cfg(t, lambda c: c["moderators"][0].update(batch_size=10**30))
    return ["run", str(p)], str(p), "moderators[0].batch_size"


def c_params_null(t: Path):
    p = _cfg(t, lambda c: c["moderators"][0].update(params=None))
    return ["run", str(p)], str(p), "moderators[0].params"


def c_suite_entry_unknown_key(t: Path):
    p = _cfg(t, lambda c: c["suites"][0].update(splt="test"))
    return Expect(["run", str(p)], str(p), "suites[0].splt", extra=("'split'",))


def c_suite_limit_zero(t: Path):
    p = _cfg(t, lambda c: c["suites"][0].update(limit=0))
    return ["run", str(p)], str(p), "suites[0].limit"


def c_suite_name_null(t: Path):
    p = _cfg(t, lambda c: c["suites"][0].update(name=None))
    return ["run", str(p)], str(p), "suites[0].name"


def c_suite_dir_without_card(t: Path):
    empty = t / "not_a_suite"
    empty.mkdir()
    p = _cfg(t, lambda c: c.update(suites=[{"name": str(empty)}]))
    return ["run", str(p)], str(empty), ""


def c_policy_path_traversal(t: Path):
    p = _cfg(t, lambda c: c.update(policy="../../../../etc/passwd"))
    return ["run", str(p)], "etc/passwd", ""


def c_tags_not_strings(t: Path):
    p = _cfg(t, lambda c: c.update(tags={"team": ["a", "b"]}))
    return ["run", str(p)], str(p), "tags.team"


def c_output_dir_empty_string(t: Path):
    p = _cfg(t, lambda c: c.update(output_dir=""))
    return ["run", str(p)], str(p), "output_dir"


def c_tracking_uri_empty(t: Path):
    p = _cfg(t, lambda c: c["tracking"].update(uri=""))
    return ["run", str(p)], str(p), "tracking.uri"


def c_calibration_missing(t: Path):
    p = _cfg(t, lambda c: c["moderators"][0].update(calibration=str(t / "nope.json")))
    return ["run", str(p)], str(p), "moderators[0]"


def c_config_fifo(t: Path):
    fifo = t / "run.yaml"
    os.mkfifo(fifo)  # reading a FIFO with no writer would block forever
    return Expect(["run", str(fifo)], str(fifo), "", extra=("special file",))


def c_config_dev_zero(t: Path):
    return Expect(["run", "/dev/zero"], "/dev/zero", "", extra=("special file",))


def c_config_symlink_loop(t: Path):
    a, b = t / "a.yaml", t / "b.yaml"
    a.symlink_to(b)
    b.symlink_to(a)
    return Expect(["run", str(a)], str(a), "", extra=("symbolic link",))


def c_config_unreadable(t: Path):
    if os.geteuid() == 0:
        pytest.skip("root reads a chmod 000 file")
    p = _cfg(t)
    p.chmod(0)
    return ["run", str(p)], str(p), ""


def c_config_too_large(t: Path):
    p = _cfg(t)
    with p.open("a", encoding="utf-8") as fh:
        fh.write(("# padding " + "x" * 90 + "\n") * 60_000)
    return Expect(["run", str(p)], str(p), "", extra=("too large",))


def c_config_bom_then_unknown_key(t: Path):
    # a UTF-8 BOM must be invisible: the error names the misspelt key, not "\ufeffname"
    p = _cfg(t, lambda c: c.update(modrators=[]))
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    return ["run", str(p)], str(p), "modrators"


def c_config_crlf_duplicate_key(t: Path):
    p = _cfg(t)
    text = p.read_text() + "seed: 3\nseed: 4\n"
    p.write_bytes(text.replace("\n", "\r\n").encode())
    n = len(text.splitlines())
    return ["run", str(p)], f"{p}:{n}", "seed"


def c_config_tab_indent(t: Path):
    p = t / "tabs.yaml"
    p.write_text("name: tabs\nrunner:\n\terror_budget: 0.1\n")
    return Expect(["run", str(p)], str(p), "", extra=("line 3",))


def c_config_nul_byte(t: Path):
    p = _cfg(t)
    p.write_bytes(p.read_bytes().replace(b"test-run", b"test\x00run"))
    return ["run", str(p)], str(p), ""


def c_config_utf16(t: Path):
    p = _cfg(t)
    p.write_bytes(p.read_text().encode("utf-16"))
    return ["run", str(p)], str(p), ""


def c_set_threshold_out_of_range(t: Path):
    p = _cfg(t)
    args = ["run", str(p), "--set", "moderators.fake_a.thresholds.default=7"]
    return args, str(p), "moderators[0].thresholds"


def c_set_bool_for_int(t: Path):
    p = _cfg(t)
    return ["run", str(p), "--set", "seed=yes"], str(p), "seed"


def c_set_index_out_of_range(t: Path):
    p = _cfg(t)
    return ["run", str(p), "--set", "moderators.5.batch_size=4"], "--set", "moderators.5"


def c_set_into_scalar(t: Path):
    p = _cfg(t)
    return ["run", str(p), "--set", "name.first=x"], "--set", "name.first"


CASES: list[Case] = [
    c_unknown_key,
    c_wrong_type,
    c_missing_config,
    c_bad_yaml,
    c_unknown_moderator,
    c_threshold_range,
    c_threshold_category,
    c_params_unknown,
    c_params_wrong_type,
    c_duplicate_moderator,
    c_empty_suites,
    c_unknown_policy,
    c_unknown_suite,
    c_card_unknown_key,
    c_label_not_in_policy,
    c_duplicate_ids,
    c_empty_suite,
    c_missing_column,
    c_missing_data_file,
    c_covers_not_in_policy,
    c_unmapped_label_value,
    c_invalid_json_line,
    c_policy_mismatch,
    c_item_without_text,
    c_top_level_list,
    c_set_no_equals,
    c_set_unknown_entry,
    c_set_wrong_type,
    c_hf_model_missing,
    c_unknown_split,
    c_unknown_flag,
    c_duplicate_key,
    c_threshold_string,
    c_threshold_bool,
    c_batch_size_bool,
    c_batch_size_float,
    c_negative_seed,
    c_alias_bomb,
    c_recursive_alias,
    c_too_deep,
    c_config_is_directory,
    c_not_utf8,
    c_huge_value_in_error,
    c_hub_revision_branch,
    c_csv_too_few_cells,
    c_csv_too_many_cells,
    c_csv_wrong_delimiter,
    c_unknown_encoding,
    c_jsonl_line_not_object,
    c_text_field_is_mapping,
    c_value_positive_and_negative,
    c_positive_if_not_a_condition,
    c_positive_if_on_text,
    c_json_records_path_missing,
    c_constant_rule_with_column,
    c_same_suite_twice_via_two_paths,
    c_unknown_metric_name,
    c_output_dir_is_a_file,
    c_output_dir_special_path,
    c_output_dir_under_a_file,
    c_cache_dir_is_a_file,
    c_cache_dir_under_proc,
    c_empty_config_file,
    c_config_is_scalar,
    c_name_null,
    c_name_empty,
    c_name_path_traversal,
    c_name_unicode_homoglyph,
    c_missing_name,
    c_unknown_nested_key_did_you_mean,
    c_unknown_moderator_key_did_you_mean,
    c_seed_bool,
    c_seed_string,
    c_bootstrap_as_float,
    c_bootstrap_negative,
    c_bootstrap_huge,
    c_ci_out_of_range,
    c_error_budget_string,
    c_error_budget_above_one,
    c_progress_as_string,
    c_engine_unknown,
    c_moderators_mapping,
    c_moderator_entry_scalar,
    c_moderator_name_path,
    c_threshold_nan,
    c_threshold_negative_infinity,
    c_thresholds_list,
    c_batch_size_zero,
    c_batch_size_huge,
    c_params_null,
    c_suite_entry_unknown_key,
    c_suite_limit_zero,
    c_suite_name_null,
    c_suite_dir_without_card,
    c_policy_path_traversal,
    c_tags_not_strings,
    c_output_dir_empty_string,
    c_tracking_uri_empty,
    c_calibration_missing,
    c_config_fifo,
    c_config_dev_zero,
    c_config_symlink_loop,
    c_config_unreadable,
    c_config_too_large,
    c_config_bom_then_unknown_key,
    c_config_crlf_duplicate_key,
    c_config_tab_indent,
    c_config_nul_byte,
    c_config_utf16,
    c_set_threshold_out_of_range,
    c_set_bool_for_int,
    c_set_index_out_of_range,
    c_set_into_scalar,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[2:] for c in CASES])
def test_bad_input_exits_2_with_one_line(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = as_expect(case(tmp_path))
    r = run_cli(capsys, *exp.args)
    check_outcome(exp, r.code, r.out, r.err, tmp_path / "runs")


def test_unknown_moderator_suggests_closest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, _, _ = c_unknown_moderator(tmp_path)
    r = run_cli(capsys, *args)
    assert "did you mean 'fake'" in r.err


def test_debug_shows_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, _, _ = c_unknown_moderator(tmp_path)
    r = run_cli(capsys, "--debug", *args)
    assert r.code == 2 and "Traceback" in r.err


def test_every_case_is_in_the_table() -> None:
    """docs/hostile-inputs.md lists every case (scripts/hostile_table.py regenerates it)."""
    assert missing_from_table("test_bad_inputs", CASES) == []
