"""The media moderators follow the adapter contract and keep ``audit.moderators`` light."""

from __future__ import annotations

import subprocess
import sys

import pytest

from audit.moderators import MODERATORS, ModeratorParams


@pytest.mark.parametrize("name", ["image_classifier", "fusion"])
def test_registered_with_contract(name: str) -> None:
    cls = MODERATORS.get(name)
    assert issubclass(cls.Params, ModeratorParams)
    assert cls.Params.model_config["extra"] == "forbid" and cls.Params.model_config["frozen"]
    assert isinstance(cls.description, str) and "\n" not in cls.description
    for method in ("fingerprint", "predict", "close"):
        assert callable(getattr(cls, method))


def test_media_imports_stay_light() -> None:
    code = (
        "import sys, audit.moderators, audit.media, audit.cli.media; "
        "heavy = [m for m in ('numpy', 'av', 'PIL', 'onnxruntime') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
