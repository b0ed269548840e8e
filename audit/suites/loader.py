"""Load a suite card's data into a ``datasets.Dataset`` with the canonical features.

Validation happens here, once, with errors that name the card, the field, the
expected and actual value, and the fix: missing files and columns, duplicate or
empty ids, label values the card does not map, labels outside the policy, rows
with no text, and empty suites.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from audit._util.settings import data_root, find_file, search_dirs
from audit._util.validation import load_model
from audit.errors import SuiteError
from audit.schema import (
    LABEL_NAMES,
    NEGATIVE,
    POSITIVE,
    TEXT_FIELDS,
    UNKNOWN,
    Frame,
    Item,
    content_hash,
)
from audit.suites.card import SuiteCard, card_path
from audit.suites.reading import read_rows, resolve_root
from audit.suites.rules import RuleStats, apply_rule, is_missing, rule_warnings

if TYPE_CHECKING:
    import datasets

    from audit.media.cells import MediaCell
    from audit.policy import Policy
    from audit.suites.annotations import AnnotatorLabels


@dataclass
class LoadedSuite:
    """A validated suite split.

    Attributes:
        dataset: canonical ``datasets.Dataset`` (see :mod:`audit.schema`).
        labels: (n, K) int8 gold per policy category (-1 unknown), K = len(categories).
        overall: (n,) int8 any-violation gold (-1 unknown).
        digest: sha256 over the canonical schema and every row sorted by id.
    """

    card: SuiteCard
    card_path: Path
    split: str
    dataset: datasets.Dataset
    categories: tuple[str, ...]
    covers: tuple[str, ...]
    labels: np.ndarray
    overall: np.ndarray
    digest: str
    source: dict[str, Any]
    slice_names: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """Card rules that look wrong on this data (a class no row received, a value
    matching nothing, a pattern-like literal); shown by validate and in the run."""
    annotations: AnnotatorLabels | None = None
    """Per-annotator labels of a multi-annotator card (``annotations:``), row-aligned."""

    @property
    def name(self) -> str:
        return self.card.name

    def __len__(self) -> int:
        return len(self.dataset)

    def sample(self, n: int, *, seed: int = 0, stratify: bool = True) -> LoadedSuite:
        """A reproducible subset of ``n`` items (all of them when ``n >= len``).

        Items are ranked by ``sha256(seed, id)``; with ``stratify`` each any-violation
        gold stratum (1 / 0 / -1) gets its share of ``n`` by largest remainder (at
        least one item when the stratum is non-empty and ``n`` allows). Row order is
        kept. The subset's digest covers the parent digest and the chosen ids, and
        ``source["sample"]`` records how it was drawn."""
        import dataclasses

        total = len(self)
        if n >= total:
            return self
        ids = self.dataset["id"]
        rank = sorted(
            range(total), key=lambda i: hashlib.sha256(f"{seed}\0{ids[i]}".encode()).hexdigest()
        )
        if stratify:
            strata: dict[int, list[int]] = {}
            for i in rank:
                strata.setdefault(int(self.overall[i]), []).append(i)
            quota = {k: n * len(v) / total for k, v in strata.items()}
            take = {k: int(q) for k, q in quota.items()}
            for k in strata:  # every stratum present keeps at least one item
                if take[k] == 0 and sum(take.values()) < n:
                    take[k] = 1
            for k in sorted(quota, key=lambda k: (take[k] - quota[k], k)):
                if sum(take.values()) >= n:
                    break
                if take[k] < len(strata[k]):
                    take[k] += 1
            chosen = sorted(i for k, v in strata.items() for i in v[: take[k]])
        else:
            chosen = sorted(rank[:n])
        picked = [ids[i] for i in chosen]
        digest = hashlib.sha256(
            json.dumps([self.digest, seed, sorted(picked)]).encode("utf-8")
        ).hexdigest()
        return dataclasses.replace(
            self,
            dataset=self.dataset.select(chosen),
            labels=self.labels[chosen],
            overall=self.overall[chosen],
            annotations=None if self.annotations is None else self.annotations.subset(chosen),
            digest=digest,
            source={
                **self.source,
                "sample": {
                    "n": len(chosen),
                    "of": total,
                    "seed": seed,
                    "stratify": stratify,
                    "method": "seeded sha256(id) ranking"
                    + (", stratified by any-violation gold" if stratify else ""),
                    "parent_digest": self.digest,
                },
            },
        )

    def describe(self) -> dict[str, Any]:
        """Provenance written to the run record."""
        return {
            "name": self.card.name,
            "version": self.card.version,
            "split": self.split,
            "n": len(self),
            "digest": self.digest,
            "policy": self.card.policy,
            "covers": list(self.covers),
            "source": self.source,
            "card": str(self.card_path),
            "positives": {
                c: int((self.labels[:, k] == POSITIVE).sum()) for k, c in enumerate(self.categories)
            },
            "unknown": {
                c: int((self.labels[:, k] == UNKNOWN).sum()) for k, c in enumerate(self.categories)
            },
            "overall_positives": int((self.overall == POSITIVE).sum()),
            "warnings": list(self.warnings),
        }


def suites_root() -> Path:
    """The first existing suites folder on the search path (project, then packaged)."""
    dirs = search_dirs("suites")
    return next((d for d in dirs if d.is_dir()), dirs[0])


def available_suites() -> list[str]:
    """Suite names found on the search path (a project suite shadows a packaged one)."""
    return sorted({p.parent.name for d in search_dirs("suites") for p in d.glob("*/suite.yaml")})


def load_card(name_or_path: str) -> tuple[SuiteCard, Path]:
    # a bare name is looked up on the search path; a file or folder path is taken as is
    p = Path(name_or_path)
    tried: list[Path] = []
    if p.suffix not in (".yaml", ".yml") and not p.is_dir():
        found, tried = find_file("suites", p / "suite.yaml")
        path = found or tried[0]
    else:
        path = card_path(name_or_path, suites_root())
    if not path.exists():
        import difflib

        known = available_suites()
        close = difflib.get_close_matches(name_or_path, known, n=1)
        raise SuiteError(
            "suite not found" + (f" (searched {', '.join(map(str, tried))})" if tried else ""),
            where=str(path),
            expected=f"a suite name among {known} or a path to a suite.yaml",
            actual=repr(name_or_path),
            fix=f"did you mean {close[0]!r}?" if close else "check the name or path",
        )
    card = load_model(SuiteCard, path, error=SuiteError)
    if card.name != path.parent.name and path.name == "suite.yaml":
        raise SuiteError(
            "suite name does not match its folder",
            where=str(path),
            field="name",
            expected=repr(path.parent.name),
            actual=repr(card.name),
            fix="rename the folder or the suite",
        )
    return card, path


# --------------------------------------------------------------------------- mapping


def _check_columns(card: SuiteCard, cols: set[str], where: str) -> None:
    def need(col: str, fld: str, optional: bool = False) -> None:
        if col not in cols and not optional:
            raise SuiteError(
                "column not found in the data",
                where=where,
                field=fld,
                expected=f"one of the data's columns {sorted(cols)}",
                actual=repr(col),
                fix="correct the column name in the suite card",
            )

    if card.id.column is not None:
        need(card.id.column, "id.column")
    for fname, col in card.fields.items():
        need(col, f"fields.{fname}")
    for i, r in enumerate(card.labels.rules):
        for c in r.columns:  # multi-annotator rules are checked per annotator on collapse
            need(
                c,
                f"labels.rules[{i}].column",
                optional=r.missing_column == "unknown" or card.annotations is not None,
            )
    if card.labels.overall:
        for c in card.labels.overall.columns:
            need(
                c, "labels.overall.column", optional=card.labels.overall.missing_column == "unknown"
            )
    if card.labels.list_column:
        need(card.labels.list_column, "labels.list_column")
    for s, col in card.slices.items():
        need(col, f"slices.{s}")
    if card.rationale_column:
        need(card.rationale_column, "rationale_column")
    if card.image_column:
        need(card.image_column, "image_column")
    if card.media is not None:
        if card.media.image:
            need(card.media.image, "media.image")
        if card.media.video:
            need(card.media.video, "media.video")


def _covers(card: SuiteCard, policy: Policy, where: str) -> tuple[str, ...]:
    cats = policy.category_ids
    covers = cats if card.labels.covers == "all" else tuple(card.labels.covers)
    named = list(covers) + [r.category for r in card.labels.rules if r.category]
    for i, c in enumerate(named):
        if c not in cats:
            import difflib

            close = difflib.get_close_matches(c, cats, n=1)
            fld = "labels.covers" if i < len(covers) else "labels.rules.category"
            raise SuiteError(
                "label category not in the policy",
                where=where,
                field=fld,
                expected=f"a category of {policy.ref}: {list(cats)}",
                actual=repr(c),
                fix=f"did you mean {close[0]!r}?" if close else "map onto a policy category",
            )
    for r in card.labels.rules:
        if r.category not in covers:
            raise SuiteError(
                "rule for a category the suite does not cover",
                where=where,
                field="labels.covers",
                expected=f"{r.category!r} listed in covers",
                actual=str(list(covers)),
                fix=f"add {r.category!r} to labels.covers",
            )
    return covers


def load_suite(
    name_or_path: str,
    policy: Policy,
    *,
    split: str | None = None,
    limit: int | None = None,
) -> LoadedSuite:
    """Load and validate one suite split into the canonical schema."""
    card, cpath = load_card(name_or_path)
    where = str(cpath)
    if card.policy != policy.ref:
        raise SuiteError(
            "suite is labelled against another policy version",
            where=where,
            field="policy",
            expected=repr(policy.ref),
            actual=repr(card.policy),
            fix="relabel/remap the suite, or run with the policy it was labelled for",
        )
    split = split or card.default_split
    covers = _covers(card, policy, where)
    rows, source = read_rows(card, cpath, split)
    if not rows:
        raise SuiteError(
            "suite split is empty",
            where=where,
            field=f"source (split {split!r})",
            expected="at least one row",
            actual="0 rows",
            fix="check the data file",
        )
    annotations = None
    if card.annotations is not None:
        from audit.suites.annotations import collapse_annotations

        rows, annotations = collapse_annotations(card, cpath, rows, covers, policy)
    cols: set[str] = set()
    for r in rows[: min(len(rows), 2000)]:
        cols |= set(r)
    _check_columns(card, cols, where)
    if card.media is not None:
        _media_root(card, cpath)  # a missing root is a card-level error, raised once
    if limit is not None:
        rows = rows[:limit]
        annotations = None if annotations is None else annotations.subset(range(len(rows)))
    suite = _canonicalise(
        card,
        cpath,
        split,
        rows,
        source,
        covers,
        policy,
        gold=None if annotations is None else annotations.gold,
    )
    if annotations is not None:
        import dataclasses

        # per-annotator labels are part of the suite's content: a changed judgement
        # must change the digest even when the majority gold does not move
        digest = hashlib.sha256(f"{suite.digest}\0{annotations.digest()}".encode()).hexdigest()
        suite = dataclasses.replace(suite, annotations=annotations, digest=digest)
    return suite


def _canonicalise(
    card: SuiteCard,
    cpath: Path,
    split: str,
    rows: list[dict[str, Any]],
    source: dict[str, Any],
    covers: tuple[str, ...],
    policy: Policy,
    *,
    gold: np.ndarray | None = None,
) -> LoadedSuite:
    """``gold``: (n, K) labels derived elsewhere (multi-annotator majority); when
    given it replaces the card's label rules."""
    where = str(cpath)
    cats = policy.category_ids
    kidx = {c: i for i, c in enumerate(cats)}
    n = len(rows)
    labels = np.full((n, len(cats)), UNKNOWN, dtype=np.int8)
    overall = np.full(n, UNKNOWN, dtype=np.int8)
    cover_idx = [kidx[c] for c in covers]
    ids: list[str] = []
    out_rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    slice_names = card.slice_names()
    rule_stats = [RuleStats() for _ in card.labels.rules]
    overall_stats = RuleStats()
    for i, row in enumerate(rows):
        if card.id.column is not None:
            raw_id = row.get(card.id.column)
            if is_missing(raw_id):
                raise SuiteError(
                    f"empty id in row {i}",
                    where=where,
                    field="id.column",
                    expected="a non-empty id in every row",
                    actual=repr(raw_id),
                    fix="fill the id or use id: {generate: row_index}",
                )
            iid = f"{card.id.prefix}{raw_id}"
        else:
            iid = f"{card.id.prefix}{split}-{i}"
        if iid in seen:
            raise SuiteError(
                "duplicate item id",
                where=where,
                field="id",
                expected="unique ids",
                actual=f"{iid!r} in rows {seen[iid]} and {i}",
                fix="deduplicate the data or use id: {generate: row_index}",
            )
        seen[iid] = i
        ids.append(iid)
        texts: dict[str, str | None] = {}
        for fname in TEXT_FIELDS:
            col = card.fields.get(fname)
            v = row.get(col) if col else None
            if v is None and col and any(k.startswith(col + ".") for k in row):
                v = {}  # the source holds a mapping here (flattened into dotted keys)
            if isinstance(v, (dict, list, bytes)):
                raise SuiteError(
                    f"text field holds a {type(v).__name__} (item {iid!r})",
                    where=where,
                    field=f"fields.{fname}",
                    expected="a string",
                    actual=type(v).__name__,
                    fix="map a nested string with a dotted path (e.g. meta.text)",
                )
            texts[fname] = None if is_missing(v) else str(v)
        image = _image_bytes(card, cpath, row, iid) if card.image_column else None
        media = _media_cell(card, cpath, row) if card.media is not None else None
        if media is not None:
            image = media.image if card.media and card.media.image else image
        has_media = media is not None and (
            media.image is not None or media.video is not None or media.error is not None
        )
        if not any(texts.values()) and image is None and not has_media:
            raise SuiteError(
                f"item {iid!r} has no text in any field",
                where=where,
                field="fields",
                expected="at least one non-empty text field per item",
                actual="all empty",
                fix="remove the row or map another column",
            )
        for j, rule in enumerate(card.labels.rules if gold is None else ()):
            assert rule.category is not None  # LabelSpec guarantees it
            labels[i, kidx[rule.category]] = apply_rule(
                rule, row, iid, where, f"labels.rules[{j}]", rule_stats[j]
            )
        if gold is not None:
            labels[i] = gold[i]
        if card.labels.list_column:
            lcol = card.labels.list_column
            lst = row.get(lcol)
            if lst is None and any(k.startswith(lcol + ".") for k in row):
                lst = {}  # a mapping (flattened): {"hate": false} must not read as "none"
            if lst is None:
                lst = []
            if isinstance(lst, str):
                lst = [x.strip() for x in lst.split(",") if x.strip()]
            if not isinstance(lst, (list, tuple)):
                raise SuiteError(
                    f"label list holds a {type(lst).__name__} (item {iid!r})",
                    where=where,
                    field=f"labels.list_column ({lcol})",
                    expected="a list of category ids (or a comma-separated string)",
                    actual=type(lst).__name__,
                    fix="write the violated categories as a list, e.g. [hate]",
                )
            for c in lst:
                if c not in kidx:
                    raise SuiteError(
                        f"label not in the policy (item {iid!r})",
                        where=where,
                        field=f"labels.list_column ({card.labels.list_column})",
                        expected=f"categories of {policy.ref}: {list(cats)}",
                        actual=repr(c),
                        fix="fix the label or the policy mapping",
                    )
                if c not in covers:
                    raise SuiteError(
                        f"label for a category the suite does not cover (item {iid!r})",
                        where=where,
                        field="labels.covers",
                        expected=f"{c!r} in covers",
                        actual=str(list(covers)),
                    )
            listed = set(lst)
            for c in covers:
                if labels[i, kidx[c]] == UNKNOWN or c in listed:
                    labels[i, kidx[c]] = POSITIVE if c in listed else NEGATIVE
        if card.labels.overall is not None:
            overall[i] = apply_rule(
                card.labels.overall, row, iid, where, "labels.overall", overall_stats
            )
        else:
            sub = labels[i, cover_idx]
            overall[i] = (
                POSITIVE
                if (sub == POSITIVE).any()
                else NEGATIVE
                if (sub == NEGATIVE).all()
                else UNKNOWN
            )
        rec: dict[str, Any] = {"id": iid, **texts}
        rec["rationale"] = (
            str(row.get(card.rationale_column))
            if card.rationale_column and not is_missing(row.get(card.rationale_column))
            else None
        )
        for s in slice_names:
            if s in card.slices:
                v = row.get(card.slices[s])
                rec[s] = None if is_missing(v) else str(v)
            else:
                rec[s] = card.constants[s]
        if card.has_image:
            rec["image"] = {"bytes": image, "path": None} if image is not None else None
        if card.media is not None and media is not None:
            if card.media.video:
                rec["video"] = media.video
                rec["video_frames"] = [
                    {
                        "image": {"bytes": f.png, "path": None},
                        "index": f.index,
                        "timestamp_s": f.timestamp_s,
                    }
                    for f in media.frames
                ]
            rec["media_error"] = media.error
            rec["media_error_type"] = media.error_type
        rec["content_hash"] = content_hash(
            texts, image, tuple(media.hash_parts()) if media is not None else ()
        )
        out_rows.append(rec)

    warnings = [
        w
        for j, rule in enumerate(card.labels.rules)
        for w in rule_warnings(rule, rule_stats[j], f"labels.rules[{j}]")
    ]
    if card.labels.overall is not None:
        warnings += rule_warnings(card.labels.overall, overall_stats, "labels.overall")
    ds, digest = _to_dataset(
        out_rows,
        labels,
        overall,
        cats,
        slice_names,
        with_image=card.has_image,
        with_video=card.media is not None and card.media.video is not None,
        with_media_errors=card.media is not None,
    )
    return LoadedSuite(
        card=card,
        card_path=cpath,
        split=split,
        dataset=ds,
        categories=cats,
        covers=covers,
        labels=labels,
        overall=overall,
        digest=digest,
        source=source,
        slice_names=slice_names,
        warnings=warnings,
    )


