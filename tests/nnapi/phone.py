"""Run `python -m device_agent.nnapi.check` on a phone (real or virtual) over adb."""

from __future__ import annotations

import json
import posixpath
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODEL_FILES = ("frozen.tflite", "nnapi_plan.json", "nnapi_plan.npz")


def check_on_phone(device, model_dir: Path, python: str, *, root: str, images: int = 4,
                   reps: int = 1) -> dict:
    """Push the agent package and a model folder under `root`, run the check, parse its JSON."""
    device.shell2(f"rm -rf {root} && mkdir -p {root}/model")
    for path in sorted((REPO / "device_agent").rglob("*.py")):
        dest = posixpath.join(root, path.relative_to(REPO).as_posix())
        device.shell2(f"mkdir -p {posixpath.dirname(dest)}")
        device.sync.push(str(path), dest)
    for name in MODEL_FILES:
        device.sync.push(str(model_dir / name), f"{root}/model/{name}")
    device.shell2(f"chmod -R a+rX {root}")
    out = device.shell2(f"cd {root} && PYTHONPATH={root} {python} -m device_agent.nnapi.check "
                        f"{root}/model --images {images} --reps {reps} --threads 1", timeout=600)
    assert out.returncode == 0, out.output[-2000:]
    return json.loads(out.output[out.output.index("{"):])
