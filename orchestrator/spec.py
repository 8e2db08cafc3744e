"""Experiment specs: YAML → validated pydantic models, with errors that name the field and line.

Relative paths in a spec file are relative to that file; in `--set` overrides, relative to
the current folder. Unknown keys are errors (`extra="forbid"`), so a typo never passes.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from device_agent.contract import DELEGATES
from models.layers import ALPHAS, resolve_split
from orchestrator.errors import SpecError, SpecProblem
from orchestrator.spec_yaml import YamlRefused, line_map, read_yaml

Delegate = Literal[DELEGATES]  # type: ignore[valid-type]
IMAGENET_SIZES = (128, 160, 192, 224)

# Upper bounds (README, "Limits"): far above any sensible experiment, low enough that a typo
# (1e20 epochs, a 400-digit count) is refused instead of training until killed.
MAX_NAME = 100  # characters in a name: experiment, variant, class
MAX_TEXT = 4096  # characters in a path, a description, a device name
MAX_EPOCHS = 1000  # per phase
MAX_PER_CLASS = 100_000  # images per class, train and test
MAX_CLASSES = 1000
MAX_VARIANTS = 100
MAX_LR = 10.0
MAX_SEED = 2**32 - 1
MAX_WAIT_S = 7 * 24 * 3600.0


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ModelSpec(StrictModel):
    arch: Literal["mobilenet_v1"] = "mobilenet_v1"
    alpha: float = 1.0
    input_size: int = Field(160, ge=32, le=512)
    # "imagenet" (Keras download), "none" (random init), or a path to a Keras HDF5 weights file.
    weights: str = Field("imagenet", max_length=MAX_TEXT)

    @field_validator("alpha")
    @classmethod
    def _alpha(cls, v: float) -> float:
        if v not in ALPHAS:
            raise ValueError(f"must be one of {', '.join(map(str, ALPHAS))}, got {v}")
        return v

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: str) -> str:
        if any(ord(c) < 32 for c in v):
            raise ValueError(f"must not contain control characters, got {_short(v)}")
        return v

    @model_validator(mode="after")
    def _imagenet_size(self) -> ModelSpec:
        if self.weights == "imagenet" and self.input_size not in IMAGENET_SIZES:
            raise ValueError(
                f"input_size {self.input_size} has no ImageNet weights; use one of "
                f"{', '.join(map(str, IMAGENET_SIZES))} or weights: none / a file"
            )
        return self

    @property
    def weights_kind(self) -> Literal["imagenet", "none", "file"]:
        if self.weights in ("imagenet", "none"):
            return self.weights  # type: ignore[return-value]
        return "file"


class HeadSpec(StrictModel):
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    classes: list[str] = Field(default_factory=lambda: ["cat", "dog"], min_length=2,
                               max_length=MAX_CLASSES)

    @field_validator("classes")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dupes = sorted({c for c in v if v.count(c) > 1})
        if dupes:
            raise ValueError(f"class names must be unique, repeated: {', '.join(dupes)}")
        bad = [c for c in v if not re.fullmatch(r"[A-Za-z0-9_.-]+", c)]
        if bad:
            raise ValueError(f"class names must be folder names (letters, digits, _.-): "
                             f"{_short(bad)}")
        long = [c for c in v if len(c) > MAX_NAME]
        if long:
            raise ValueError(f"class names have at most {MAX_NAME} characters: {_short(long)}")
        return v


class DataSpec(StrictModel):
    # "host:PATH" (pushed to the phone) or "device:PATH" (already on the phone, never copied).
    source: str = Field(max_length=MAX_TEXT)
    train_per_class: int = Field(100, ge=1, le=MAX_PER_CLASS)
    test_per_class: int = Field(500, ge=1, le=MAX_PER_CLASS)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    # fast: JPEG DCT scaling + parallel decoding; exact: Keras's load_img (parity tests).
    decode: Literal["fast", "exact"] = "fast"
    orientation: Literal["exif", "ignore"] = "exif"  # turn photos as their EXIF tag says
    # Per-image pixel budget, read from the header: larger images are skipped, never decoded.
    max_pixels: int = Field(50_000_000, ge=1, le=1_000_000_000)

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        kind, sep, path = v.partition(":")
        if any(ord(c) < 32 for c in v):
            raise ValueError(f"must not contain control characters, got {_short(v)}")
        if not sep or kind not in ("host", "device") or not path:
            raise ValueError(f"must be 'host:PATH' or 'device:PATH', got {_short(v)}")
        if kind == "device" and not path.startswith("/"):
            raise ValueError(f"a device: path must be absolute on the phone, got {_short(path)}")
        return v

    @property
    def kind(self) -> Literal["host", "device"]:
        return self.source.partition(":")[0]  # type: ignore[return-value]

    @property
    def path(self) -> str:
        return self.source.partition(":")[2]


class TrainingSpec(StrictModel):
    batch_size: int = Field(4, ge=1, le=1024)
    head_epochs: int = Field(10, ge=0, le=MAX_EPOCHS)
    finetune_epochs: int = Field(10, ge=0, le=MAX_EPOCHS)
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(0.001, gt=0, le=MAX_LR)
    finetune_lr: float = Field(0.0001, gt=0, le=MAX_LR)
    momentum: float = Field(0.9, ge=0, lt=1)


class VariantSpec(StrictModel):
    # A Keras layer name, an alias of the paper (A, B), or null for head only (method 1).
    finetune_from: str | None = Field(None, max_length=MAX_NAME)

    @field_validator("finetune_from")
    @classmethod
    def _layer(cls, v: str | None) -> str | None:
        return resolve_split(v)


class NnapiSpec(StrictModel):
    # an NNAPI device name to use instead of the automatic choice
    device: str | None = Field(None, max_length=MAX_TEXT)
    fp16: bool = False  # relaxComputationFloat32toFloat16
    allow_reference: bool = False  # let `nnapi-reference` (NNAPI's CPU reference) be chosen


class HealthSpec(StrictModel):
    min_battery: int | None = Field(None, ge=0, le=100)
    max_temperature: float | None = Field(None, ge=-50, le=150)
    cooldown_s: float = Field(0, ge=0, le=MAX_WAIT_S)
    max_wait_s: float = Field(1800, ge=0, le=MAX_WAIT_S)


class ExperimentSpec(StrictModel):
    name: str = Field(min_length=1, max_length=MAX_NAME, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = Field("", max_length=MAX_TEXT)
    model: ModelSpec = Field(default_factory=ModelSpec)
    head: HeadSpec = Field(default_factory=HeadSpec)
    data: DataSpec
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    variants: dict[str, VariantSpec] = Field(min_length=1, max_length=MAX_VARIANTS)
    delegate: Delegate = "cpu"
    nnapi: NnapiSpec = Field(default_factory=NnapiSpec)
    health: HealthSpec = Field(default_factory=HealthSpec)

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, v: dict[str, VariantSpec]) -> dict[str, VariantSpec]:
        bad = [k for k in v if not re.fullmatch(rf"[A-Za-z0-9_.-]{{1,{MAX_NAME}}}", str(k))]
        if bad:
            raise ValueError(f"variant names must be 1–{MAX_NAME} letters, digits and _.-, "
                             f"got {_short(bad)}")
        return v

    @model_validator(mode="after")
    def _epochs(self) -> ExperimentSpec:
        if self.training.head_epochs + self.training.finetune_epochs == 0:
            raise ValueError("training.head_epochs + training.finetune_epochs must be ≥ 1")
        return self

    def variant_names(self, only: str | None = None) -> list[str]:
        if only is None:
            return list(self.variants)
        if only not in self.variants:
            raise SpecError(
                [SpecProblem("variant", f"unknown variant {only!r}; the spec has "
                             f"{', '.join(self.variants)}")]
            )
        return [only]


# ---------------------------------------------------------------------------------------------
# Loading with line numbers


def _line_map(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path in a YAML document to its 1-based line."""
    return line_map(text)