def _media_root(card: SuiteCard, cpath: Path) -> Path:
    """The folder media paths resolve from; SuiteError when it does not exist."""
    assert card.media is not None
    raw = card.media.root.replace("${data_root}", str(data_root()))
    p = Path(os.path.expandvars(raw)).expanduser()
    root = (p if p.is_absolute() else cpath.parent / p).resolve()
    if not root.is_dir():
        raise SuiteError(
            "media root folder not found",
            where=str(cpath),
            field="media.root",
            expected="an existing folder (relative to the card's folder, ${data_root} allowed)",
            actual=str(root),
            fix="create the folder or correct media.root",
        )
    return root


def _media_cell(card: SuiteCard, cpath: Path, row: dict[str, Any]) -> MediaCell:
    from audit.media.cells import load_cell

    m = card.media
    assert m is not None
    return load_cell(
        row,
        root=_media_root(card, cpath),
        image_column=m.image,
        video_column=m.video,
        frames=m.frames.model_dump() if m.frames is not None else None,
        max_bytes=m.max_file_bytes,
        max_pixels=m.max_image_pixels,
        max_decoded_frames=m.max_decoded_frames,
    )


def _image_bytes(card: SuiteCard, cpath: Path, row: dict[str, Any], iid: str) -> bytes | None:
    v = row.get(card.image_column or "")
    if is_missing(v):
        return None
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    if isinstance(v, dict) and v.get("bytes"):
        return bytes(v["bytes"])
    root = resolve_root(card, cpath) if card.source.local else cpath.parent
    p = Path(str(v))
    p = p if p.is_absolute() else root / p
    if not p.is_file():
        raise SuiteError(
            f"image file not found (item {iid!r})",
            where=str(cpath),
            field=f"image_column ({card.image_column})",
            expected="a path relative to the local root, or image bytes",
            actual=str(p),
            fix="fix the path or remove the column from the card",
        )
    return p.read_bytes()


