"""Maps an experiment spec and one of its variants to the build config of models/."""

from __future__ import annotations

from models.build import ModelConfig
from orchestrator.spec import ExperimentSpec


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
