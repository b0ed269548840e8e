"""Builders for policy files, manifests and suites under a test's tmp folder."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from audit._util.settings import repo_root

POLICIES = repo_root() / "configs" / "policies"


def policy_data(ref: str = "platform-v2") -> dict[str, Any]:
    """The shipped policy file as a mutable dict."""
    data: dict[str, Any] = yaml.safe_load((POLICIES / f"{ref}.yaml").read_text(encoding="utf-8"))
    return copy.deepcopy(data)


def write_policy(folder: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as ``<id>-v<version>.yaml`` under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"{data['id']}-v{data['version']}.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return p


def copy_shipped(folder: Path) -> tuple[Path, Path]:
    """platform-v1 and platform-v2 copied into ``folder``."""
    return write_policy(folder, policy_data("platform-v1")), write_policy(
        folder, policy_data("platform-v2")
    )


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def harassment_rows() -> list[dict[str, Any]]:
    """A small platform-v1 suite exercising every branch of the v2 harassment split."""
    return [
        {
            "id": "r01",
            "caption": "dirty immigrant, go home",
            "labels": ["hate", "harassment"],
            "surface": "comment",
        },
        {
            "id": "r02",
            "caption": "I know where you park, you're done",
            "labels": ["harassment", "violent_threats"],
            "surface": "comment",
        },
        {
            "id": "r03",
            "caption": "she lives at 14 Birchwood Ln, go tell her",
            "labels": ["harassment"],
            "surface": "video",
        },
        {
            "id": "r04",
            "caption": "rating the girls from my school, #3 is a 2/10",
            "labels": ["harassment"],
            "surface": "photo",
        },
        {
            "id": "r05",
            "caption": "you're the ugliest person on this app",
            "labels": ["harassment"],
            "surface": "comment",
        },
        {"id": "r06", "caption": "lovely sunset at the beach", "labels": [], "surface": "photo"},
        {
            "id": "r07",
            "caption": "buy 10k followers for $5",
            "labels": ["spam"],
            "surface": "comment",
        },
        {
            "id": "r08",
            "caption": "like and share or bad luck for seven years",
            "labels": ["spam"],
            "surface": "video",
        },
        {
            "id": "r09",
            "caption": "[restricted: sexualised comment about a minor]",
            "labels": ["minor_sexual"],
            "surface": "comment",
        },
        {
            "id": "r10",
            "caption": "a history of slurs, explained to condemn them",
            "labels": [],
            "surface": "video",
        },
        {
            "id": "r11",
            "caption": "stop talking, nobody likes you, loser",
            "labels": ["harassment"],
            "surface": "comment",
        },
        {"id": "r12", "caption": "my cat knocked over a plant", "labels": [], "surface": "video"},
    ]


CARD: dict[str, Any] = {
    "card_version": 1,
    "name": "hx",
    "version": "1.0",
    "description": "tiny platform-v1 suite for change-management tests",
    "policy": "platform-v1",
    "license": "test",
    "source": {"local": {"root": "data", "format": "jsonl", "splits": {"test": "test.jsonl"}}},
    "id": {"column": "id"},
    "fields": {"caption": "caption"},
    "labels": {"covers": "all", "list_column": "labels"},
    "slices": {"surface": "surface"},
    "default_split": "test",
}


def write_suite(
    root: Path, rows: list[dict[str, Any]] | None = None, *, name: str = "hx", **card: Any
) -> Path:
    """A suite folder ``root/name`` with its card; returns the card path."""
    d = root / name
    c = {**copy.deepcopy(CARD), "name": name, **card}
    (d / "data").mkdir(parents=True, exist_ok=True)
    (d / "suite.yaml").write_text(yaml.safe_dump(c, sort_keys=False), encoding="utf-8")
    write_jsonl(d / "data" / "test.jsonl", harassment_rows() if rows is None else rows)
    return d / "suite.yaml"


def write_yaml(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path
