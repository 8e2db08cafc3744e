"""The dashboard in a real headless Chromium (Debian's), driven by Playwright, against uvicorn.

Each page is opened, its tables and SVG charts are checked, the console must stay free of
errors and CSP violations, and a screenshot is kept under artifacts/screenshots/.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from sqlmodel import Session

from dashboard import create_app
from dashboard.render import pct
from dashboard.sample_data import fill
from dashboard.testing import ALL_DRAWN, CHROMIUM, CHROMIUM_ARGS, Watched, serve
from orchestrator.store import queries, repo
from orchestrator.store.db import make_engine

sync_api = pytest.importorskip("playwright.sync_api")

SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
XSS_NAME = "<script>alert('xss')</script>"
XSS_VARIANT = "<img src=x onerror=alert('variant')>"
TOKEN = "browser-test-token"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A filled store (plus a run whose names carry markup) served by uvicorn on loopback."""
    url = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'b.db'}"
    engine = make_engine(url)
    session = Session(engine, expire_on_commit=False)
    info = fill(session, repeats=2)
    exp = repo.upsert_experiment(session=session, name=XSS_NAME,
                                 spec={"variants": {XSS_VARIANT: {}}}, spec_hash="x")
    xss_run = repo.create_run(session=session, experiment_id=exp.id, variant=XSS_VARIANT,
                              device_id=info.device_ids[0], status="finished", accuracy=0.7,
                              timing={"train": 2.0, "total": 3.0})
    repo.record_metrics(session=session, run_id=xss_run.id,
                        metrics=[("test_acc", 1, 0.6), ("test_acc", 2, 0.7)])
    with serve(create_app(url, engine=engine)) as base:
        yield {"base": base, "session": session, "info": info, "url": url, "engine": engine,
               "xss_exp": exp.id, "xss_run": xss_run.id}
    session.close()
    engine.dispose()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def watched(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield Watched(context.new_page(), SHOTS)
    context.close()


def count(page, selector: str) -> int:
    return page.locator(selector).count()


def test_experiments_page(site, watched):
    """The experiments list shows each experiment with a link to its best run."""
    watched.open(site["base"] + "/")
    rows = watched.page.locator("table.experiments tbody tr")
    assert rows.count() == len(repo.list_experiments(session=site["session"]))
    assert "paper-table1" in watched.page.locator("table.experiments").inner_text()
    watched.shot("experiments")
    watched.assert_clean()


def test_table1_page(site, watched):
    """Table 1 has a row per variant, the compare accuracies, and both bar charts drawn."""
    s, info = site["session"], site["info"]
    rows = queries.table1(session=s, experiment=info.experiment)
    watched.open(f"{site['base']}/experiments/{info.experiment_id}")
    page = watched.page
    assert count(page, "#table1 tbody tr") == len({r.variant for r in rows})
    text = page.locator("#table1").inner_text()
    for r in rows:
        assert pct(r.accuracy) in text
    assert count(page, "figure[data-chart=chart-accuracy] rect.bar") == len(rows)
    assert count(page, "figure[data-chart=chart-train] rect.bar") == len(rows)
    assert count(page, "figure[data-chart=chart-accuracy] .legend-item") == 2
    assert count(page, "figure[data-chart=chart-accuracy] text.tick") >= 4  # axis labels
    watched.shot("experiment-table1")
    watched.assert_clean()


def test_run_page_of_a_fine_tuned_run(site, watched):
    """A method-2 run: loss and accuracy curves with the phase boundary, timing, verdict."""
    s, info = site["session"], site["info"]
    run = next(r for r in (repo.get_run(session=s, run_id=i) for i in info.finished)
               if r.variant == "method2")
    watched.open(f"{site['base']}/runs/{run.id}")
    page = watched.page
    assert count(page, "figure[data-chart=chart-loss] path.series") == 2
    assert count(page, "figure[data-chart=chart-acc] path.series") == 2
    epochs = len(queries.metric_series(session=s, run_id=run.id)["test_acc"])
    assert count(page, "figure[data-chart=chart-acc] circle.dot") == 2 * epochs
    assert count(page, "figure[data-chart=chart-loss] line.phase-line") == 1
    assert count(page, "figure[data-chart=chart-timing] rect.bar") >= 4
    assert count(page, "figure[data-chart=chart-battery] path.series") == 1
    verdict = page.locator(".verdict")
    assert verdict.get_attribute("data-verdict") == "pass"
    assert "0 image bytes left the device" in verdict.inner_text()
    watched.shot("run-method2")
    watched.assert_clean()


def test_run_page_of_a_head_only_run_has_no_boundary(site, watched):
    """Method 1 trains the head only: no phase boundary is drawn."""
    s, info = site["session"], site["info"]
    run = next(r for r in (repo.get_run(session=s, run_id=i) for i in info.finished)
               if r.variant == "method1")
    watched.open(f"{site['base']}/runs/{run.id}")
    assert count(watched.page, "figure[data-chart=chart-loss] path.series") == 2
    assert count(watched.page, "line.phase-line") == 0
    watched.shot("run-method1")
    watched.assert_clean()


def test_devices_and_device_pages(site, watched):
    """Devices list every phone with its health; a device page draws its health charts."""
    info = site["info"]
    watched.open(site["base"] + "/devices")
    assert count(watched.page, "table.devices tbody tr") == len(
        repo.list_devices(session=site["session"]))
    watched.shot("devices")
    watched.open(f"{site['base']}/devices/{info.device_ids[0]}")
    assert count(watched.page, "figure[data-chart=chart-temperature] path.series") == 1
    assert count(watched.page, "table.runs tbody tr[data-live-run]") > 0
    watched.shot("device")
    watched.assert_clean()


def test_select_runs_and_compare_them(site, watched):
    """Ticking two runs and pressing Compare overlays their curves and lists their facts."""
    info = site["info"]
    chosen = info.finished[:2]
    watched.open(site["base"] + "/runs")
    page = watched.page
    for run_id in chosen:
        page.check(f"input[name=run][value='{run_id}']")
    button = page.locator("form.runs-form button[type=submit]")
    assert button.inner_text() == "Compare 2 selected runs"
    button.click()
    page.wait_for_url(re.compile(r"/compare\?"))
    page.wait_for_function(ALL_DRAWN)
    assert count(page, "figure[data-chart=chart-acc] path.series") == 2 * len(chosen)
    assert count(page, "figure[data-chart=chart-loss] path.series") == 2 * len(chosen)
    headers = page.locator("table.compare thead th").all_inner_texts()
    # In the list's order: newest first.
    assert [h.strip() for h in headers[1:]] == [f"#{i}" for i in sorted(chosen, reverse=True)]
    watched.shot("compare")
    watched.assert_clean()


def test_filters_apply_on_change(site, watched):
    """Choosing a status in the filter reloads the list with only that status."""
    watched.open(site["base"] + "/runs")
    page = watched.page
    with page.expect_navigation():
        page.select_option("form.filters select[name=status]", "failed")
    page.wait_for_function(ALL_DRAWN)
    statuses = page.locator("table.runs tbody [data-role=status]").all_inner_texts()
    assert statuses and set(statuses) == {"failed"}
    assert "status=failed" in page.url
    watched.assert_clean()


def test_a_running_run_updates_live_then_finishes(site, watched):
    """The run page follows new epochs and progress, and shows the result when it ends."""
    s, info = site["session"], site["info"]
    run_id = info.running
    watched.open(f"{site['base']}/runs/{run_id}")
    page = watched.page
    dots = count(page, "figure[data-chart=chart-acc] circle.dot")
    label = page.locator("[data-role=progress-label]").inner_text()
    run = repo.get_run(session=s, run_id=run_id)
    epoch = run.progress["epoch"] + 1
    repo.record_metrics(session=s, run_id=run_id, metrics=[
        ("train_acc", epoch, 0.8), ("test_acc", epoch, 0.79), ("train_loss", epoch, 0.4),
        ("test_loss", epoch, 0.45), ("phase", epoch, 0.0)])
    repo.update_run(session=s, run_id=run_id, events_seen=run.events_seen + 1,
                    progress={**run.progress, "epoch": epoch, "done": epoch})
    page.wait_for_function(
        f"() => document.querySelector('[data-role=progress-label]').textContent"
        f".includes('epoch {epoch}/')", timeout=10_000)
    page.wait_for_function(
        f"() => document.querySelectorAll(\"figure[data-chart=chart-acc] circle.dot\").length"
        f" > {dots}", timeout=10_000)
    assert page.locator("[data-role=progress-label]").inner_text() != label
    watched.shot("run-live")
    repo.transition_run(session=s, run_id=run_id, to="finished", accuracy=0.79)
    page.wait_for_function(
        "() => document.querySelector('h1 [data-role=status]').textContent === 'finished'",
        timeout=10_000)
    page.wait_for_function(ALL_DRAWN)
    assert count(page, "[data-role=progress]") == 0
    assert page.locator(".stat [data-role=accuracy]").inner_text() == pct(0.79)
    watched.assert_clean()


def test_runs_list_follows_running_rows(site, watched):
    """In a list, a running row's progress and status change without a reload."""
    s, info = site["session"], site["info"]
    run = repo.create_run(session=s, experiment_id=info.experiment_id, variant="method1",
                          device_id=info.device_ids[2], status="running",
                          progress={"stage": "features", "done": 10, "total": 200})
    watched.open(site["base"] + "/runs")
    page = watched.page
    row = f"tr[data-live-run='{run.id}']"
    assert "10/200" in page.locator(f"{row} [data-role=progress-label]").inner_text()
    repo.update_run(session=s, run_id=run.id, progress={"stage": "features", "done": 150,
                                                        "total": 200})
    page.wait_for_function(
        f"() => document.querySelector(\"{row} [data-role=progress-label]\")"
        ".textContent.includes('150/200')", timeout=10_000)
    assert page.locator(f"{row} progress").get_attribute("value") is not None
    repo.transition_run(session=s, run_id=run.id, to="failed", error="phone unplugged")
    page.wait_for_function(
        f"() => document.querySelector(\"{row} [data-role=status]\").textContent === 'failed'",
        timeout=10_000)
    watched.assert_clean()


def test_table1_refreshes_when_a_run_ends(site, watched):
    """A run finishing on a new phone fills its Table 1 cell without a manual reload."""
    s, info = site["session"], site["info"]
    dev = repo.upsert_device(session=s, serial="NEWPHONE1", model="Pixel 8")
    run = repo.create_run(session=s, experiment_id=info.experiment_id, variant="method2",
                          device_id=dev.id, status="running",
                          progress={"stage": "train", "epoch": 2, "epochs": 20})
    watched.open(f"{site['base']}/experiments/{info.experiment_id}")
    page = watched.page
    assert "Pixel 8" in page.locator("#table1 thead").text_content()  # the running run's cell
    assert pct(0.9612) not in page.locator("#table1").inner_text()
    repo.transition_run(session=s, run_id=run.id, to="finished", accuracy=0.9612,
                        timing={"train": 30.0, "total": 60.0}, delegate_used="nnapi")
    page.wait_for_function(f"() => document.getElementById('table1').textContent"
                           f".includes('{pct(0.9612)}')", timeout=10_000)
    page.wait_for_function(ALL_DRAWN)
    bars = count(page, "figure[data-chart=chart-accuracy] rect.bar")
    assert bars == len(queries.table1(session=s, experiment=info.experiment))
    watched.assert_clean()


def test_markup_in_names_shows_as_text_and_never_runs(site, watched):
    """An experiment and variant named with <script>/<img onerror> display literally."""
    watched.open(f"{site['base']}/experiments/{site['xss_exp']}")
    page = watched.page
    assert page.locator("h1").inner_text().strip() == XSS_NAME
    assert XSS_VARIANT in page.locator("#table1").inner_text()
    assert count(page, "img[src=x]") == 0
    legend = page.locator("figure[data-chart=chart-accuracy] .legend").inner_text()
    assert XSS_VARIANT in legend  # chart labels are text nodes too
    watched.open(f"{site['base']}/runs/{site['xss_run']}")
    watched.open(f"{site['base']}/")
    watched.shot("xss-escaped")
    watched.assert_clean()


def test_csp_blocks_inline_script_and_the_check_sees_it(site, watched):
    """The watcher is not blind: an injected inline script is blocked and reported."""
    watched.open(site["base"] + "/")
    page = watched.page
    page.evaluate("""() => { const s = document.createElement('script');
                              s.textContent = 'window.__ran = true';
                              document.body.appendChild(s); }""")
    page.wait_for_function("() => window.__csp.length > 0")
    assert page.evaluate("window.__ran === undefined")
    assert "script-src" in page.evaluate("window.__csp[0]")


def test_token_from_the_url_becomes_a_cookie_in_the_browser(site, browser):
    """With a token: ?token= once, then the cookie carries pages and the pages' API calls."""
    app = create_app(site["url"], token=TOKEN, engine=site["engine"])
    with serve(app) as base:
        context = browser.new_context()
        try:
            w = Watched(context.new_page(), SHOTS)
            w.open(f"{base}/runs?token={TOKEN}")
            assert w.page.url == f"{base}/runs"
            cookie = next(c for c in context.cookies() if c["name"] == "orch_dashboard_token")
            assert cookie["httpOnly"] and cookie["value"] == TOKEN
            status = w.page.evaluate("fetch('/api/experiments').then(r => r.status)")
            assert status == 200
            w.assert_clean()
        finally:
            context.close()
        stranger = browser.new_context()
        try:
            resp = stranger.new_page().goto(f"{base}/runs")
            assert resp.status == 401
        finally:
            stranger.close()
