"""job.json for one run, per device_agent/contract.py (device paths only)."""

from __future__ import annotations

from typing import Any

from device_agent import contract
from orchestrator.spec import ExperimentSpec


def make_job(*, run_key: str, spec: ExperimentSpec, variant: str, models: dict[str, str | None],
             data_root: str, threads: int) -> dict[str, Any]:
    t = spec.training
    job = {
        "schema": contract.JOB_SCHEMA,
        "run_key": run_key,
        "experiment": spec.name,
        "variant": variant,
        "models": models,
        "data": {"root": data_root, "classes": list(spec.head.classes),
                 "train_per_class": spec.data.train_per_class,
                 "test_per_class": spec.data.test_per_class, "seed": spec.data.seed},
        "training": {"batch_size": t.batch_size, "head_epochs": t.head_epochs,
                     "finetune_epochs": t.finetune_epochs, "lr": t.lr,
                     "finetune_lr": t.finetune_lr},
        "delegate": {"requested": spec.delegate, "nnapi_device": spec.nnapi.device,
                     "fp16": spec.nnapi.fp16, "allow_reference": spec.nnapi.allow_reference},
        "threads": threads,
    }
    assert tuple(job) == contract.JOB_KEYS
    return job


def run_params(spec: ExperimentSpec, variant: str) -> dict[str, Any]:
    """The resolved spec subset a run is compared by (Run.params)."""
    t = spec.training
    return {
        "finetune_from": spec.variants[variant].finetune_from,
        "alpha": spec.model.alpha, "input_size": spec.model.input_size,
        "weights": spec.model.weights_kind, "dropout": spec.head.dropout,
        "classes": list(spec.head.classes), "batch": t.batch_size,
        "head_epochs": t.head_epochs, "finetune_epochs": t.finetune_epochs,
        "optimizer": t.optimizer, "lr": t.lr, "finetune_lr": t.finetune_lr,
        "seed": spec.data.seed, "train_per_class": spec.data.train_per_class,
        "test_per_class": spec.data.test_per_class, "delegate": spec.delegate,
        "data_kind": spec.data.kind,
    }
