"""Every registered adapter follows the moderator contract; the package imports light."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import BaseModel

from audit.moderators import MODERATORS, Moderator, ModeratorParams
from audit.moderators.fake import FakeModerator

BUILTIN = {"embedding_head", "fake", "hf_classifier", "profanity_baseline"}


def test_builtins_registered():
    assert set(MODERATORS.names()) >= BUILTIN


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_class_contract(name):
    cls = MODERATORS.get(name)
    assert issubclass(cls.Params, ModeratorParams)
    assert issubclass(cls.Params, BaseModel)
    assert cls.Params.model_config["extra"] == "forbid"
    assert cls.Params.model_config["frozen"] is True
    assert isinstance(cls.description, str) and "\n" not in cls.description
    assert cls.kind == "classifier"
    for method in ("fingerprint", "predict", "close"):
        assert callable(getattr(cls, method))


def test_fake_satisfies_protocol(policy):
    assert isinstance(FakeModerator(FakeModerator.Params(), policy), Moderator)


def test_import_is_light():
    code = (
        "import sys, audit.moderators; "
        "heavy = [m for m in ('torch', 'transformers', 'sklearn', 'sentence_transformers',"
        " 'profanity_check', 'numpy') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_defaults_fit_the_platform_policy():
    from audit.errors import AuditError
    from audit.policy import load_policy

    try:
        platform = load_policy("platform-v1")
    except AuditError as exc:  # pragma: no cover - policy file not there yet
        pytest.skip(f"platform-v1 policy not loadable: {exc}")
    from audit.moderators.classifiers.profanity import ProfanityBaseline

    assert set(ProfanityBaseline.Params().categories) <= set(platform.category_ids)
    fake = FakeModerator(FakeModerator.Params(), platform)
    assert fake.categories == platform.category_ids
