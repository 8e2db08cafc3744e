"""Build frozen.tflite + train.tflite + meta.json for one config, cached by content hash.

The cache is checked before TensorFlow is imported, so a cache hit costs milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from device_agent import contract
from models.layers import ALPHA_CHOICES, ALPHAS, LAYER_CHOICES, SPLIT_LAYERS
from models.native_log import native_log_to
from models.weights import fingerprint
from orchestrator.errors import BuildError

BUILD_VERSION = 1  # bump when the artifacts change in a way the source digest cannot see
FROZEN_FILE, TRAIN_FILE, META_FILE, REPORT_FILE = (
    "frozen.tflite", "train.tflite", "meta.json", "report.json")
PLAN_FILES = ("nnapi_plan.json", "nnapi_plan.npz")  # the frozen trunk as an NNAPI op list


@dataclass(frozen=True)
class ModelConfig:
    """Everything that decides the bytes of the two models (learning rates are inputs)."""

    arch: str = "mobilenet_v1"
    alpha: float = 1.0
    input_size: int = 160
    weights: str = "imagenet"  # "imagenet", "none" or a path to a Keras HDF5 weights file
    finetune_from: str | None = None  # Keras layer name; None = head only (method 1)
    num_classes: int = 2
    dropout: float = 0.2
    batch_size: int = 4
    optimizer: str = "adam"  # "adam" or "sgd"
    momentum: float = 0.9  # SGD only

    def validate(self) -> None:
        """Raise BuildError naming what is expected for a value no build can take."""
        checks = [
            (self.arch == "mobilenet_v1", f"arch {self.arch!r} is unknown; expected mobilenet_v1"),
            (self.alpha in ALPHAS, f"alpha {self.alpha} is not a MobileNet V1 width; expected "
                                   f"{ALPHA_CHOICES}"),
            (self.input_size >= 32, f"input size {self.input_size} is too small; expected 32 or "
                                    "more (128–224 for ImageNet weights)"),
            (self.finetune_from is None or self.finetune_from in SPLIT_LAYERS,
             f"unknown layer {self.finetune_from!r}; expected None (head only) or a MobileNet "
             f"V1 layer {LAYER_CHOICES}"),
            (self.num_classes >= 2, f"num_classes {self.num_classes}: expected 2 or more"),
            (0.0 <= self.dropout < 1.0, f"dropout {self.dropout}: expected 0 ≤ rate < 1"),
            (self.batch_size >= 1, f"batch size {self.batch_size}: expected 1 or more"),
            (self.optimizer in ("adam", "sgd"),
             f"optimizer {self.optimizer!r} is unknown; expected adam or sgd"),
            (0.0 <= self.momentum < 1.0, f"momentum {self.momentum}: expected 0 ≤ m < 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise BuildError(message + ".")

    def hash(self) -> str:
        """Content hash: weights by content, build code by source digest."""
        self.validate()
        key = {
            "arch": self.arch, "alpha": self.alpha, "input_size": self.input_size,
            "weights": fingerprint(self.weights, self.alpha, self.input_size),
            "finetune_from": self.finetune_from, "num_classes": self.num_classes,
            "dropout": self.dropout, "batch_size": self.batch_size,
            "optimizer": self.optimizer,
            "momentum": self.momentum if self.optimizer == "sgd" else None,
            "code": code_version(),
        }
        blob = json.dumps(key, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class BuildResult:
    dir: Path
    frozen_path: Path
    train_path: Path
    meta_path: Path
    hash: str
    cache_hit: bool
    report: dict[str, Any] = field(default_factory=dict)


def build_frozen_keras(config: ModelConfig) -> Any:
    """The frozen trunk of `config` as a Keras model (image 0…255 → features at the split).

    The source of frozen.tflite, for exporters of other formats (e.g. an NNAPI plan).
    """
    from models import keras_net

    return keras_net.build_frozen_keras(config)


def code_version() -> str:
    """BUILD_VERSION plus a digest of the build code, so a code change is a cache miss."""
    h = hashlib.sha256(str(BUILD_VERSION).encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:12]


def _complete(folder: Path, digest: str) -> dict[str, Any] | None:
    """The stored report if `folder` holds a finished build of `digest`, else None."""
    try:
        meta = json.loads((folder / META_FILE).read_text())
        report = json.loads((folder / REPORT_FILE).read_text())
    except (OSError, ValueError):
        return None
    if meta.get("hash") != digest or not all(
            (folder / f).is_file() for f in (FROZEN_FILE, TRAIN_FILE)):
        return None
    return report


def _result(folder: Path, digest: str, hit: bool, report: dict[str, Any]) -> BuildResult:
    return BuildResult(folder, folder / FROZEN_FILE, folder / TRAIN_FILE, folder / META_FILE,
                       digest, hit, report)


def build(config: ModelConfig, *, cache_dir: Path, out_dir: Path | None = None) -> BuildResult:
    """Build (or find in the cache) the two models of `config`.

    Without `out_dir` the artifacts live in `<cache_dir>/models/<hash>/`; with it, there.
    """
    digest = config.hash()
    final = Path(out_dir) if out_dir is not None else Path(cache_dir) / "models" / digest
    report = _complete(final, digest)
    if report is not None:
        return _result(final, digest, True, report)

    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".build-{digest}-", dir=final.parent))
    log = final.parent / "logs" / f"{digest}.log"
    try:
        try:
            with native_log_to(log):
                report = build_artifacts(config, staging, digest)
        except BuildError as e:
            if not e.hint:
                e.hint = f"TensorFlow's own log of this build: {log}"
            raise
        if final.exists():  # an older build in --out, or a concurrent build that won
            if out_dir is None and _complete(final, digest) is not None:
                return _result(final, digest, True, json.loads(
                    (final / REPORT_FILE).read_text()))
            for name in (FROZEN_FILE, TRAIN_FILE, META_FILE, REPORT_FILE, *PLAN_FILES):
                os.replace(staging / name, final / name)
        else:
            os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _result(final, digest, False, report)


def build_artifacts(config: ModelConfig, folder: Path, digest: str) -> dict[str, Any]:
    """Run TensorFlow: write the two models, meta.json and report.json into `folder`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from models import keras_net
    from models.convert import convert_frozen, convert_train
    from models.nnapi_plan import export_plan
    from models.tflite_info import describe
    from models.train_graph import TrainGraph

    started = time.perf_counter()
    model = keras_net.build_keras_model(config)
    trunk = keras_net.build_frozen_keras(config, model)
    (folder / FROZEN_FILE).write_bytes(convert_frozen(trunk))
    # Further exports of the frozen trunk (an NNAPI plan) take `trunk` from here.
    export_plan(trunk, folder)

    plan = keras_net.upper_plan(config, model)
    graph = TrainGraph(plan, batch_size=config.batch_size, optimizer=config.optimizer,
                       momentum=config.momentum)
    (folder / TRAIN_FILE).write_bytes(convert_train(graph, graph.signatures()))
    layout = graph.layout()
    _check_loads(folder, has_finetune=bool(plan.layers), layout=layout)

    feature_shape = list(plan.feature_shape)
    meta = {
        "input_size": config.input_size, "feature_shape": feature_shape,
        "pooled_dim": graph.pooled_dim, "num_classes": config.num_classes,
        "batch_size": config.batch_size, "finetune_from": config.finetune_from,
        "has_finetune": bool(plan.layers), "dropout": config.dropout,
        "optimizer": config.optimizer, "state_layout": layout, "hash": digest,
    }
    assert tuple(meta) == contract.MODEL_META_KEYS
    trainable = sum(int(v.size) for v in graph.params.values())
    upper = [n for layer in plan.layers for n in (layer.name, f"{layer.name}_bn")]
    frozen_params = keras_net.count_params(trunk)
    report = {
        "hash": digest,
        "config": asdict(config),
        "seconds": round(time.perf_counter() - started, 2),
        "artifacts": {
            FROZEN_FILE: {**describe(folder / FROZEN_FILE), "frozen_params": frozen_params,
                          "trainable_params": 0},
            TRAIN_FILE: {**describe(folder / TRAIN_FILE), "frozen_params": 0,
                         "trainable_params": trainable,
                         "keras_upper_params": keras_net.count_params(model, upper),
                         "state_tensors": sum(len(pieces) for pieces in layout.values())},
        },
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    (folder / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report


def _check_loads(folder: Path, *, has_finetune: bool, layout: dict[str, Any]) -> None:
    """The training model must load and allocate in LiteRT with the contract's signatures."""
    from ai_edge_litert.interpreter import Interpreter

    expected = contract.SIGNATURES if has_finetune else contract.HEAD_ONLY_SIGNATURES
    for name in (FROZEN_FILE, TRAIN_FILE):
        try:
            interp = Interpreter(model_path=str(folder / name))
            interp.allocate_tensors()
        except (RuntimeError, ValueError) as e:
            raise BuildError(f"{name} does not load in LiteRT: {e}") from None
        if name == TRAIN_FILE:
            found = set(interp.get_signature_list())
            if found != set(expected):
                raise BuildError(f"{name} has signatures {sorted(found)}, expected "
                                 f"{sorted(expected)}.")
            train = interp.get_signature_list()["train" if has_finetune else "train_head"]
            if not set(layout) <= set(train["inputs"]) | {"upper"}:
                raise BuildError(f"{name}: the training signature lacks state inputs.")
