"""Host-side checks of a class-folder data source, before anything is pushed to a phone."""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import DataError


def class_counts(root: Path | str, classes: list[str], *, need: int | None = None
                 ) -> dict[str, int]:
    """Files per class folder (hidden files aside). DataError, one line each, when the root
    or a class folder is missing, a class folder is empty, or holds fewer than `need` files."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"The data folder {root} does not exist.",
                        hint="Check data.source, or make one with `orch data synth`.")
    counts = {}
    for c in classes:
        folder = root / c
        if not folder.is_dir():
            raise DataError(f"The data folder {root} has no class folder {c!r}.",
                            hint="Each class needs a subfolder named as in head.classes.")
        counts[c] = sum(1 for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        if counts[c] == 0:
            raise DataError(f"The class folder {folder} is empty.",
                            hint="Put that class's images in it.")
        if need is not None and counts[c] < need:
            raise DataError(f"Class {c!r} has {counts[c]} images; {need} are needed.",
                            hint="Lower train_per_class/test_per_class or add images.")
    return counts
