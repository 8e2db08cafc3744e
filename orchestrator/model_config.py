"""The orchestrator's door to models/: an experiment spec's variant as a build config, and
the build itself with models/' errors mapped to the host's (`errors.from_models`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from models.config import ModelConfig
from orchestrator.errors import from_models
from orchestrator.spec import ExperimentSpec

if TYPE_CHECKING:
    from models.build import BuildResult


def config_for(spec: ExperimentSpec, variant: str) -> ModelConfig:
    """The ModelConfig of `variant`; an unknown variant is a SpecError naming the known ones."""
    (name,) = spec.variant_names(variant)
    return ModelConfig(
        arch=spec.model.arch,
        alpha=spec.model.alpha,
        input_size=spec.model.input_size,
        weights=spec.model.weights,
        finetune_from=spec.variants[name].finetune_from,
        num_classes=len(spec.head.classes),
        dropout=spec.head.dropout,
        batch_size=spec.training.batch_size,
        optimizer=spec.training.optimizer,
        momentum=spec.training.momentum,
    )


def build_variant(spec: ExperimentSpec, variant: str, *, cache_dir: Path,
                  out_dir: Path | None = None) -> BuildResult:
    """Build (or find in the cache) the two models of `variant`; a failure is a BuildError."""
    from models.build import build

    with from_models():
        return build(config_for(spec, variant), cache_dir=cache_dir, out_dir=out_dir)
