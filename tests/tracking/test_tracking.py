from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from audit.tracking.mirroring import _setup, metric_key, reap_orphans, slug


def test_metric_keys_are_slugs() -> None:
    assert metric_key("Short Video", "hate", "f1") == "short_video/hate/f1"
    assert slug("a/B c:d") == "a/b_c_d"


def test_orphaned_running_run_is_reaped(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, exp_id = _setup(uri, "t", tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    run = client.create_run(
        exp_id, tags={"audit.host": socket.gethostname(), "audit.pid": str(dead.pid)}
    )
    alive = client.create_run(exp_id, tags={"audit.host": socket.gethostname(), "audit.pid": "1"})
    assert reap_orphans(client, exp_id) == 1
    assert client.get_run(run.info.run_id).info.status == "KILLED"
    assert client.get_run(alive.info.run_id).info.status == "RUNNING"
