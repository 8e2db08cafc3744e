"""The errors of models/, which imports nothing of the host: the orchestrator maps them to
its own (`orchestrator.errors.from_models`), the CLI's exit code 4 among them.

    ModelError
    └── BuildError    a model cannot be built, converted or loaded (a value no build takes,
                      a missing or foreign weights file, an op TFLite lacks)
"""

from __future__ import annotations


class ModelError(Exception):
    """Base of every expected failure of models/; `hint` says what the user can do."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class BuildError(ModelError):
    """A model cannot be built, converted or loaded."""