def canonical_features(
    categories: tuple[str, ...],
    slice_names: list[str],
    *,
    with_image: bool = False,
    with_video: bool = False,
    with_media_errors: bool = False,
) -> datasets.Features:
    import datasets

    feats: dict[str, Any] = {"id": datasets.Value("string")}
    for f in TEXT_FIELDS:
        feats[f] = datasets.Value("string")
    if with_image:
        feats["image"] = datasets.Image()
    if with_video:
        feats["video"] = {"path": datasets.Value("string"), "sha256": datasets.Value("string")}
        feats["video_frames"] = datasets.List(
            {
                "image": datasets.Image(),
                "index": datasets.Value("int32"),
                "timestamp_s": datasets.Value("float64"),
            }
        )
    if with_media_errors:
        feats["media_error"] = datasets.Value("string")
        feats["media_error_type"] = datasets.Value("string")
    feats["labels"] = {c: datasets.ClassLabel(names=LABEL_NAMES) for c in categories}
    feats["label_overall"] = datasets.ClassLabel(names=LABEL_NAMES)
    feats["rationale"] = datasets.Value("string")
    for s in slice_names:
        feats[s] = datasets.Value("string")
    feats["content_hash"] = datasets.Value("string")
    return datasets.Features(feats)


def _to_dataset(
    rows: list[dict[str, Any]],
    labels: np.ndarray,
    overall: np.ndarray,
    cats: tuple[str, ...],
    slice_names: list[str],
    *,
    with_image: bool = False,
    with_video: bool = False,
    with_media_errors: bool = False,
) -> tuple[datasets.Dataset, str]:
    import datasets

    feats = canonical_features(
        cats,
        slice_names,
        with_image=with_image,
        with_video=with_video,
        with_media_errors=with_media_errors,
    )
    cols: dict[str, list[Any]] = {k: [r[k] for r in rows] for k in rows[0]}
    cols["labels"] = [dict(zip(cats, map(int, lab))) for lab in labels]
    cols["label_overall"] = [int(v) for v in overall]
    ordered = {k: cols[k] for k in feats}
    ds = datasets.Dataset.from_dict(ordered, features=feats)
    hashed = dict(ordered)
    if with_image:  # digest image content by hash, not raw bytes in JSON
        hashed["image"] = [
            None if im is None else hashlib.sha256(im["bytes"]).hexdigest()
            for im in ordered["image"]
        ]
    if with_video:  # frames by hash too, with their index and timestamp
        hashed["video_frames"] = [
            [
                {
                    "sha256": hashlib.sha256(f["image"]["bytes"]).hexdigest(),
                    "index": f["index"],
                    "timestamp_s": f["timestamp_s"],
                }
                for f in frames
            ]
            for frames in ordered["video_frames"]
        ]
    return ds, content_digest(hashed, feats)


