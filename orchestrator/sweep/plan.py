"""Expanding a sweep into planned runs: points (list × grid) × variants × repetitions, each
with its fully resolved experiment spec and the label that names it in Table 1.

A run's label is its variant plus the point (`method2(conv_pw_7,cpu)`), so `orch results
compare`, which keys by variant × device, keeps every point on its own row.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError, SpecProblem
from orchestrator.spec import ExperimentSpec, _line_for, _line_map, load_spec_text, spec_hash
from orchestrator.sweep.spec import SweepSpec, sweep_error

SHORTHAND = "finetune_from"
FROM_SET = " (from --set)"
_PATH_KEYS = ("data.source", "model.weights")


@dataclass(frozen=True)
class Point:
    """One combination of overrides; `origin` says where each key came from in the file."""

    overrides: dict[str, Any]
    origin: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class PlannedRun:
    label: str
    variant: str
    spec: ExperimentSpec  # holds only `variant`
    point: dict[str, Any]
    repetition: int


def expand_points(sweep: SweepSpec) -> list[Point]:
    """Listed points × grid combinations, in file order (no points and no grid: one point)."""
    listed = [Point(dict(p), {k: ("points", str(i), k) for k in p})
              for i, p in enumerate(sweep.points)] or [Point({}, {})]
    keys = list(sweep.grid)
    combos = itertools.product(*(range(len(sweep.grid[k])) for k in keys))
    grid = [Point({k: sweep.grid[k][i] for k, i in zip(keys, idx, strict=True)},
                  {k: ("grid", k, str(i)) for k, i in zip(keys, idx, strict=True)})
            for idx in combos]
    out = []
    for p in listed:
        for g in grid:
            both = sorted(set(p.overrides) & set(g.overrides))
            if both:
                raise sweep_error([SpecProblem(f"grid.{both[0]}", "also set by a listed point; "
                                             "set each key in one place")])
            out.append(Point({**p.overrides, **g.overrides}, {**p.origin, **g.origin}))
    return out


def _absolute(key: str, value: Any, base: Path) -> Any:
    """Relative host paths in the sweep file are relative to the sweep file."""
    if key not in _PATH_KEYS or not isinstance(value, str) or "\0" in value:
        return value  # a NUL byte: the spec's validation refuses it, naming the field
    if key == "data.source":
        kind, sep, path = value.partition(":")
        if sep and kind == "host" and path and not Path(path).is_absolute():
            return f"host:{(base / path).resolve()}"
        return value
    if value not in ("imagenet", "none") and not Path(value).is_absolute():
        return str((base / value).resolve())
    return value


def _as_set(key: str, value: Any) -> str:
    return f"{key}={json.dumps(value)}"  # JSON is YAML: parse_override reads it back typed


def _variant_for_split(base: ExperimentSpec, split: str | None) -> str:
    """The base variant of the same kind (head only or fine-tuning), else the paper's name."""
    for name, v in base.variants.items():
        if (v.finetune_from is None) == (split is None):
            return name
    return "method1" if split is None else "method2"


