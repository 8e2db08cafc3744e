"""The demo: the paper's experiment at demo scale on a virtual Pixel 7, end to end.

Photos (synthetic unless given) go into the virtual phone's gallery, where the paper spec's
`device:` data source reads them in place: they are never copied anywhere by the host.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlmodel import Session

from orchestrator.settings import OrchSettings
from orchestrator.spec import ExperimentSpec, load_spec
from orchestrator.store.public import RunPublic

PAPER_SPEC = Path(__file__).resolve().parents[1] / "experiments" / "paper_table1.yaml"
PHONE = "pixel7"
SYNTH_PER_CLASS = 100

# Demo scale: the paper's protocol, shrunk to a couple of minutes on two cores.
DEMO_OVERRIDES = [
    "model.alpha=0.25",
    "model.input_size=128",
    "data.train_per_class=60",
    "data.test_per_class=40",
    "training.head_epochs=10",
    "training.finetune_epochs=5",
    "training.lr=0.01",
    "training.finetune_lr=0.001",
]


def demo_spec(weights: Path | None, extra: list[str]) -> ExperimentSpec:
    overrides = [*DEMO_OVERRIDES, f"model.weights={weights.resolve() if weights else 'none'}"]
    return load_spec(PAPER_SPEC, overrides=[*overrides, *extra])


def demo_photos(
    settings: OrchSettings, given: Path | None, classes: list[str]
) -> tuple[Path, bool]:
    """The photo set for the phone's gallery: the user's, else a synthetic one (made once)."""
    if given is not None:
        return given.resolve(), False
    import json

    from orchestrator.datasets.synth import SHAPES, synthesize

    out = settings.home / "demo" / "photos"
    # Two classes: solid vs striped circles. Without ImageNet weights the trunk's random
    # features can tell texture apart, hardly shape, so the demo still shows learning.
    kinds = [0, len(SHAPES)] if len(classes) == 2 else None
    recipe = json.dumps({"classes": classes, "kinds": kinds, "per_class": SYNTH_PER_CLASS})
    marker = out / ".recipe.json"
    complete = marker.is_file() and marker.read_text() == recipe and all(
        len(list((out / c).glob("*.jpg"))) >= SYNTH_PER_CLASS for c in classes)
    if not complete:
        synthesize(out, classes=len(classes), per_class=SYNTH_PER_CLASS, size=160, seed=0,
                   names=classes, class_ids=kinds)
        marker.write_text(recipe)
    return out, True


def ensure_phone(photos: Path) -> tuple[str, bool]:
    """A running virtual Pixel 7 with the photos in its gallery; (serial, started now)."""
    from orchestrator.errors import NotFound
    from orchestrator.sim import get_phone, start_phone
    from orchestrator.sim.manager import copy_gallery

    try:
        phone = get_phone(PHONE)
    except NotFound:
        phone = None
    if phone is not None and phone.running:
        from orchestrator.sim import adbctl

        copy_gallery(photos, phone.root)
        adbctl.connect(phone.serial, timeout=20.0)
        return phone.serial, False
    phone = start_phone(profile="pixel7", name=PHONE, photos=photos)
    return phone.serial, True


def run_demo(*, session: Session, spec: ExperimentSpec, serial: str,
             on_progress: Callable | None = None) -> list[RunPublic]:
    from orchestrator.runner.devices import open_link, register_device
    from orchestrator.runner.pipeline import run_experiment
    from orchestrator.settings import get_settings
    from orchestrator.store import repo

    repo.upsert_device(session=session, serial=serial)
    repo.set_alias(session=session, serial=serial, alias=PHONE)
    link = open_link(PHONE, settings=get_settings(), session=session)
    dev = register_device(session=session, link=link)
    return run_experiment(spec=spec, variants=spec.variant_names(), link=link,
                          session=session, device=dev, on_progress=on_progress)
