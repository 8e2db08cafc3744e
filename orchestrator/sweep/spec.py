"""Sweep files: YAML → a validated `SweepSpec`, errors naming the field and line.

A sweep names a base experiment spec (relative to the sweep file), the overrides to try
(a grid and/or a list of points, in the spec's dotted keys), repetitions, the phones and
their health gates. Loading reuses `orchestrator.spec`'s YAML line map and error wording.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from orchestrator.errors import SpecError, SpecProblem
from orchestrator.spec import HealthSpec, StrictModel, _problems
from orchestrator.spec_yaml import YamlRefused, read_yaml

SDK_RULE = re.compile(r"^\s*(>=|<=|==|=|>|<)?\s*(\d+)\s*$")
LOCAL_SERVER = "local"  # the default adb server (ORCH_ADB_HOST / ORCH_ADB_PORT)


def sweep_error(problems: list[SpecProblem], *, source: str | None = None) -> SpecError:
    """A SpecError about a sweep file, with a hint that fits it."""
    err = SpecError(problems, source=source)
    err.hint = "Fix the sweep file; `orch sweep FILE --dry-run` checks it without running."
    return err


class DeviceSelector(StrictModel):
    """Phones by what they are; every field that is set must match. `all` is the empty one."""

    model: str | None = None  # glob on ro.product.model, case-insensitive: `Pixel*`
    manufacturer: str | None = None  # glob, case-insensitive: `samsung`
    sdk: str | None = None  # `34`, `>=30`, `<33`
    # adb servers to look on: `local` (the default one) and/or `HOST:PORT` of other hosts.
    servers: list[str] = Field(default_factory=lambda: [LOCAL_SERVER], min_length=1)

    @field_validator("sdk", mode="before")
    @classmethod
    def _sdk(cls, v: Any) -> Any:
        if v is None:
            return v
        text = str(v)
        if not SDK_RULE.match(text):
            raise ValueError(f"must be a number with an optional >=, <=, >, <, ==; got {v!r}")
        return text

    @field_validator("servers")
    @classmethod
    def _servers(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s != LOCAL_SERVER and not re.fullmatch(r"[^\s:]+:\d{1,5}", s)]
        if bad:
            raise ValueError(f"each server is `local` or HOST:PORT, got {bad}")
        return v


class SweepSpec(StrictModel):
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")  # default: the file's stem
    description: str = ""
    base: str  # the experiment spec, relative to the sweep file
    variants: list[str] | None = None  # which of the base's variants (default: all)
    # Fixed overrides for every run, in the spec's dotted keys (`model.alpha: 0.25`).
    overrides: dict[str, Any] = Field(default_factory=dict, alias="set")
    # key → values; every combination is a point. `finetune_from` is a shorthand that makes
    # each point one variant training from that layer (null: head only).
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    # Explicit points (each a mapping of overrides); crossed with the grid when both are given.
    points: list[dict[str, Any]] = Field(default_factory=list)
    repetitions: int = Field(1, ge=1)
    devices: list[str] | DeviceSelector = Field(default_factory=DeviceSelector)
    health: HealthSpec | None = None  # replaces the base spec's `health:` for every run
    reassign_after_s: float = Field(300.0, ge=0)  # a phone away this long loses its runs
    max_attempts: int = Field(2, ge=1)  # a run that fails this often is marked failed

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = [k for k, vals in v.items() if not vals]
        if empty:
            raise ValueError(f"each grid key needs at least one value; empty: {empty}")
        return v

    @field_validator("devices", mode="before")
    @classmethod
    def _devices(cls, v: Any) -> Any:
        if v == "all" or v is None:
            return {}
        if isinstance(v, str):
            return [v]
        if isinstance(v, list) and not v:
            raise ValueError("name at least one phone, or use `all` or a selector")
        return v


def _selector_problems(raw: Any, lines: dict) -> list[SpecProblem]:
    """A selector mapping checked on its own, so a typo is named (not a union's noise)."""

    class _Wrap(StrictModel):
        devices: DeviceSelector

    try:
        _Wrap.model_validate({"devices": raw})
    except ValidationError as err:
        return _problems(err, lines, set())
    return []


def load_sweep_text(text: str, *, source: str | None = None) -> SweepSpec:
    if not text.strip():
        raise sweep_error([SpecProblem("(file)", "the sweep file is empty; see "
                                     "experiments/sweep_*.yaml for examples")], source=source)
    try:
        raw, lines = read_yaml(text)
    except YamlRefused as e:
        raise sweep_error([e.problem], source=source) from None
    if not isinstance(raw, dict):
        raise sweep_error([SpecProblem("(file)", "expected a mapping of keys (base, grid, "
                                     f"devices, …), got {type(raw).__name__}", 1)],
                        source=source)
    if "base" not in raw and {"data", "variants"} & set(raw):
        raise sweep_error([SpecProblem("base", "missing: this looks like an experiment spec; "
                                       "a sweep names one with `base: SPEC.yaml` (see "
                                       "experiments/sweep_*.yaml), or run it with `orch run`")],
                          source=source)
    if isinstance(raw.get("devices"), dict):
        problems = _selector_problems(raw["devices"], lines)
        if problems:
            raise sweep_error(problems, source=source)
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as err:
        raise sweep_error(_problems(err, lines, set()), source=source) from None


def read_sweep(path: str | Path) -> tuple[SweepSpec, str]:
    """The sweep in `path` and its text (for line numbers of later problems)."""
    p = Path(path)
    if not p.is_file():
        raise sweep_error([SpecProblem("(file)", f"no sweep file at {p}")])
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise sweep_error([SpecProblem("(file)", "not a text file (expected YAML)")],
                        source=str(p)) from None
    return load_sweep_text(text, source=str(p)), text
