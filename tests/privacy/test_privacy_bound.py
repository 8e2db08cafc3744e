"""The information bound: computed from the closed schema and the job, stored with each run,
shown by `orch audit` and the dashboard, and never exceeded by what the guard admits (a
hypothesis property test plays the agent, generating adversarial payloads)."""

from __future__ import annotations

import json
import math
from decimal import Decimal

from attack import LIMITS, RUN_KEY, photo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_agent import contract
from device_agent.schema import (
    Bool,
    Enum,
    Fixed,
    Frac,
    Int,
    List,
    Msg,
    Obj,
    Pattern,
    PerClass,
    Sig,
    Violation,
    slots,
)
from orchestrator.egress import (
    EgressLimits,
    StreamState,
    _Refusal,
    check_event,
    check_result,
    check_stream,
    information_bound,
)

SECRET = __import__("base64").urlsafe_b64encode(photo(24)).decode()
LONGEST = 24  # the longest string the schema admits (Pattern.max_len)
PAPER = EgressLimits(epochs=20, classes=("cat", "dog"), head_epochs=10, train_per_class=100,
                     test_per_class=500)


def test_the_paper_spec_can_carry_out_at_most_2_kib():
    """2 classes, 10 + 10 epochs, 100 + 500 photos per class: the bound is under 2 KiB."""
    bound = information_bound(PAPER)
    assert 0 < bound.bytes <= 2048
    assert bound.numbers > 100 and bound.choices > 10


def test_the_bound_grows_with_the_job():
    """More epochs or classes can carry more; the bound says so."""
    base = information_bound(PAPER).bits
    assert information_bound(EgressLimits(**{**PAPER.__dict__, "epochs": 40})).bits > base
    twelve = EgressLimits(**{**PAPER.__dict__, "classes": tuple("abcdefghijkl")})
    assert information_bound(twelve).bits > base


# ------------------------------------------------------------------ adversarial payloads

secret_slices = st.builds(lambda i, n: SECRET[i:i + n], st.integers(0, len(SECRET) - 1),
                          st.integers(1, 80))
junk_text = st.one_of(secret_slices, st.text(max_size=40))


def payload(node, lim):
    """Values a hostile agent might send for `node`: mostly admissible, full of noise."""
    if isinstance(node, Int):
        return st.integers(-2, 2 + (lim.images if isinstance(node.hi, str) else int(node.hi)))
    if isinstance(node, (Fixed, Sig, Frac)):
        return st.floats(-0.5, 1e7) | st.floats(0, 1.5) | st.just(float("nan"))
    if isinstance(node, Bool):
        return st.booleans() | st.integers(0, 1)
    if isinstance(node, Enum):
        return st.sampled_from(node.choices) if node.choices else junk_text
    if isinstance(node, Pattern):
        return st.sampled_from(["2.20.0", "1.26.4", "3.11.7", "sim-npu", "google-edgetpu"]) \
            | junk_text
    if isinstance(node, Msg):
        return st.fixed_dictionaries({"code": st.sampled_from(list(node.catalogue)) | junk_text,
                                      "args": st.lists(st.integers(-1, 10**7), max_size=5)})
    if isinstance(node, List):
        n = lim.epochs if isinstance(node.max_len, str) else node.max_len
        return st.lists(payload(node.item, lim), max_size=n + 1)
    if isinstance(node, PerClass):
        return st.dictionaries(st.sampled_from(lim.classes) | secret_slices,
                               payload(node.item, lim), max_size=len(lim.classes) + 1)
    if isinstance(node, Obj):
        fields = {k: payload(v, lim) for k, v in node.fields.items()}
        extra = st.dictionaries(secret_slices, st.booleans() | junk_text, max_size=1)
        return st.builds(lambda d, x: {**d, **x},
                         st.fixed_dictionaries({}, optional=fields), extra)
    raise AssertionError(node)


VERSIONS = ["2.20.0", "1.26.4", "3.11.7", "2.20.0.dev20250409", "10.3.0", "3.12.0rc1"]
NAMES = ["sim-npu", "google-edgetpu", "qti-dsp", "nnapi-reference"]