def content_digest(columns: dict[str, list[Any]], features: datasets.Features) -> str:
    """sha256 over the schema (with label names) and every row, sorted by id.

    Independent of Arrow layout and ``Dataset._fingerprint``: the same content
    gives the same digest whether loaded from CSV, JSONL, Parquet or the hub.
    """
    h = hashlib.sha256()
    h.update(json.dumps(features.to_dict(), sort_keys=True).encode("utf-8"))
    keys = list(columns)
    order = sorted(range(len(columns["id"])), key=lambda i: columns["id"][i])
    for i in order:
        row = {k: columns[k][i] for k in keys}
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def suite_items(suite: LoadedSuite) -> list[Item]:
    """The suite's rows as moderator inputs (text fields present, slices as context)."""
    has_image = "image" in suite.dataset.column_names
    names = ["id", "content_hash", *TEXT_FIELDS, *suite.slice_names]
    cols = suite.dataset.select_columns(names).to_dict()
    images: list[Any] = []
    if has_image:
        import datasets

        raw = suite.dataset.cast_column("image", datasets.Image(decode=False))["image"]
        images = [None if im is None else im["bytes"] for im in raw]
    videos, frames, errors, error_types = _media_columns(suite)
    out: list[Item] = []
    for i, iid in enumerate(cols["id"]):
        fields = {f: cols[f][i] for f in TEXT_FIELDS if cols[f][i]}
        ctx = {s: cols[s][i] for s in suite.slice_names if cols[s][i] is not None}
        out.append(
            Item(
                id=iid,
                content_hash=cols["content_hash"][i],
                fields=fields,
                image=images[i] if has_image else None,
                context=ctx,
                video=videos[i],
                video_frames=frames[i],
                media_error=errors[i],
                media_error_type=error_types[i],
            )
        )
    return out


