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
    missing = [c for c in classes if not (root / c).is_dir()]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise DataError(f"The data folder {root} has no class folder {names}.",
                        hint="Each class needs a subfolder named as in head.classes.")
    counts = {c: sum(1 for p in (root / c).iterdir() if p.is_file() and not p.name.startswith("."))
              for c in classes}
    empty = [c for c in classes if counts[c] == 0]
    if empty:
        names = ", ".join(str(root / c) for c in empty)
        raise DataError(f"The class folder {names} is empty.",
                        hint="Put that class's images in it.")
    short = [f"{c!r} has {n}" for c, n in counts.items() if need is not None and n < need]
    if short:
        raise DataError(f"Class {'; '.join(short)} images; {need} are needed per class.",
                        hint="Lower train_per_class/test_per_class or add images.")
    return counts