def admissible(node, lim):
    """Values the schema admits, with noise in every low bit a number has."""
    if isinstance(node, Int):
        hi = getattr(lim, node.hi) if isinstance(node.hi, str) else node.hi
        return st.integers(node.lo if isinstance(node.lo, int) else 0, hi)
    if isinstance(node, Fixed):
        return st.floats(node.lo, node.hi)
    if isinstance(node, Sig):
        return st.floats(0, node.hi) | st.none()
    if isinstance(node, Frac):
        return st.floats(0, 1)
    if isinstance(node, Bool):
        return st.booleans()
    if isinstance(node, Enum):
        return st.sampled_from(node.choices)
    if isinstance(node, Pattern):
        return st.sampled_from(NAMES if node is contract.NAME else VERSIONS)
    if isinstance(node, Msg):
        return st.sampled_from(sorted(node.catalogue)).flatmap(lambda c: st.fixed_dictionaries({
            "code": st.just(c), "args": st.lists(st.integers(0, 10**6), min_size=slots(
                node.catalogue[c]), max_size=slots(node.catalogue[c]))}))
    if isinstance(node, List):
        n = getattr(lim, node.max_len) if isinstance(node.max_len, str) else node.max_len
        return st.lists(admissible(node.item, lim), max_size=n)
    if isinstance(node, PerClass):
        return st.dictionaries(st.sampled_from(lim.classes), admissible(node.item, lim))
    if isinstance(node, Obj):
        return st.fixed_dictionaries(
            {k: admissible(v, lim) for k, v in node.fields.items() if k in node.required},
            optional={k: admissible(v, lim) for k, v in node.fields.items()
                      if k not in node.required and k != "run_key"})
    raise AssertionError(node)


def _numbered(res: dict) -> dict:
    """Epochs in order and in their phase, as the schema's cross-field rules want."""
    for i, e in enumerate(res.get("epochs", [])):
        e["epoch"] = i + 1
        e["phase"] = "head" if i + 1 <= LIMITS.head_epochs else "finetune"
    return {**res, "run_key": RUN_KEY}


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(admissible(contract.RESULT, LIMITS).map(_numbered))
def test_every_admissible_result_is_stored_on_the_grid_and_within_the_bound(res):
    """Any result within the schema is admitted; what is kept has no low bits beyond the
    precision shown (on the grid the bound counts) and admitting it again changes nothing."""
    admitted = check_result(res, LIMITS, RUN_KEY)
    body = {k: v for k, v in admitted.items() if k != "run_key"}
    assert on_grid(contract.RESULT, body, LIMITS)
    assert check_result(admitted, LIMITS, RUN_KEY) == admitted
    assert len(json.dumps(admitted)) <= LIMITS.result_cap


def on_grid(node, v, lim) -> bool:
    """Whether an admitted value is one of the values the node's tally counts."""
    if v is None:
        return node.keeps_null
    if isinstance(node, Fixed):
        steps = Decimal(str(v)) / Decimal(str(node.quantum))
        return node.lo <= v <= node.hi and steps == steps.to_integral_value()
    if isinstance(node, Sig):
        return v == 0 or len(Decimal(repr(v)).normalize().as_tuple().digits) <= node.digits
    if isinstance(node, Frac):
        n = getattr(lim, node.of)
        return abs(v * n - round(v * n)) < 1e-9
    if isinstance(node, Pattern):
        return len(v) <= node.max_len
    if isinstance(node, Obj):
        return set(v) <= set(node.fields) and all(on_grid(node.fields[k], x, lim)
                                                  for k, x in v.items())
    if isinstance(node, List):
        return all(on_grid(node.item, x, lim) for x in v)
    if isinstance(node, PerClass):
        return set(v) <= set(lim.classes) and all(on_grid(node.item, x, lim) for x in v.values())
    return True  # Int, Bool, Enum, Msg: admit() only returns counted values


def assert_no_long_secret(admitted) -> None:
    text = json.dumps(admitted)
    for i in range(len(SECRET) - LONGEST):
        assert SECRET[i:i + LONGEST + 1] not in text


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload(contract.RESULT, LIMITS))
def test_whatever_a_result_holds_the_stored_part_stays_within_the_bound(res):
    """Admitted results are on the schema's grid (so the count behind the bound is honest),
    admitting them again changes nothing, their size in bits is under the bound, and they hold
    no piece of the input longer than the schema allows."""
    res = {**res, "schema": 1, "status": "finished", "run_key": RUN_KEY}
    try:
        admitted = check_result(res, LIMITS, RUN_KEY)
    except _Refusal:
        return
    assert on_grid(contract.RESULT, {k: v for k, v in admitted.items() if k != "run_key"},
                   LIMITS)
    assert check_result(admitted, LIMITS, RUN_KEY) == admitted
    assert contract.RESULT.tally(LIMITS).bits <= information_bound(LIMITS).bits
    assert_no_long_secret(admitted)


def _event_payload(lim):
    kinds = st.sampled_from(contract.EVENT_KINDS)
    return st.lists(kinds.flatmap(lambda k: payload(contract.EVENTS[k], lim).map(
        lambda body, k=k: (k, body))), max_size=40)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(_event_payload(LIMITS))
