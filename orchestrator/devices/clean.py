"""`orch devices clean`: remove staged agents, models, data sets and run folders from a phone,
keeping whatever a running agent uses.

Only orch's own staging folder is ever listed. What a live agent uses is worked out on the
phone (its pid file, /proc, and the staging paths its job names), so nothing of a run's
content comes back: only folder names under the staging root.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass, field

from orchestrator.devices.adb import Phone


@dataclass(frozen=True)
class Entry:
    path: str  # <root>/<area>/<name>
    kbytes: int


@dataclass
class CleanPlan:
    root: str
    remove: list[Entry] = field(default_factory=list)
    keep: list[Entry] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return 1024 * sum(e.kbytes for e in self.remove)


def staging_key(root: str, path: str) -> str | None:
    """`<root>/<area>/<name>` for any path at or below such a folder, else None."""
    rel = posixpath.relpath(posixpath.normpath(path), root)
    parts = rel.split("/")
    if rel.startswith("..") or len(parts) < 2:
        return None
    return posixpath.join(root, parts[0], parts[1])


def plan_clean(root: str, entries: list[Entry], in_use: list[str]) -> CleanPlan:
    """Pure: every staged entry is removed unless a live agent uses it."""
    used = {k for k in (staging_key(root, p) for p in in_use) if k}
    plan = CleanPlan(root=root)
    for e in sorted(entries, key=lambda e: e.path):
        (plan.keep if e.path in used else plan.remove).append(e)
    return plan


def parse_du(text: str) -> list[Entry]:
    """`du -sk PATH…` lines (`KB<tab>path`) → entries."""
    out = []
    for line in text.splitlines():
        size, _, path = line.strip().partition("\t")
        if not path:
            size, _, path = line.strip().partition(" ")
        if size.isdigit() and path:
            out.append(Entry(path=path.strip(), kbytes=int(size)))
    return out


def _entries(phone: Phone, root: str) -> list[Entry]:
    r = shlex.quote(root)
    out = phone.run(f"test -d {r} || exit 0; for e in {r}/*/*; do "
                    f"test -e \"$e\" && du -sk \"$e\"; done; exit 0", timeout=120)
    return parse_du(out)


def _in_use(phone: Phone, root: str) -> list[str]:
    """Run folders of live agents, their agent folder (cwd) and the staging paths in job.json."""
    r = shlex.quote(root)
    staged = shlex.quote(root + '/[A-Za-z_]*/[^/"]*')
    script = (
        f"for d in {r}/runs/*; do test -d \"$d\" || continue; "
        "pid=$(cat \"$d/agent.pid\" 2>/dev/null) || continue; "
        "case \"$pid\" in ''|*[!0-9]*) continue;; esac; "
        "kill -0 \"$pid\" 2>/dev/null || continue; "
        "tr '\\0' ' ' < /proc/$pid/cmdline 2>/dev/null | grep -qF -- \"$d\" || continue; "
        "echo \"$d\"; readlink /proc/$pid/cwd 2>/dev/null; "
        f"grep -o {staged} \"$d/job.json\" 2>/dev/null; "
        "done; exit 0")
    return [ln.strip() for ln in phone.run(script, timeout=60).splitlines() if ln.strip()]


def clean(phone: Phone, root: str, *, dry_run: bool, also_in_use: list[str] = ()) -> CleanPlan:
    """`also_in_use`: staging paths live agents elsewhere use (Termux's, via its launcher)."""
    plan = plan_clean(root, _entries(phone, root), _in_use(phone, root) + list(also_in_use))
    if not dry_run and plan.remove:
        paths = " ".join(shlex.quote(e.path) for e in plan.remove)
        phone.run(f"rm -rf {paths}", timeout=300)
    return plan