def _media_columns(
    suite: LoadedSuite,
) -> tuple[list[str | None], list[tuple[Frame, ...]], list[str | None], list[str | None]]:
    """Per item: resolved video path, sampled frames, media error and its type."""
    ds, n = suite.dataset, len(suite.dataset)
    cols = set(ds.column_names)
    videos: list[str | None] = [None] * n
    frames: list[tuple[Frame, ...]] = [()] * n
    if "video" in cols and suite.card.media is not None:
        import datasets

        root = _media_root(suite.card, suite.card_path)
        videos = [None if v is None else str(root / v["path"]) for v in ds["video"]]
        raw = ds.cast_column(
            "video_frames",
            datasets.List(
                {
                    "image": datasets.Image(decode=False),
                    "index": datasets.Value("int32"),
                    "timestamp_s": datasets.Value("float64"),
                }
            ),
        )["video_frames"]
        frames = [
            tuple(Frame(f["index"], f["timestamp_s"], f["image"]["bytes"]) for f in fl or [])
            for fl in raw
        ]
    errors: list[str | None] = list(ds["media_error"]) if "media_error" in cols else [None] * n
    types: list[str | None] = (
        list(ds["media_error_type"]) if "media_error_type" in cols else [None] * n
    )
    return videos, frames, errors, types