def _render(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def make_label(variant: str, point: dict[str, Any], spec: ExperimentSpec) -> str:
    """`method2(conv_pw_7,cpu,seed=1)`: the variant and what this point sets for it."""
    parts = []
    for key, value in point.items():
        path = key.split(".")
        if key == SHORTHAND or (len(path) == 3 and path[0] == "variants"
                                and path[2] == SHORTHAND and path[1] == variant):
            parts.append(spec.variants[variant].finetune_from or "head")
        elif path[0] == "variants":
            if len(path) > 1 and path[1] != variant:
                continue  # another variant's setting does not change this run
            parts.append(f"{path[-1]}={_render(value)}")
        elif key == "delegate":
            parts.append(_render(value))
        else:
            parts.append(f"{path[-1]}={_render(value)}")
    return f"{variant}({','.join(parts)})" if parts else variant


class Planner:
    """Plans a sweep's runs against its base spec; problems name the sweep file's lines."""

    def __init__(self, sweep: SweepSpec, *, sweep_text: str, sweep_path: Path,
                 cli_sets: list[str]) -> None:
        self.sweep = sweep
        self.sweep_path = sweep_path
        self.lines = _line_map(sweep_text)
        self.cli_sets = list(cli_sets)
        self.base_path = (sweep_path.resolve().parent / sweep.base).resolve()
        if not self.base_path.is_file():
            raise self._error([SpecProblem("base", f"no experiment spec at {self.base_path}",
                                           _line_for(("base",), self.lines))])
        self.base_text = self.base_path.read_text(encoding="utf-8")
        here = sweep_path.resolve().parent
        self.fixed = {k: _absolute(k, v, here) for k, v in sweep.overrides.items()}
        if sweep.health is not None:
            self.fixed.update({f"health.{k}": v for k, v in
                               sweep.health.model_dump().items()})
        self.base = self._load({})
        self._check_conflicts()

    def _error(self, problems: list[SpecProblem]) -> SpecError:
        return sweep_error(problems, source=str(self.sweep_path))

    def _check_conflicts(self) -> None:
        cli_keys = {s.partition("=")[0].strip() for s in self.cli_sets}
        varied = set(self.sweep.grid) | {k for p in self.sweep.points for k in p}
        for key in sorted(cli_keys & varied):
            raise self._error([SpecProblem(f"--set {key}", "the sweep varies this key; "
                                           "remove it from --set or from the sweep")])
        if self.sweep.variants:
            unknown = [v for v in self.sweep.variants if v not in self.base.variants]
            if unknown:
                raise self._error([SpecProblem(
                    "variants", f"not in the base spec: {unknown} (it has "
                    f"{', '.join(self.base.variants)})", _line_for(("variants",), self.lines))])

    def _load(self, point_sets: dict[str, tuple[str, tuple[str, ...]]]) -> ExperimentSpec:
        """The base with --set, the sweep's fixed overrides and a point's, validated."""
        origin: dict[str, tuple[str, ...] | None] = {}
        sets = []
        for key, value in self.fixed.items():
            from_health = key.startswith("health.") and key not in self.sweep.overrides
            origin[key] = ("health", key.split(".", 1)[1]) if from_health else ("set", key)
            sets.append(_as_set(key, value))
        for item in self.cli_sets:  # the command line overrides the file's `set:`
            origin[item.partition("=")[0].strip()] = None
            sets.append(item)
        for key, (text, where) in point_sets.items():
            origin[key] = where
            sets.append(text)
        try:
            return load_spec_text(self.base_text, base_dir=self.base_path.parent,
                                  overrides=sets, source=str(self.base_path))
        except SpecError as e:
            raise self._remap(e, origin) from None

    def _remap(self, err: SpecError, origin: dict[str, tuple[str, ...] | None]) -> SpecError:
        """Problems caused by the sweep's overrides point at the sweep file's lines."""
        out = []
        for p in err.problems:
            field = p.field.removesuffix(FROM_SET)
            key = next((k for k in sorted(origin, key=len, reverse=True)
                        if field == k or field.startswith(k + ".")), None)
            if key is None:
                return err  # the base spec itself is wrong: its own file and line
            where = origin[key]
            if where is None:
                out.append(p)  # from the command line
            else:
                out.append(SpecProblem(".".join(where), p.message,
                                       _line_for(where, self.lines)))
        return self._error(out)

    def plan(self) -> list[PlannedRun]:
        here = self.sweep_path.resolve().parent
        runs: list[PlannedRun] = []
        seen: set[tuple[str, str, int]] = set()
        for point in expand_points(self.sweep):
            sets: dict[str, tuple[str, tuple[str, ...]]] = {}
            variants = self.sweep.variants or list(self.base.variants)
            for key, value in point.overrides.items():
                if key == SHORTHAND:
                    name = _variant_for_split(self.base, value)
                    sets["variants"] = (_as_set("variants", {name: {SHORTHAND: value}}),
                                        point.origin[key])
                    variants = [name]
                else:
                    sets[key] = (_as_set(key, _absolute(key, value, here)), point.origin[key])
            spec = self._load(sets)
            for variant in variants:
                only = spec.model_copy(update={"variants": {variant: spec.variants[variant]}})
                label = make_label(variant, point.overrides, only)
                for rep in range(self.sweep.repetitions):
                    key = (label, spec_hash(only), rep)
                    if key in seen:
                        continue  # another point gives this variant the same settings
                    seen.add(key)
                    runs.append(PlannedRun(label, variant, only, dict(point.overrides), rep))
        return runs
