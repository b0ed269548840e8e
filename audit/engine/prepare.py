"""Preparing a run: everything that can be validated is validated here, before a run
directory exists, so bad input never leaves a record behind (config, moderator params,
policy, suites, metric names, output and cache folders, moderators built, missing heads
fitted)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.errors import AuditError, ConfigError, RunError

if TYPE_CHECKING:
    from rich.console import Console

    from audit.config import ModeratorSpec, RunConfig
    from audit.moderators.base import Moderator
    from audit.policy import Policy
    from audit.suites import LoadedSuite


@dataclass
class Prepared:
    """A fully validated run, before any scoring."""

    config: RunConfig
    config_path: Path
    """the config file, or ``<dict>`` / ``<RunConfig>`` for a config given in Python"""
    policy: Policy
    suites: list[LoadedSuite]
    skipped: list[dict[str, str]]
    moderators: list[tuple[ModeratorSpec, Moderator]]


def resolve_config(
    config: str | Path | Mapping[str, Any] | RunConfig, overrides: tuple[str, ...] = ()
) -> tuple[RunConfig, Path, Path]:
    """A run config from a YAML path, a dict or a :class:`RunConfig`, validated like a
    file (moderator params included), with ``--set`` style ``overrides`` applied.

    Returns:
        The config, the name it is recorded under (the file, or ``<dict>`` /
        ``<RunConfig>``) and the folder relative paths in it resolve against (the
        file's folder; the working directory for a config given in Python).
    """
    import copy

    from audit._util.validation import parse_model
    from audit.config import RunConfig, apply_override, load_config
    from audit.moderators.checks import check_moderator_params as validate_moderator_params

    if isinstance(config, (str, Path)):
        path = Path(config)
        cfg = load_config(path, overrides)
        validate_moderator_params(cfg, str(path) + (" (with --set overrides)" if overrides else ""))
        return cfg, path, path.parent
    if isinstance(config, RunConfig):
        if not overrides:
            validate_moderator_params(config, "<RunConfig>")
            return config, Path("<RunConfig>"), Path.cwd()
        data = config.model_dump(mode="json")
        label = "<RunConfig>"
    elif isinstance(config, Mapping):
        data = copy.deepcopy(dict(config))
        label = "<dict>"
    else:
        raise ConfigError(
            "a run config must be a path, a dict or a RunConfig",
            where="audit.run",
            field="config",
            expected="str | Path | dict | RunConfig",
            actual=type(config).__name__,
        )
    for o in overrides:
        apply_override(data, o)
    where = label + (" (with overrides)" if overrides else "")
    cfg = parse_model(RunConfig, data, where)
    validate_moderator_params(cfg, where)
    return cfg, Path(label), Path.cwd()


def prepare(
    config_path: str | Path | Mapping[str, Any] | RunConfig,
    overrides: tuple[str, ...] = (),
    *,
    console: Console | None = None,
    fit_heads: bool = True,
) -> Prepared:
    """Validate config, policy, suites and moderator specs; build moderators.

    ``config_path`` is a YAML path, a dict or a :class:`RunConfig` (:func:`resolve_config`).
    With ``fit_heads=False`` (``audit validate``) an ``embedding_head`` whose head is
    missing but has ``fit:`` is validated without training it and not built. Hub
    libraries run offline meanwhile (:func:`audit._util.settings.scoped_env`).
    """
    from audit._util.settings import scoped_env

    with scoped_env():
        return _prepare(config_path, overrides, console, fit_heads)


def _prepare(
    config_path: str | Path | Mapping[str, Any] | RunConfig,
    overrides: tuple[str, ...],
    console: Console | None,
    fit_heads: bool,
) -> Prepared:
    from audit.config import check_against_policy
    from audit.policy import load_policy

    cfg, path, base = resolve_config(config_path, overrides)
    policy = load_policy(cfg.policy, base=base)
    check_against_policy(cfg, policy.category_ids, str(path))
    _check_metric_names(cfg, str(path))
    if cfg.output_dir:
        usable_dir(Path(cfg.output_dir), where=str(path), field="output_dir", create=False)
    if cfg.runner.cache_dir:
        usable_dir(
            Path(cfg.runner.cache_dir), where=str(path), field="runner.cache_dir", create=False
        )
    suites, skipped = _load_suites(cfg, path, policy, console)
    _check_moderator_suites(cfg, path, suites)
    mods = _build_moderators(cfg, path, policy, console, fit_heads)
    return Prepared(cfg, path, policy, suites, skipped, mods)


def _load_suites(
    cfg: RunConfig, path: Path, policy: Policy, console: Console | None
) -> tuple[list[LoadedSuite], list[dict[str, str]]]:
    """The config's suites, loaded; missing data of an ``optional`` suite skips it (with
    the reason), a suite split listed twice or no loadable suite at all is an error."""
    from audit.suites import SuiteDataMissing, load_suite

    suites: list[LoadedSuite] = []
    skipped: list[dict[str, str]] = []
    seen_cards: dict[tuple[Path, str], int] = {}
    for i, ref in enumerate(cfg.suites):
        try:
            suites.append(load_suite(ref.name, policy, split=ref.split, limit=ref.limit))
            key = (suites[-1].card_path.resolve(), suites[-1].split)
            if key in seen_cards:
                raise ConfigError(
                    "the same suite split is listed twice",
                    where=str(path),
                    field=f"suites[{i}]",
                    expected="each suite card and split once",
                    actual=f"{ref.name!r} is suites[{seen_cards[key]}] again ({key[0]})",
                    fix="remove one of the two entries",
                )
            seen_cards[key] = i
            if console is not None:
                for w in suites[-1].warnings:
                    console.print(f"[yellow]warning[/] suite {ref.name}:{ref.split}: {w}")
        except SuiteDataMissing as exc:
            if not ref.optional:
                raise
            skipped.append({"suite": ref.name, "reason": exc.render()})
            if console is not None:
                console.print(f"[yellow]skipping optional suite {ref.name}[/]: {exc.render()}")
    if not suites:
        raise RunError(
            "no suite could be loaded",
            where=str(path),
            field="suites",
            expected="at least one suite with data",
            actual=f"{len(skipped)} optional suite(s) skipped",
            fix="set AUDIT_DATA_ROOT or add a suite whose data is present",
        )
    return suites, skipped


def _check_moderator_suites(cfg: RunConfig, path: Path, suites: list[LoadedSuite]) -> None:
    """A moderator's ``suites:`` names only suites this config scores."""
    known = {ref.name for ref in cfg.suites} | {s.name for s in suites}
    for i, spec in enumerate(cfg.moderators):
        bad = sorted(set(spec.suites or ()) - known)
        if bad:
            raise ConfigError(
                "the moderator lists suites this config does not score",
                where=str(path),
                field=f"moderators[{i}].suites",
                expected=f"names among {sorted(known)}",
                actual=repr(bad),
                fix="use a suite's name as listed under suites: (or its card name)",
            )


