"""Staging (host → device): the agent bundle, the built models and host image sets, each
under a content-hashed folder of the device root, skipped when that hash is already there.

`device:` data is never staged, listed or read: it is already on the phone.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from orchestrator.errors import DataError
from orchestrator.links.base import DeviceLink, TransferInfo
from orchestrator.links.local import file_sha256
from orchestrator.runner.ledger import PushLedger
from orchestrator.spec import DataSpec

AGENT_PACKAGE = Path(__file__).resolve().parents[2] / "device_agent"
DATA_MANIFEST = "manifest.json"  # pushed last: its presence means the set is complete
MODEL_FILES = ("frozen.tflite", "train.tflite", "meta.json", "nnapi_plan.json",
               "nnapi_plan.npz")


class BuiltModel(Protocol):
    """What staging needs of `models.build.BuildResult`."""

    dir: Path
    hash: str
    cache_hit: bool  # taken from the build cache, not built now


@dataclass
class StageTally:
    """Bytes and files pushed or skipped by one staging pass, for the progress line."""

    pushed_bytes: int = 0
    pushed: int = 0
    skipped: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    on_change: Callable[[StageTally], None] | None = None  # live progress, once per file

    def add(self, info: TransferInfo, kind: str, files: int = 1) -> None:
        if info.skipped:
            self.skipped += files
        else:
            self.pushed += files
            self.pushed_bytes += info.bytes
            self.kinds[kind] = self.kinds.get(kind, 0) + info.bytes
        if self.on_change is not None:
            self.on_change(self)


# ---------------------------------------------------------------- content hashes (pure)


def tree_hash(entries: list[tuple[str, str]]) -> str:
    """A folder's content hash from (relative path, sha256) pairs."""
    h = hashlib.sha256()
    for rel, digest in sorted(entries):
        h.update(f"{rel}\t{digest}\n".encode())
    return h.hexdigest()[:16]


def agent_files(package: Path = AGENT_PACKAGE) -> list[tuple[str, Path]]:
    """The agent bundle: every .py file of the device_agent package, by relative path."""
    files = sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)
    if not any(p.name == "__main__.py" for p in files):
        raise DataError(f"The agent package at {package} has no __main__.py.",
                        hint="Check the checkout: device_agent/ must be complete.")
    return [(f"{package.name}/{p.relative_to(package).as_posix()}", p) for p in files]


def host_images(data: DataSpec, classes: list[str]) -> list[tuple[str, Path]]:
    """The files of a host: data set, one subfolder per class; checks each class is big
    enough for the spec's train + test counts. Every non-hidden file is staged, as the agent
    lists them (it skips and counts files that do not decode), so the staged copy samples
    exactly like the folder it came from."""
    root = Path(data.path)
    need = data.train_per_class + data.test_per_class
    out = []
    for cls in classes:
        folder = root / cls
        if not folder.is_dir():
            raise DataError(f"Data folder {root} has no subfolder {cls!r} for class {cls!r}.",
                            hint="Put each class's images in a subfolder named after it.")
        imgs = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        if len(imgs) < need:
            raise DataError(
                f"Class {cls!r} has {len(imgs)} images in {folder}; the spec needs "
                f"{data.train_per_class} train + {data.test_per_class} test = {need}.",
                hint="Lower data.train_per_class / data.test_per_class or add images.")
        out += [(f"{cls}/{p.name}", p) for p in imgs]
    return out


# ---------------------------------------------------------------- staging (I/O)


def _push_all(link: DeviceLink, ledger: PushLedger, tally: StageTally, base: str,
              files: list[tuple[str, Path]], kind: str,
              digests: dict[str, str] | None = None) -> None:
    """`digests`: rel → sha256 already computed (a data set's manifest), not hashed again."""
    with ledger.batch():
        for rel, path in files:
            info = link.push(str(path), posixpath.join(base, rel), kind,
                             sha256=(digests or {}).get(rel))
            ledger.record(info, kind)
            tally.add(info, kind)


def prune_folder(link: DeviceLink, ledger: PushLedger, folder: str, keep: list[str],
                 kind: str) -> int:
    """The folder holds exactly what orch pushed: anything else (a planted sitecustomize.py,
    a .pth file, a package) is removed before a launch, and the removal is in the ledger."""
    removed = link.prune(folder, keep)
    if removed:
        ledger.removed(folder, kind, removed)
    return removed


def stage_agent(link: DeviceLink, ledger: PushLedger, tally: StageTally,
                package: Path = AGENT_PACKAGE) -> tuple[str, str]:
    """Push the agent bundle to `<root>/agent/<hash>/`, leaving nothing else in it; returns
    (agent dir, bundle hash)."""
    files = agent_files(package)
    digest = tree_hash([(rel, file_sha256(p)) for rel, p in files])
    agent_dir = posixpath.join(link.root, "agent", digest)
    prune_folder(link, ledger, agent_dir, [rel for rel, _ in files], "agent")
    _push_all(link, ledger, tally, agent_dir, files, "agent")
    return agent_dir, digest


def stage_model(link: DeviceLink, ledger: PushLedger, tally: StageTally,
                build: BuiltModel) -> dict[str, str | None]:
    """Push a build to `<root>/models/<hash>/`; returns device paths for job.json."""
    model_dir = posixpath.join(link.root, "models", build.hash)
    files = [(name, Path(build.dir) / name) for name in MODEL_FILES
             if (Path(build.dir) / name).is_file()]
    prune_folder(link, ledger, model_dir, [name for name, _ in files], "model")
    _push_all(link, ledger, tally, model_dir, files, "model")
    present = {name for name, _ in files}

    def path(name: str) -> str | None:
        return posixpath.join(model_dir, name) if name in present else None

    return {"frozen": path("frozen.tflite"), "train": path("train.tflite"),
            "meta": path("meta.json"), "nnapi_plan": path("nnapi_plan.json")}


def stage_data(link: DeviceLink, ledger: PushLedger, tally: StageTally, data: DataSpec,
               classes: list[str]) -> tuple[str, str | None]:
    """Returns (data root on the device, content hash or None for `device:` data)."""
    if data.kind == "device":
        return data.path, None  # on the phone already: never copied, listed or read
    images = host_images(data, classes)
    entries = [(rel, file_sha256(p)) for rel, p in images]
    digest = tree_hash(entries)
    root = posixpath.join(link.root, "data", digest)
    manifest = json.dumps({"hash": digest, "files": dict(sorted(entries))}, sort_keys=True)
    marker = posixpath.join(root, DATA_MANIFEST)
    if link.sha256_of(marker) == hashlib.sha256(manifest.encode()).hexdigest():
        info = TransferInfo(root, 0, digest, skipped=True)
        ledger.record(info, "images", reason=f"data set {digest} ({len(images)} images) "
                      "already on the device")
        tally.add(info, "images", files=len(images))
        return root, digest
    _push_all(link, ledger, tally, root, images, "images", digests=dict(entries))
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / DATA_MANIFEST
        local.write_text(manifest)
        info = link.push(str(local), marker, "images")
    ledger.record(info, "images")
    tally.add(info, "images")
    return root, digest


def push_text(link: DeviceLink, ledger: PushLedger, text: str, device_path: str,
              kind: str) -> TransferInfo:
    """Push a small generated file (job.json)."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / posixpath.basename(device_path)
        local.write_text(text)
        info = link.push(str(local), device_path, kind)
    ledger.record(info, kind)
    return info
