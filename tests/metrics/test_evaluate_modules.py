"""The local Hugging Face ``evaluate`` modules load offline and agree with the pure functions.

``evaluate`` reads its cache locations when it is imported, so the loading happens in one
fresh interpreter with ``HF_MODULES_CACHE`` / ``HF_HOME`` under ``tmp_path`` and every
offline switch set; the test then checks the scripts really were copied there.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from audit import metrics as M
from audit.errors import ConfigError

HEADLINE = [
    "precision",
    "recall",
    "f1",
    "fpr",
    "auprc",
    "auroc",
    "ece",
    "brier",
    "recall_at_precision",
    "tpr_at_fpr",
]
PRED_METRICS = {"precision", "recall", "f1", "fpr"}

_SCRIPT = r"""
import json, math, sys
import evaluate
from audit.metrics import evaluate_module_path
data = json.loads(sys.argv[1])
y, s, p = data["y"], [float("nan") if v is None else v for v in data["s"]], data["p"]
out = {}
for name in data["names"]:
    module = evaluate.load(evaluate_module_path(name))
    if name in data["pred"]:
        r = module.compute(predictions=p, references=y, scores=s)
    else:
        kw = {"target": 0.8} if name == "recall_at_precision" else {}
        r = module.compute(predictions=s, references=y, **kw)
    v = r[name]
    out[name] = {"value": None if math.isnan(v) else v, "n": r["n"],
                 "n_excluded": r["n_excluded"], "reason": r["reason"]}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def data() -> dict[str, list]:
    rng = np.random.default_rng(0)
    n = 200
    y = (rng.random(n) < 0.3).astype(int)
    s = np.round(np.clip(0.6 * rng.random(n) + 0.4 * y * rng.random(n), 0, 1), 2)
    y[rng.random(n) < 0.1] = -1
    s[rng.random(n) < 0.05] = np.nan
    p = (s >= 0.5).astype(int)
    return {
        "y": y.tolist(),
        "s": [None if math.isnan(v) else float(v) for v in s],
        "p": p.tolist(),
    }


def test_every_headline_metric_has_a_module() -> None:
    assert set(HEADLINE) <= set(M.evaluate_module_names())
    for name in HEADLINE:
        path = Path(M.evaluate_module_path(name))
        assert path.is_absolute() and (path / f"{name}.py").is_file()
        assert f'metric_module("{name}")' in (path / f"{name}.py").read_text()
    with pytest.raises(ConfigError, match="no evaluate module"):
        M.evaluate_module_path("accuracy")


def test_evaluate_load_offline_matches_pure_functions(tmp_path: Path, data: dict) -> None:
    env = dict(os.environ)
    repo = str(Path(__file__).resolve().parents[2])  # `audit` importable without installing
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH")) if p)
    env.update(
        HF_EVALUATE_OFFLINE="1",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf_home"),
        HF_MODULES_CACHE=str(tmp_path / "modules"),
        HF_METRICS_CACHE=str(tmp_path / "metrics"),
    )
    payload = json.dumps({**data, "names": HEADLINE, "pred": sorted(PRED_METRICS)})
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, payload],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    copied = {p.parent.parent.name for p in (tmp_path / "modules").rglob("*.py")}
    assert set(HEADLINE) <= copied  # scripts were copied into the tmp cache, not ~/.cache

    y = np.array(data["y"])
    s = np.array([np.nan if v is None else v for v in data["s"]])
    p = np.array(data["p"], dtype=bool)
    for name in HEADLINE:
        spec = M.get_metric(name)
        if name in PRED_METRICS:
            ref = spec.fn(y, p, score=s)
        elif name == "recall_at_precision":
            ref = spec.fn(y, s, target=0.8)
        else:
            ref = spec(y, s)
        assert got[name]["value"] == pytest.approx(ref.value, abs=1e-12), name
        assert got[name]["n"] == ref.n and got[name]["n_excluded"] == ref.n_excluded
        assert ref.n_excluded > 0