def _line_for(loc: tuple[str, ...], lines: dict[tuple[str, ...], int]) -> int | None:
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _problems(err: ValidationError, lines: dict, overridden: set[str]) -> list[SpecProblem]:
    out = []
    for e in err.errors():
        loc = tuple(str(p) for p in e["loc"])
        field = ".".join(_key(p) for p in loc) or "(spec)"
        msg = e["msg"].removeprefix("Value error, ")
        ctx = e.get("ctx") or {}
        bounds = {"greater_than_equal": ("≥", "ge"), "greater_than": (">", "gt"),
                  "less_than_equal": ("≤", "le"), "less_than": ("<", "lt")}
        if e["type"] in bounds:
            sym, key = bounds[e["type"]]
            msg = f"must be {sym} {ctx.get(key)}, got {_short(e.get('input'))}"
        elif e["type"] == "int_parsing_size":
            msg = f"must be ≤ {_upper_bound(loc)}, got {_short(e.get('input'))}"
        elif e["type"] == "extra_forbidden":
            msg = "unknown key (a typo?)"
        elif e["type"] == "missing":
            msg = "required, missing"
        elif "input" in e and e["type"] not in ("value_error", "assertion_error"):
            msg = f"{msg}, got {_short(e['input'])}"
        from_set = _from_set(field, overridden)
        line = None if from_set else _line_for(loc, lines)
        if from_set:
            field = f"{field} (from --set)"
        out.append(SpecProblem(field, _short_text(msg.rstrip(".")), line))
    return out


def _key(part: str) -> str:
    """A key as a field name: quoted when it is not a plain word, cut when it is long."""
    plain = part.isprintable() and part.strip() == part and part != ""
    return _short_text(part if plain else repr(part), 60)


def _upper_bound(loc: tuple[str, ...]) -> Any:
    """The `le` bound of the spec field at `loc` (for numbers too large to parse)."""
    model: Any = ExperimentSpec
    info = None
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            break
        info = fields[part]
        model = info.annotation
    for meta in getattr(info, "metadata", []):
        if getattr(meta, "le", None) is not None:
            return meta.le
    return "the field's limit"


