"""`orch demo`: the paper's experiment at demo scale on a virtual Pixel 7, then the dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.common import DbOption, SetOption, console, err_console, open_store
from orchestrator.errors import RunError


def demo(
    data: Annotated[Path | None, typer.Option(
        help="Photos for the phone's gallery: one subfolder per class (cat/, dog/). "
             "Default: a synthetic set.", show_default=False)] = None,
    weights: Annotated[Path | None, typer.Option(
        help="Keras HDF5 weights for MobileNet V1 alpha 0.25 (default: none, random init).",
        show_default=False)] = None,
    set_: SetOption = None,
    serve: Annotated[bool, typer.Option(help="Serve the dashboard when done.")] = True,
    port: Annotated[int, typer.Option(help="Dashboard port.")] = 8765,
    db: DbOption = None,
) -> None:
    """Run the paper's Table 1 at demo scale on a virtual Pixel 7 and open the dashboard."""
    from orchestrator.audit import audit_verdict
    from orchestrator.cli.run_cmd import _print_compare, _summary_line
    from orchestrator.demo import demo_photos, demo_spec, ensure_phone, run_demo
    from orchestrator.runner.display import RunDisplay
    from orchestrator.settings import get_settings
    from orchestrator.store import queries, repo
    from orchestrator.store.status import RunStatus

    settings = get_settings()
    spec = demo_spec(weights, set_ or [])
    photos, synthetic = demo_photos(settings, data, spec.head.classes)
    console.print(f"1/4 photos: {photos} ({'synthetic' if synthetic else 'yours'})")
    serial, started = ensure_phone(photos)
    console.print(f"2/4 virtual Pixel 7 {'started' if started else 'running'} at {serial}; "
                  f"its gallery {spec.data.path} holds the photos (read in place on the phone)")
    console.print(f"3/4 {spec.name}: {', '.join(spec.variants)} · alpha {spec.model.alpha}, "
                  f"{spec.model.input_size}px, {spec.data.train_per_class}+"
                  f"{spec.data.test_per_class} images per class, "
                  f"{spec.training.head_epochs}+{spec.training.finetune_epochs} epochs, "
                  f"delegate {spec.delegate}")
    if spec.model.weights == "none":
        what = ("the synthetic photos' texture (solid or striped) is what random features "
                "can tell apart: expect modest accuracy" if synthetic else
                "expect accuracy near chance on real photos")
        console.print(f"   weights: none (random init, BatchNorm calibrated on noise): {what}; "
                      "--weights FILE (a Keras MobileNet V1 alpha 0.25 HDF5 file) gives "
                      "ImageNet features", soft_wrap=True)
    with open_store(db) as session:
        with RunDisplay(err_console) as display:
            runs = run_demo(session=session, spec=spec, serial=serial, on_progress=display)
        rows = queries.table1(session=session, experiment=spec.name)
        verdicts = {r.id: audit_verdict(repo.run_transfers(session=session, run_id=r.id))
                    for r in runs}
        exp = repo.get_experiment(session=session, name=spec.name)
    for r in runs:
        console.print(_summary_line(r), soft_wrap=True)
        mark = "✓" if verdicts[r.id].ok else "✗"
        console.print(f"   audit {mark} {verdicts[r.id].headline} (`orch audit {r.id}`)",
                      soft_wrap=True)
    _print_compare(spec.name, rows)
    bad = [r for r in runs if r.status != RunStatus.FINISHED]
    if bad or not all(v.ok for v in verdicts.values()):
        raise RunError("The demo did not finish cleanly.",
                       hint=f"See `orch results show {(bad or runs)[0].id}`.")
    if not serve:
        return
    console.print(f"4/4 dashboard: http://127.0.0.1:{port}/experiments/{exp.id} "
                  "(Ctrl+C stops it; `orch sim stop pixel7` stops the phone)", soft_wrap=True)
    from orchestrator.cli.dashboard_cmd import dashboard

    dashboard(host="127.0.0.1", port=port, db=db, token=None)
