"""Re-running the same `orch run` after an interruption continues the interrupted run.

A run cut off by a lost phone (or by Ctrl-C that left the agent running) is resumed, not
started over, when the same command is run again: same experiment, variant and device, the
same resolved settings, the same model build and the same data. A run the user stopped on
the device, or one that never reached the device, is left alone.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import Session

from orchestrator.links.local import file_sha256
from orchestrator.runner.job import run_params
from orchestrator.runner.staging import host_images, tree_hash
from orchestrator.spec import ExperimentSpec
from orchestrator.store import repo
from orchestrator.store.public import RunPublic
from orchestrator.store.status import RunStatus

USER_STOPPED = "stopped by the user"  # the error of a run the user stopped on the device


def _data_identity(spec: ExperimentSpec) -> tuple[str, str]:
    """(key in run params, value) that says which photos a run trained on."""
    if spec.data.kind == "device":
        return "data_root", spec.data.path
    files = host_images(spec.data, list(spec.head.classes))
    return "data_hash", tree_hash([(rel, file_sha256(p)) for rel, p in files])


def interrupted_twin(
    *,
    session: Session,
    spec: ExperimentSpec,
    variant: str,
    experiment_id: int,
    device_id: int | None,
    model_hash: Callable[[], str],
) -> RunPublic | None:
    """The newest interrupted run that this very command started, else None.

    `model_hash` builds (or finds in the build cache) the variant's models; it is called
    only when a candidate exists, so a fresh command pays nothing for the check.
    """
    params = run_params(spec, variant)
    candidates = [
        r for r in repo.list_runs(session=session, status=RunStatus.INTERRUPTED,
                                   device_id=device_id)
        if r.experiment_id == experiment_id and r.variant == variant and r.device_run_dir
        and r.error != USER_STOPPED
        and all(r.params.get(k) == v for k, v in params.items())
    ]
    if not candidates:
        return None
    key, value = _data_identity(spec)
    built = model_hash()
    return next((r for r in candidates
                 if r.params.get(key) == value and r.params.get("model_hash") == built), None)
