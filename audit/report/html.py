"""Self-contained HTML report of one run, rendered from ``record.json`` and the
predictions Parquet files.

One file, no network: inline CSS, inline SVG charts drawn here, no scripts, and a
Content-Security-Policy that blocks any stray request. Restricted items (Parquet
``restricted``, which the run sets from the run-wide
:func:`audit.engine.results.restricted_ids`, or a gold/decision in a restricted
category) show id and hash only.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from audit.engine.results import REDACTED
from audit.report.markdown import (
    JUDGE_METRICS,
    SUMMARY_METRICS,
    TOP_PARSE_SLICES,
    error_table_rows,
    fmt_defined,
    fmt_value,
    is_llm,
    judge_validation,
    metric_fields,
    ordered_categories,
    result_error_slices,
)
from audit.report.numbers import fmt_num

if TYPE_CHECKING:
    from audit.records import MetricValue, ResultEntry, RunRecord

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
TOP_K = 12  # disagreements shown per suite × moderator
N_BINS = 10  # equal-mass reliability bins
MAX_SLICE_VALUES = 30
#: heatmap cells with fewer decided items are masked (grey, no colour): with under 10
#: items one error moves F1 or FPR by 0.1 or more, so a colour would show noise
MIN_SLICE_N = 10
_W, _H, _ML, _MR, _MT, _MB = 220, 190, 36, 10, 22, 34
log = logging.getLogger(__name__)


def resolve_record(run: str | Path) -> Path:
    """Path of ``record.json`` for a run directory, a record path or a run id under runs/."""
    from audit._util.settings import runs_dir
    from audit.errors import UsageError

    p = Path(run)
    for cand in (p / "record.json", p, runs_dir() / str(run) / "record.json"):
        if cand.is_file():
            return cand
    raise UsageError(
        "run not found",
        where=str(run),
        expected="a run directory, a record.json path or a run id under runs/",
        actual="no such record",
        fix="list runs with 'ls runs/' or pass the run directory",
    )


def _cols(df: Any, cat: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gold (-1 unknown), score and decision (NaN where missing) of one category."""
    y = df[f"gold.{cat}"].to_numpy(dtype=float)
    s = df[f"score.{cat}"].to_numpy(dtype=float, na_value=np.nan)
    p = df[f"pred.{cat}"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    return y, s, p


def _known(df: Any, cat: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_cols` restricted to rows with known gold and a score."""
    y, s, p = _cols(df, cat)
    ok = (y >= 0) & ~np.isnan(s)
    return y[ok], s[ok], p[ok]


def pr_curve(y: np.ndarray, s: np.ndarray, max_points: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision at every distinct score threshold (highest first)."""
    n_pos = int((y == 1).sum())
    if n_pos == 0:
        return np.array([]), np.array([])
    order = np.argsort(-s, kind="mergesort")
    ys, ss = y[order], s[order]
    tp, fp = np.cumsum(ys == 1), np.cumsum(ys == 0)
    last = np.r_[np.nonzero(np.diff(ss))[0], len(ss) - 1]
    prec, rec = tp[last] / (tp[last] + fp[last]), tp[last] / n_pos
    rec, prec = np.r_[0.0, rec], np.r_[prec[0], prec]
    if len(rec) > max_points:
        idx = np.unique(np.linspace(0, len(rec) - 1, max_points).astype(int))
        rec, prec = rec[idx], prec[idx]
    return rec, prec


def reliability(y: np.ndarray, s: np.ndarray, bins: int = N_BINS) -> list[tuple[float, float, int]]:
    """Equal-mass bins: (mean score, observed positive rate, n) per bin."""
    if len(y) == 0:
        return []
    chunks = np.array_split(np.argsort(s, kind="mergesort"), min(bins, len(y)))
    return [(float(s[c].mean()), float(y[c].mean()), len(c)) for c in chunks if len(c)]


def confusion(y: np.ndarray, p: np.ndarray) -> dict[str, int]:
    """TP/FP/FN/TN at the configured threshold (rows without a decision excluded)."""
    d = ~np.isnan(p)
    y, p = y[d], p[d]
    return {
        "TP": int(((y == 1) & (p == 1)).sum()),
        "FP": int(((y == 0) & (p == 1)).sum()),
        "FN": int(((y == 1) & (p == 0)).sum()),
        "TN": int(((y == 0) & (p == 0)).sum()),
    }


def _f1(c: dict[str, int]) -> float:
    d = 2 * c["TP"] + c["FP"] + c["FN"]
    return 2 * c["TP"] / d if d else math.nan


def _xy(x: float, y: float) -> tuple[float, float]:
    return _ML + x * (_W - _ML - _MR), _MT + (1 - y) * (_H - _MT - _MB)


def _svg(title: str, xlabel: str, ylabel: str, body: list[str], desc: str) -> str:
    """A 0–1 × 0–1 chart frame with grid, ticks and labels around ``body``."""
    out = [
        f'<svg class="chart" role="img" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}">',
        f"<title>{escape(desc)}</title>",
        f'<text class="t" x="{_W / 2}" y="14" text-anchor="middle">{escape(title)}</text>',
    ]
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        x0, y0 = _xy(v, 0)
        x1, y1 = _xy(1, v)
        xa, ya = _xy(0, v)
        out += [
            f'<line class="g" x1="{x0:.1f}" y1="{_MT}" x2="{x0:.1f}" y2="{y0:.1f}"/>',
            f'<line class="g" x1="{xa:.1f}" y1="{ya:.1f}" x2="{x1:.1f}" y2="{y1:.1f}"/>',
        ]
        if v in (0.0, 0.5, 1.0):
            out += [
                f'<text class="k" x="{x0:.1f}" y="{y0 + 11:.1f}" text-anchor="middle">{v:g}</text>',
                f'<text class="k" x="{xa - 3:.1f}" y="{ya + 3:.1f}" text-anchor="end">{v:g}</text>',
            ]
    x0, y0 = _xy(0, 0)
    out += [
        f'<rect class="f" x="{_ML}" y="{_MT}" width="{_W - _ML - _MR}" height="{y0 - _MT:.1f}"/>',
        *body,
        f'<text class="l" x="{(_ML + _W - _MR) / 2}" y="{_H - 4}" text-anchor="middle">{escape(xlabel)}</text>',
        f'<text class="l" transform="translate(10 {(_MT + y0) / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{escape(ylabel)}</text>',
        "</svg>",
    ]
    return "".join(out)


def _poly(xs: Any, ys: Any, cls: str) -> str:
    pts = " ".join("{:.1f},{:.1f}".format(*_xy(float(a), float(b))) for a, b in zip(xs, ys))
    return f'<polyline class="{cls}" points="{pts}"/>'


def pr_svg(cat: str, y: np.ndarray, s: np.ndarray, conf: dict[str, int], auprc: str) -> str:
    """PR curve with the no-skill line (prevalence) and the operating point."""
    rec, prec = pr_curve(y, s)
    if len(rec) == 0:
        return _svg(cat, "recall", "precision", [], f"{cat}: no known positives, no PR curve")
    prev = float((y == 1).mean())
    body = [_poly([0, 1], [prev, prev], "base"), _poly(rec, prec, "curve")]
    tp, fp, fn = conf["TP"], conf["FP"], conf["FN"]
    if tp + fp and tp + fn:
        px, py = _xy(tp / (tp + fn), tp / (tp + fp))
        body.append(
            f'<circle class="op" cx="{px:.1f}" cy="{py:.1f}" r="3.5">'
            f"<title>operating point: precision {tp / (tp + fp):.3f}, recall {tp / (tp + fn):.3f}"
            "</title></circle>"
        )
    desc = f"PR curve {cat}: AUPRC {auprc}, n={len(y)}, positives={int((y == 1).sum())}"
    return _svg(f"{cat} · AUPRC {auprc}", "recall", "precision", body, desc)


def reliability_svg(cat: str, y: np.ndarray, s: np.ndarray, ece: str) -> str:
    """Reliability diagram over equal-mass bins, with the diagonal of perfect calibration."""
    bins = reliability(y, s)
    body = [_poly([0, 1], [0, 1], "base")]
    if bins:
        body.append(_poly([b[0] for b in bins], [b[1] for b in bins], "curve"))
        for ms, obs, n in bins:
            cx, cy = _xy(ms, obs)
            body.append(
                f'<circle class="pt" cx="{cx:.1f}" cy="{cy:.1f}" r="3">'
                f"<title>mean score {ms:.3f}, observed {obs:.3f}, n={n}</title></circle>"
            )
    desc = f"reliability {cat}: ECE {ece}, {len(bins)} equal-mass bins, n={len(y)}"
    return _svg(f"{cat} · ECE {ece}", "mean score", "observed rate", body, desc)


def _heat(v: float, hue: int = 212) -> str:
    """Cell colour for a value in [0, 1]: darker is higher (hue 212 blue for F1, 24
    orange for FPR, where higher is worse)."""
    light = 96 - 56 * v
    return f"background:hsl({hue},70%,{light:.0f}%);color:{'#fff' if v > 0.55 else '#102a43'}"


def _heat_cell(where: str, y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """One heatmap cell: masked below :data:`MIN_SLICE_N` decided items, FPR where the
    slice has no gold positives (F1 is undefined there, and the error that can happen
    is a false flag), F1 otherwise."""
    c = confusion(y, p)
    n, pos = sum(c.values()), c["TP"] + c["FN"]
    base = {"n": n, "kind": "masked", "text": f"n<{MIN_SLICE_N}", "style": ""}
    if n < MIN_SLICE_N:
        tip = f"{where}: masked, n={n} below the minimum of {MIN_SLICE_N}"
        return base | {"tip": tip}
    if pos == 0:
        fpr = c["FP"] / n
        tip = f"{where}: no gold positives; FPR {fmt_num(fpr)} ({c['FP']} of {n} flagged)"
        return base | {"kind": "fpr", "text": f"FPR {fpr:.2f}", "style": _heat(fpr, 24), "tip": tip}
    f1 = _f1(c)
    tip = f"{where}: F1 {fmt_num(f1)}, n={n}, positives={pos}"
    return base | {"kind": "f1", "text": f"{f1:.2f}", "style": _heat(f1), "tip": tip}


def slice_heatmap(df: Any, cats: list[str]) -> list[dict[str, Any]]:
    """Per slice column: one cell per slice value × category (:func:`_heat_cell`)."""
    out = []
    for col in [c for c in df.columns if c.startswith("slice.")]:
        vals = df[col].astype("string").fillna("(missing)")
        top = vals.value_counts().index[:MAX_SLICE_VALUES]
        rows = []
        for v in top:
            m = (vals == v).to_numpy()
            cells = []
            for cat in cats:
                y, _, p = _known(df[m], cat)
                cells.append(_heat_cell(f"{col[6:]}={v} · {cat}", y, p))
            rows.append({"value": v, "n": int(m.sum()), "cells": cells})
        out.append({"name": col[6:], "rows": rows, "more": max(0, vals.nunique() - len(top))})
    return out


def _suite_texts(rec: RunRecord, r: ResultEntry, cache: dict[str, Any]) -> Any:
    """``{id: (content_hash, text)}`` from the suite, or an error string (cached per suite)."""
    key = f"{r.suite}:{r.split}"
    if key not in cache:
        try:
            from audit.policy import load_policy
            from audit.schema import TEXT_FIELDS
            from audit.suites import load_suite

            info = rec.suites.get(key)
            card = info.card if info is not None else r.suite
            suite = load_suite(card, load_policy(rec.policy.ref), split=r.split)
            texts = {f: suite.column(f) for f in TEXT_FIELDS}
            cache[key] = {
                iid: (h, [(lbl, texts[f][i]) for f, lbl in TEXT_FIELDS.items() if texts[f][i]])
                for i, (iid, h) in enumerate(
                    zip(suite.column("id"), suite.column("content_hash"), strict=True)
                )
            }
        except Exception as exc:  # text is optional; the report must still render
            cache[key] = f"item text unavailable ({type(exc).__name__}: {exc})"
    return cache[key]


def disagreements(
    df: Any, cats: list[str], restricted_cats: frozenset[str] | None, texts: Any
) -> list[dict[str, Any]]:
    """Most confident FP/FN across categories; restricted items keep only id and hash.

    ``restricted_cats`` None (the run's policy could not be loaded) redacts every item:
    redaction fails closed.
    """
    restricted = df["restricted"].to_numpy(dtype=bool).copy()
    if restricted_cats is None:
        restricted[:] = True
    for rc in restricted_cats or ():
        if f"gold.{rc}" in df:
            restricted |= df[f"gold.{rc}"].to_numpy() == 1
        if f"pred.{rc}" in df:
            restricted |= df[f"pred.{rc}"].fillna(False).to_numpy(dtype=bool)
    cand = []
    # overall errors repeat a category's, so overall is used only for a moderator that
    # scores nothing else (an LLM judge with one UNSAFE/SAFE verdict)
    own = [c for c in cats if c != "overall"] or [c for c in cats if c == "overall"]
    for cat in own:
        y, s, p = _cols(df, cat)
        for kind, m, conf in (("FP", (y == 0) & (p == 1), s), ("FN", (y == 1) & (p == 0), 1 - s)):
            cand += [(float(conf[i]), i, cat, kind) for i in np.nonzero(m & ~np.isnan(s))[0]]
    rows = []
    for _conf, i, cat, kind in sorted(cand, key=lambda t: (-t[0], t[1]))[:TOP_K]:
        row = df.iloc[i]
        red, rat = bool(restricted[i]), row["rationale"]
        rat = rat if isinstance(rat, str) else None
        hit = texts.get(row["id"]) if isinstance(texts, dict) and not red else None
        ok = hit is not None and hit[0] == row["content_hash"]  # suite unchanged since the run
        text = REDACTED if red else (hit[1] if ok else "item text unavailable")  # type: ignore[index]
        rows.append(
            {"id": row["id"], "hash": row["content_hash"], "category": cat, "kind": kind}
            | {"score": f"{row[f'score.{cat}']:.3f}", "restricted": red, "text": text}
            | {"rationale": REDACTED if red and rat else rat}
            | {"slices": {c[6:]: row[c] for c in df.columns if c.startswith("slice.")}}
        )
    return rows


def _metrics_rows(
    metrics: Mapping[str, Mapping[str, MetricValue]], notes: list[str]
) -> list[dict[str, Any]]:
    rows = []
    for cat in ordered_categories(metrics):
        per = metrics[cat]
        support = per.get("support")
        n = support.value if support is not None else None
        cells = []
        for m, _ in SUMMARY_METRICS:
            v = per.get(m)
            text = fmt_value(v, ci=m != "prevalence")
            note = None
            if v is not None and v.value is None:
                notes.append(f"{cat}/{m}: {v.reason or 'undefined'}")
                note = len(notes)
            cells.append({"text": text, "note": note, "tip": notes[-1] if note else None})
        rows.append({"category": cat, "n": "—" if n is None else int(n), "cells": cells})
    return rows


def _cell(v: Any) -> dict[str, Any]:
    """A metric cell: text, and whether it is undefined (NaN with its reason)."""
    f = metric_fields(v)
    return {"text": fmt_defined(v), "nan": f is not None and f.get("value") is None}


def judge_item(d: RunRecord, r: ResultEntry, rows: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Template view of :func:`audit.report.markdown.judge_validation` for one LLM-judge result."""
    jv = judge_validation(d, r, rows)
    return {
        **jv,
        "anchor": f"jv-{r.key}",
        "rows": [
            {
                "category": x["category"],
                "n": "—" if x["n"] is None else x["n"],
                "cells": [_cell(x["metrics"][m]) for m, _ in JUDGE_METRICS],
            }
            for x in jv["rows"]
        ],
        "parse_text": None if jv["parse"] is None else fmt_defined(jv["parse"]),
        "top_slices": [
            {
                "slice": x["slice"],
                "value": x["value"],
                "n": x["n"],
                "k": x["n_parse_failures"],
                "rate": fmt_defined(x["parse_failure_rate"]),
            }
            for x in jv["top_slices"]
        ],
    }


def build_context(record: Any) -> dict[str, Any]:
    """Everything the template needs, from the record and its Parquet files."""
    from markupsafe import Markup

    from audit.engine.record import read_predictions
    from audit.policy import load_policy

    d = record.record
    restricted_cats: frozenset[str] | None
    try:
        restricted_cats = load_policy(d.policy.ref).restricted_ids
    except Exception:
        # fail closed: without the policy nobody can tell which categories are
        # restricted, so every item is shown as id + hash only (disagreements())
        restricted_cats = None
    text_cache: dict[str, Any] = {}
    results, judges = [], []
    ci = float((d.config.get("metrics") or {}).get("ci", 0.95))
    for i, r in enumerate(d.results):
        notes: list[str] = []
        cats = [c for c in ordered_categories(r.metrics) if c != "overall"] + ["overall"]
        item: dict[str, Any] = {"r": r, "metrics": _metrics_rows(r.metrics, notes)}
        item["notes"], item["anchor"] = notes, f"r-{r.key}"
        pq = record.dir / r.predictions
        # a missing file is shown as such; a corrupt or escaping one is a one-line error
        df = (
            read_predictions(
                record.dir, r.predictions, where=str(record.path), field=f"results[{i}].predictions"
            )
            if pq.exists() or pq.is_symlink()
            else None
        )
        err_rows = None
        if r.n_errors or is_llm(d, r.moderator):
            err_rows = result_error_slices(record.dir, r, ci=ci, df=df)
        item["errors"] = error_table_rows(err_rows) if r.n_errors else []
        if is_llm(d, r.moderator):
            judges.append(judge_item(d, r, err_rows))
        if df is None:
            item["missing"] = f"predictions file not found: {r.predictions}"
            results.append(item)
            continue
        cats = [c for c in cats if f"score.{c}" in df and f"pred.{c}" in df]
        spec = d.moderators.get(r.moderator)
        thr = spec.thresholds if spec is not None else {}
        charts, conf_rows = [], []
        for cat in cats:
            y, s, p = _known(df, cat)
            conf = confusion(y, p)
            per = r.metrics.get(cat, {})
            t = float(thr.get(cat, thr.get("default", 0.5))) if cat != "overall" else None
            conf_rows.append({"category": cat, "threshold": t, "excluded": len(df) - len(y)} | conf)
            auprc, ece = (fmt_value(per.get(m), ci=False) for m in ("auprc", "ece"))
            pr, rel = pr_svg(cat, y, s, conf, auprc), reliability_svg(cat, y, s, ece)
            charts.append({"pr": Markup(pr), "rel": Markup(rel)})
        texts = _suite_texts(d, r, text_cache)
        item.update(
            charts=charts,
            confusion=conf_rows,
            heatmap=slice_heatmap(df, cats),
            disagreements=disagreements(df, cats, restricted_cats, texts),
            text_note=texts if isinstance(texts, str) else None,
        )
        results.append(item)
    return {
        "d": d,
        "run_id": record.run_id,
        "csp": CSP,
        "results": results,
        "judges": judges,
        "REDACTED": REDACTED,
    }


def render_html(record: Any) -> str:
    """Render the report of a loaded :class:`audit.engine.record.RecordFile` to one HTML string."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.ChainableUndefined,
    )
    ctx = build_context(record)
    ctx.update(
        metric_headers=[h for _, h in SUMMARY_METRICS],
        judge_headers=[h for _, h in JUDGE_METRICS],
        top_parse_slices=TOP_PARSE_SLICES,
        n_bins=N_BINS,
        min_slice_n=MIN_SLICE_N,
    )
    return env.get_template("report.html.j2").render(**ctx)


def log_to_mlflow(record: RunRecord, html_path: Path) -> str | None:
    """Log the report to the audit's MLflow parent run; best effort, never raises.

    Returns:
        The parent run id when logged, else None.
    """
    ml = record.mlflow
    pid, uri = (ml.parent_run_id, ml.tracking_uri) if ml is not None else (None, None)
    if not pid or not uri:
        return None
    from audit.tracking.artifacts import log_artifact_to_run

    return log_artifact_to_run(uri, pid, html_path)


def write_html_report(
    record_path_or_dir: str | Path, out: str | Path | None = None, *, mlflow: bool = True
) -> Path:
    """Write the self-contained HTML report of a run and log it to MLflow (best effort).

    Args:
        record_path_or_dir: run directory, ``record.json`` path or run id under runs/.
        out: output file; default ``runs/<run_id>/report.html``.
        mlflow: log the file to the run's MLflow parent run when there is one.

    Returns:
        Path of the written HTML file.
    """
    from audit.engine.record import RecordFile

    record = RecordFile.load(resolve_record(record_path_or_dir))
    path = Path(out) if out is not None else record.dir / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(render_html(record), encoding="utf-8")
    os.replace(tmp, path)
    if mlflow:
        log_to_mlflow(record.record, path)
    return path
