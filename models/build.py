"""Build frozen.tflite + train.tflite + meta.json for one config, cached by content hash.

The cache is checked before TensorFlow is imported, so a cache hit costs milliseconds.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from device_agent import contract
from models.config import ModelConfig
from models.errors import BuildError
from models.native_log import native_log_to

FROZEN_FILE, TRAIN_FILE, META_FILE, REPORT_FILE = (
    "frozen.tflite", "train.tflite", "meta.json", "report.json")
PLAN_FILES = ("nnapi_plan.json", "nnapi_plan.npz")  # the frozen trunk as an NNAPI op list


@dataclass
class BuildResult:
    dir: Path
    frozen_path: Path
    train_path: Path
    meta_path: Path
    hash: str
    cache_hit: bool
    report: dict[str, Any] = field(default_factory=dict)


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
