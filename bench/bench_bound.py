"""The information bound per spec: the most a run's admissible events + result could carry
off the phone, as `orch audit RUN` states it, for the demo, the paper's Table 1 and a
12-class point. Pure computation from the closed schema (device_agent/contract.py) and each
spec's job; no phone needed.

    python bench/bench_bound.py [--write BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from report import replace_section  # noqa: E402  (bench/ is the script's folder)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from device_agent import contract  # noqa: E402
from orchestrator.demo import DEMO_OVERRIDES  # noqa: E402
from orchestrator.egress import information_bound, limits_from_params  # noqa: E402
from orchestrator.runner.job import run_params  # noqa: E402
from orchestrator.spec import load_spec  # noqa: E402

SECTION = "## Privacy bound"
PAPER = REPO / "experiments" / "paper_table1.yaml"
TWELVE = [f"head.classes=[{', '.join(f'c{i}' for i in range(12))}]"]
POINTS = [("demo (`orch demo`)", DEMO_OVERRIDES),
          ("paper Table 1 (`experiments/paper_table1.yaml`)", []),
          ("12 classes, otherwise the paper's", TWELVE)]


def rows() -> list[tuple[str, str, str, str, str]]:
    out = []
    for name, overrides in POINTS:
        spec = load_spec(PAPER, overrides=list(overrides), check_paths=False)
        bounds = {information_bound(limits_from_params(run_params(spec, v)))
                  for v in spec.variants}
        assert len(bounds) == 1, "every variant of a spec has the same bound"
        (b,) = bounds
        p = run_params(spec, next(iter(spec.variants)))
        job = (f"{len(p['classes'])} classes, {p['head_epochs']} + "
               f"{p['finetune_epochs']} epochs, {p['train_per_class']} + "
               f"{p['test_per_class']} photos per class")
        out.append((name, job, f"{b.bytes:,} B ({b.bytes / 1024:.2f} KiB)", f"{b.numbers:,}",
                    f"{b.choices:,}"))
    return out


def render() -> str:
    table = "\n".join(f"| {' | '.join(r)} |" for r in rows())
    return f"""{SECTION}

`python bench/bench_bound.py`: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC (a computation: no
timing, no machine dependence).

The most information one run's admissible `events.jsonl` + `result.json` can hold, as
`orch audit RUN` states it ("at most … of information could have left the device"): log2 of
the number of distinct values the closed schema admits for that run's job, field by field
(every number on its quantization grid, every enumeration, every fixed-format string at its
longest), with each event kind at its budget per run (up to {contract.STARTS_MAX} agent
starts, stage progress on a grid of {contract.STAGE_STEPS} steps, one epoch event per epoch
plus one per restart) and the choice of kind for every event. For scale: a 160×160 JPEG
photo is about 5–10 KB. Method 1 and method 2 share a bound (the schema does not depend on
the split layer), so each spec has one row.

| spec | job | bound | numbers | enumerated choices |
| --- | --- | ---: | ---: | ---: |
{table}

The paper's spec stays under the 2 KiB the privacy contract allows per run. The bound grows
with epochs (each carries losses, accuracies and a time) and a little with classes (per-class
accuracy and counts); images only widen the range of counts, a few bits each.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", type=Path, help="replace the section in this Markdown file")
    a = ap.parse_args()
    text = render()
    print(text)
    if a.write:
        replace_section(a.write, SECTION, text)


if __name__ == "__main__":
    main()