def _build_moderators(
    cfg: RunConfig, path: Path, policy: Policy, console: Console | None, fit_heads: bool
) -> list[tuple[ModeratorSpec, Moderator]]:
    """Build every moderator (fitting a missing head first); with ``fit_heads=False`` one
    that would need a fit is left out. Adapter errors are re-anchored on the config."""
    from audit.moderators import MODERATORS

    mods: list[tuple[ModeratorSpec, Moderator]] = []
    for i, spec in enumerate(cfg.moderators):
        cls = MODERATORS.get(spec.type, where=str(path), field=f"moderators[{i}].type")
        params = cls.Params.model_validate(spec.params)
        if needs_fit(params) and not fit_heads:
            continue
        if needs_fit(params):
            fit_missing_head(params, policy, console)
        try:
            with status_line(console, f"loading moderator {spec.name} ({spec.type})"):
                mod = cls(params, policy)
        except AuditError as exc:
            # re-anchor the adapter's error on the config file and the moderator entry
            raise exc.relocated(str(path), f"moderators[{i}]") from None
        if spec.explain is not None:
            reason = mod.explain_unsupported()
            if reason is not None:
                raise ConfigError(
                    "explain: is set for a moderator that cannot write rationales",
                    where=str(path),
                    field=f"moderators[{i}].explain",
                    expected="an llm_judge whose preset has a rationale slot (e.g. platform_binary)",
                    actual=reason,
                    fix="remove explain:, or use an llm_judge preset that supports it",
                )
        mods.append((spec, mod))
    return mods


