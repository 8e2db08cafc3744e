"""The dashboard over a store filled by the real pipeline (`orch run --device local`).

Tiny models (alpha 0.25, 96 px, random weights) on a synthetic image set, so it runs in
seconds; what matters is that what the pipeline writes is what the pages read.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import Session

from dashboard import create_app
from dashboard.testing import CHROMIUM, CHROMIUM_ARGS, Watched, make_client, serve
from orchestrator.store import queries, repo
from orchestrator.store.db import make_engine

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "artifacts" / "screenshots"
SPEC = """\
name: dash-tiny
model: {arch: mobilenet_v1, alpha: 0.25, input_size: 96, weights: none}
head: {dropout: 0.2, classes: [circle, square]}
data: {source: "host:imgs", train_per_class: 6, test_per_class: 6, seed: 0}
training: {batch_size: 4, head_epochs: 2, finetune_epochs: 2}
variants:
  method1: {finetune_from: null}
  method2: {finetune_from: B}
delegate: cpu
"""


@pytest.fixture(scope="module")
def pipeline_store(tmp_path_factory):
    """Run both variants of a tiny spec locally, through the real CLI, into a fresh store."""
    work = tmp_path_factory.mktemp("pipeline")
    env = {**os.environ, "ORCH_HOME": str(work / "home")}
    env.pop("ORCH_DB", None)

    def orch(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=work,
                              env=env, capture_output=True, text=True, timeout=600)

    synth = orch("data", "synth", "imgs", "--per-class", "12", "--size", "96")
    assert synth.returncode == 0, synth.stderr
    (work / "spec.yaml").write_text(SPEC)
    run = orch("run", "spec.yaml", "--device", "local")
    assert run.returncode == 0, run.stdout + run.stderr
    url = f"sqlite:///{work / 'home' / 'orch.db'}"
    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as s:
        yield url, engine, s
    engine.dispose()


def test_pipeline_runs_show_as_table1_with_a_passing_audit(pipeline_store):
    """Table 1, run details and the real egress guard's ledger read back through the API."""
    url, engine, s = pipeline_store
    exp = repo.get_experiment(session=s, name="dash-tiny")
    with make_client(create_app(url, engine=engine)) as c:
        detail = c.get(f"/api/experiments/{exp.id}").json()
        assert [r["variant"] for r in detail["table"]] == ["method1", "method2"]
        assert detail["table"] == [r.model_dump(mode="json")
                                   for r in queries.table1(session=s, experiment="dash-tiny")]
        for row in detail["table"]:
            body = c.get(f"/api/runs/{row['run_id']}").json()
            assert body["run"]["status"] == "finished"
            assert body["audit"]["verdict"] == "pass", body["audit"]
            assert {t["kind"] for t in body["audit"]["pulled_by_kind"]} <= {
                "metrics", "events", "result"}
            assert body["metrics"]["test_acc"]
            page = c.get(f"/runs/{row['run_id']}")
            assert page.status_code == 200 and "0 image bytes left the device" in page.text


def test_pipeline_run_page_draws_both_phases_in_chromium(pipeline_store):
    """A real method-2 run's page draws its curves with the head / fine-tune boundary."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    url, engine, s = pipeline_store
    run = next(r for r in repo.list_runs(session=s, experiment="dash-tiny")
               if r.variant == "method2")
    epochs = len(queries.metric_series(session=s, run_id=run.id)["test_acc"])
    with serve(create_app(url, engine=engine)) as base, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            w = Watched(browser.new_page(viewport={"width": 1280, "height": 900}), SHOTS)
            w.open(f"{base}/runs/{run.id}")
            page = w.page
            assert page.locator("figure[data-chart=chart-acc] circle.dot").count() == 2 * epochs
            assert page.locator("figure[data-chart=chart-loss] line.phase-line").count() == 1
            assert page.locator(".verdict").get_attribute("data-verdict") == "pass"
            w.shot("pipeline-run")
            w.assert_clean()
        finally:
            browser.close()
