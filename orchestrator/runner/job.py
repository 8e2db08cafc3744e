"""job.json for one run, per device_agent/contract.py (device paths only)."""

from __future__ import annotations

from typing import Any

from device_agent import job as agent_job
from orchestrator.errors import BuildError, SpecError, SpecProblem
from orchestrator.spec import ExperimentSpec


def make_job(*, run_key: str, spec: ExperimentSpec, variant: str, models: dict[str, str | None],
             data_root: str, threads: int) -> dict[str, Any]:
    """The job dict, built and validated by the agent's own schema code."""
    t, nn = spec.training, spec.nnapi
    if not (models["frozen"] and models["train"] and models["meta"]):
        missing = [k for k in ("frozen", "train", "meta") if not models[k]]
        raise BuildError(f"The build has no {', '.join(missing)} file.",
                         hint="Rebuild with `orch model build SPEC`.")
    try:
        return agent_job.make_job(
            run_key=run_key, experiment=spec.name, variant=variant, frozen=models["frozen"],
            train=models["train"], meta=models["meta"], nnapi_plan=models.get("nnapi_plan"),
            data_root=data_root, classes=list(spec.head.classes),
            train_per_class=spec.data.train_per_class, test_per_class=spec.data.test_per_class,
            seed=spec.data.seed, decode=spec.data.decode, orientation=spec.data.orientation,
            max_pixels=spec.data.max_pixels, batch_size=t.batch_size, head_epochs=t.head_epochs,
            finetune_epochs=t.finetune_epochs, lr=t.lr, finetune_lr=t.finetune_lr,
            delegate=spec.delegate, nnapi_device=nn.device, fp16=nn.fp16,
            allow_reference=nn.allow_reference, threads=threads)
    except agent_job.JobInvalid as e:
        raise SpecError([SpecProblem("(job)", p) for p in e.problems]) from None


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