def needs_fit(params: Any) -> bool:
    fit, head = getattr(params, "fit", None), getattr(params, "head", None)
    return fit is not None and head is not None and not (Path(head) / "head.json").exists()


def fit_missing_head(params: Any, policy: Policy, console: Console | None) -> None:
    """An ``embedding_head`` with ``fit:`` and no head on disk is trained first."""
    from audit.moderators.classifiers.heads import train_head_on_suite

    fit, head = params.fit, params.head

    what = f"training the missing head {head} on {fit.suite}:{fit.split} (once)"
    t0 = time.perf_counter()
    with status_line(console, what) as say:
        train_head_on_suite(
            fit.suite,
            fit.split,
            Path(head),
            policy_ref=policy.ref,
            encoder=params.encoder,
            C=fit.C,
            min_positives=fit.min_positives,
            seed=fit.seed,
            status=lambda msg: say(f"{what}: {msg}"),
        )
    if console is not None:
        console.print(f"trained the head {head} ({time.perf_counter() - t0:.0f} s)")


@contextlib.contextmanager
def status_line(console: Console | None, text: str) -> Iterator[Callable[[str], None]]:
    """A live spinner line on ``console`` (nothing without one) for a slow step that
    has no item count (model loading, head training); yields a function that replaces
    the line's text. Transient: the line is gone when the step ends."""
    if console is None:
        yield lambda _msg: None
        return
    with console.status(text) as st:
        yield lambda msg: st.update(msg)


def _check_metric_names(cfg: RunConfig, where: str) -> None:
    """Every name in ``metrics.names`` is a registered metric (did-you-mean otherwise)."""
    from audit.metrics import get_metric

    for i, name in enumerate(cfg.metrics.names or ()):
        try:
            get_metric(name)
        except AuditError as exc:
            raise ConfigError(
                exc.message,
                where=where,
                field=f"metrics.names[{i}]",
                expected=exc.expected or "a registered metric (audit list metrics)",
                actual=repr(name),
                fix=exc.fix or "see 'audit list metrics'",
            ) from None


def usable_dir(path: Path, *, where: str, field: str, create: bool) -> Path:
    """``path`` as a directory the run can write to, or a ConfigError before any work.

    A file, a special path (``/dev/null``), a folder under a file, or one that cannot
    be created or written is refused with the config field that named it; nothing is
    left behind. With ``create`` the directory is made (the run's own folder).
    """
    p = path.expanduser()
    problem = None
    if p.exists() and not p.is_dir():
        problem = "a file" if p.is_file() else "a special file"
    else:
        probe = p
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            problem = f"under {probe}, which is not a directory"
        elif not os.access(probe, os.W_OK | os.X_OK):
            problem = f"not writable ({probe})"
    if problem is None and create:
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problem = f"cannot be created ({exc.strerror or exc})"
    if problem is not None:
        raise ConfigError(
            "not a usable directory",
            where=where,
            field=field,
            expected="a writable directory (created if missing)",
            actual=f"{str(p)[:200]}: {problem}",
            fix=f"point {field} at a folder you can write to",
        )
    return p