def _from_set(field: str, overridden: set[str]) -> bool:
    """Whether `field` was set (or replaced, or reached into) by a `--set` override."""
    return any(k == field or k.startswith(field + ".") or field.startswith(k + ".")
               for k in overridden)


def _short_text(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(value: Any, limit: int = 60) -> str:
    """A value's repr cut to `limit` characters, so one bad value cannot flood the line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _resolve_paths(raw: dict, base: Path) -> None:
    """Make relative host paths in `raw` absolute against `base` (in place). A path with a
    NUL byte is left as it is: validation refuses it, naming the field."""
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("source"), str):
        kind, sep, path = data["source"].partition(":")
        if sep and kind == "host" and path and "\0" not in path and not Path(path).is_absolute():
            data["source"] = f"host:{(base / path).resolve()}"
    model = raw.get("model")
    if isinstance(model, dict) and isinstance(model.get("weights"), str):
        w = model["weights"]
        if w not in ("imagenet", "none") and "\0" not in w and not Path(w).is_absolute():
            model["weights"] = str((base / w).resolve())


def parse_override(item: str) -> tuple[list[str], Any]:
    """`training.batch_size=8` → (["training", "batch_size"], 8), the value read as YAML."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise SpecError([SpecProblem("--set", f"expected key=value, got {_short(item)}")])
    path = key.strip().split(".")
    if not all(p.strip() for p in path):
        raise SpecError([SpecProblem("--set", f"empty part in the key {_short(key.strip())}; "
                                     "expected e.g. training.batch_size=8")])
    try:
        parsed = read_yaml(value)[0] if value != "" else ""
    except YamlRefused as e:
        if not e.syntax:
            raise SpecError([SpecProblem(f"{key.strip()} (from --set)",
                                         e.problem.message)]) from None
        parsed = value
    return path, parsed


def apply_overrides(raw: dict, overrides: list[str], *, cwd: Path) -> set[str]:
    """Apply `--set` overrides to a raw spec dict; returns the dotted keys that were set."""
    touched = set()
    for item in overrides:
        path, value = parse_override(item)
        node = raw
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        # Paths given on the command line are relative to the current folder.
        holder = {path[0]: {path[-1]: value}} if len(path) == 2 else None
        if holder is not None:
            _resolve_paths(holder, cwd)
            value = holder[path[0]][path[-1]]
        node[path[-1]] = value
        touched.add(".".join(path))
    return touched


def check_host_paths(spec: ExperimentSpec, lines: dict, overridden: set[str]) -> list[SpecProblem]:
    """Problems that need the file system: a host data folder or weights file that is missing."""
    problems = []
    if spec.data.kind == "host":
        p = Path(spec.data.path)
        if not p.is_dir():
            key = "data.source"
            problems.append(SpecProblem(
                key + (" (from --set)" if key in overridden else ""),
                f"host folder {p} does not exist (one subfolder per class expected; "
                "`orch data synth` makes a demo set)",
                None if key in overridden else _line_for(("data", "source"), lines)))
    if spec.model.weights_kind == "file" and not Path(spec.model.weights).is_file():
        key = "model.weights"
        problems.append(SpecProblem(
            key + (" (from --set)" if key in overridden else ""),
            f"weights file {spec.model.weights} does not exist (use imagenet, none, or a path)",
            None if key in overridden else _line_for(("model", "weights"), lines)))
    return problems


def load_spec_text(
    text: str,
    *,
    base_dir: Path,
    overrides: list[str] = (),  # type: ignore[assignment]
    source: str | None = None,
    check_paths: bool = True,
) -> ExperimentSpec:
    if not text.strip():
        raise SpecError([SpecProblem("(file)", "the spec is empty; see experiments/ for examples")],
                        source=source)
    try:
        raw, lines = read_yaml(text)
    except YamlRefused as e:
        raise SpecError([e.problem], source=source) from None
    if not isinstance(raw, dict):
        raise SpecError([SpecProblem("(file)", "expected a mapping of keys (name, model, data, "
                                     f"…), got {type(raw).__name__}", 1)], source=source)
    raw = copy.deepcopy(raw)
    _resolve_paths(raw, base_dir)
    overridden = apply_overrides(raw, list(overrides), cwd=Path.cwd())
    try:
        spec = ExperimentSpec.model_validate(raw)
    except ValidationError as err:
        raise SpecError(_problems(err, lines, overridden), source=source) from None
    if check_paths:
        problems = check_host_paths(spec, lines, overridden)
        if problems:
            raise SpecError(problems, source=source)
    return spec


def load_spec(
    path: str | Path, *, overrides: list[str] = (), check_paths: bool = True  # type: ignore[assignment]
) -> ExperimentSpec:
    p = Path(path)
    if not p.is_file():
        raise SpecError([SpecProblem("(file)", f"no spec file at {p}")])
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SpecError([SpecProblem("(file)", "not a text file (expected YAML)")],
                        source=str(p)) from None
    return load_spec_text(text, base_dir=p.resolve().parent, overrides=list(overrides),
                          source=str(p), check_paths=check_paths)


def spec_hash(spec: ExperimentSpec) -> str:
    import hashlib
    import json

    blob = json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