def test_whatever_events_hold_the_stored_part_stays_within_the_bound(stream):
    """A stream of adversarial events: what is admitted is on the grid, within each kind's
    budget, under the bound in bits, and holds no long piece of the input."""
    state, last, admitted = StreamState(), 0, []
    for seq, (kind, body) in enumerate(stream, start=1):
        ev = {**(body if isinstance(body, dict) else {}), "seq": seq, "t": 1.7e9, "kind": kind}
        try:
            a = check_event(ev, LIMITS, last)
            check_stream(a, state, LIMITS)
        except (_Refusal, Violation):
            break  # a refusal ends the read, as in the guard
        last = seq
        admitted.append(a)
    bits = 0.0
    for a in admitted:
        body = {k: v for k, v in a.items() if k not in ("seq", "kind")}
        assert on_grid(contract.EVENTS[a["kind"]], body, LIMITS) or a["kind"] == "error"
        if a["kind"] != "stage":
            bits += contract.EVENTS[a["kind"]].tally(LIMITS).bits
    stages = {a["stage"] for a in admitted if a["kind"] == "stage"}
    bits += len(stages) * (math.log2(LIMITS.images + 2) + contract.STAGE_STEPS + 1)
    bits += len(admitted) * math.log2(len(contract.EVENTS) + 1)
    for kind, n in state.counts.items():
        assert n <= contract.event_budget(kind, LIMITS.epochs)
    assert bits <= information_bound(LIMITS).bits
    assert_no_long_secret(admitted)


# ------------------------------------------------------------------ shown with the run

def _store_with_bounds(tmp_path):
    from sqlmodel import Session

    from orchestrator.store import repo
    from orchestrator.store.db import make_engine

    url = f"sqlite:///{tmp_path / 'orch.db'}"
    engine = make_engine(url)
    s = Session(engine, expire_on_commit=False)
    dev = repo.upsert_device(session=s, serial="SER1", model="Pixel 7")
    exp = repo.upsert_experiment(session=s, name="e", spec={}, spec_hash="x")
    runs = []
    for n in (1, 2):
        run = repo.create_run(session=s, experiment_id=exp.id, variant=f"m{n}",
                              device_id=dev.id)
        b = information_bound(PAPER)
        repo.record_bound(session=s, run_id=run.id, device_id=dev.id, bits=b.bits,
                          nbytes=b.bytes, numbers=b.numbers, choices=b.choices)
        repo.record_transfer(session=s, direction="pull", kind="metrics",
                             device_path="/data/local/tmp/orch/runs/r/result.json",
                             nbytes=900, run_id=run.id, device_id=dev.id)
        runs.append(run)
    return url, engine, s, runs


def test_orch_audit_states_the_bound_and_the_device_sum(tmp_path):
    """`orch audit RUN` prints the run's bound and its device's sum; --format json has both."""
    import subprocess
    import sys
    from pathlib import Path

    url, engine, s, runs = _store_with_bounds(tmp_path)
    s.close()
    engine.dispose()
    repo_dir = Path(__file__).resolve().parents[2]

    def audit(*extra):
        return subprocess.run([sys.executable, "-m", "orchestrator", "audit", str(runs[0].id),
                               "--db", url, *extra], cwd=repo_dir, capture_output=True,
                              text=True, timeout=120)

    b = information_bound(PAPER)
    table, js = audit(), audit("--format", "json")
    assert table.returncode == 0 and js.returncode == 0, table.stderr + js.stderr
    kib = f"{b.bytes / 1024:.1f} KiB"
    assert (f"at most {kib} of information could have left the device ({b.numbers} numbers "
            f"at their admitted precision, {b.choices} enumerated choices)") in table.stdout
    assert f"all 2 run(s) on this device together: at most {2 * b.bytes / 1024:.1f} KiB" \
        in table.stdout
    out = json.loads(js.stdout)
    assert out["bound"]["bytes"] == out["verdict"]["bound_bytes"] == b.bytes <= 2048
    assert out["device_bound"] == {"device_id": runs[0].device_id, "runs": 2,
                                   "bytes": 2 * b.bytes}


def test_the_dashboard_privacy_panel_shows_the_bound(tmp_path):
    """The run page's privacy panel and /api/runs/ID/audit carry the same bound line."""
    from dashboard import create_app
    from dashboard.testing import make_client

    url, engine, s, runs = _store_with_bounds(tmp_path)
    app = create_app(url, engine=engine)
    with make_client(app) as client:
        page = client.get(f"/runs/{runs[0].id}")
        api = client.get(f"/api/runs/{runs[0].id}/audit").json()
    s.close()
    engine.dispose()
    b = information_bound(PAPER)
    assert api["bound_bytes"] == b.bytes and api["verdict"] == "pass"
    assert page.status_code == 200
    assert f'data-bound-bytes="{b.bytes}"' in page.text and api["bound_line"] in page.text
