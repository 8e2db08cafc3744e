"""The dashboard's JSON API and server-rendered pages over a filled SQLite store (TestClient)."""

from __future__ import annotations

import math

import pytest
from sqlmodel import Session

from dashboard import create_app
from dashboard.render import pct
from dashboard.sample_data import fill
from dashboard.testing import make_client
from orchestrator.store import queries, repo
from orchestrator.store.db import make_engine


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A file store with sample results, its app and a client (built once)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'api.db'}"
    engine = make_engine(url)
    session = Session(engine, expire_on_commit=False)
    info = fill(session, repeats=2)
    app = create_app(url, engine=engine)
    with make_client(app) as client:
        yield client, session, info
    session.close()
    engine.dispose()


def test_experiments_list_summarises_each_experiment(env):
    """/api/experiments: run counts, devices and the best run, as the store has them."""
    client, s, info = env
    body = client.get("/api/experiments").json()
    assert [e["name"] for e in body] == [info.experiment]
    runs = repo.list_runs(session=s, experiment=info.experiment)
    e = body[0]
    assert e["runs"] == len(runs) and e["running"] == 1
    assert e["best_accuracy"] == max(r.accuracy for r in runs if r.accuracy is not None)
    assert sorted(e["devices"]) == sorted({r.device for r in runs})


def test_experiment_detail_is_table1(env):
    """/api/experiments/ID gives queries.table1's rows, plus the spread of finished repeats."""
    client, s, info = env
    body = client.get(f"/api/experiments/{info.experiment_id}").json()
    expected = [r.model_dump(mode="json") for r in queries.table1(session=s,
                                                                 experiment=info.experiment)]
    assert body["table"] == expected
    spread = {(c["variant"], c["device"]): c for c in body["stats"]}
    for row in body["table"]:
        cell = spread.get((row["variant"], row["device"]))
        if cell and row["status"] == "finished":
            assert cell["accuracy_min"] <= row["accuracy"] <= cell["accuracy_max"]


def test_runs_endpoint_filters_sorts_and_validates(env):
    """/api/runs: status filter, sort order, paging bounds checked by the schema."""
    client, _s, info = env
    body = client.get("/api/runs", params={"status": "finished", "sort": "accuracy",
                                           "order": "asc", "limit": 5}).json()
    accs = [r["accuracy"] for r in body["runs"]]
    assert body["total"] == len(info.finished) and len(accs) == 5 and accs == sorted(accs)
    assert client.get("/api/runs", params={"limit": 0}).status_code == 422
    assert client.get("/api/runs", params={"sort": "nope"}).status_code == 422
    both = client.get("/api/runs", params=[("status", "running"), ("status", "failed")]).json()
    assert {r["id"] for r in both["runs"]} == {info.running, info.failed}


def test_run_detail_has_metrics_ledger_and_verdict(env):
    """/api/runs/ID: per-epoch series, health samples, the ledger and its passing verdict."""
    client, s, info = env
    run_id = info.finished[0]
    body = client.get(f"/api/runs/{run_id}").json()
    series = queries.metric_series(session=s, run_id=run_id)
    assert body["metrics"]["test_acc"] == [list(p) for p in series["test_acc"]]
    assert len(body["transfers"]) == len(repo.run_transfers(session=s, run_id=run_id))
    assert len(body["samples"]) == len(repo.run_samples(session=s, run_id=run_id))
    assert body["audit"]["verdict"] == "pass"
    assert body["audit"]["headline"] == "0 image bytes left the device: only schema data crossed"
    assert body["device"]["serial"] == repo.get_device(session=s,
                                                       device_id=body["run"]["device_id"]).serial


def test_run_page_names_skipped_photos_and_the_decode_path(env):
    """A run's page says how many photos were skipped as unsupported and how they decoded."""
    client, _, info = env
    page = client.get(f"/runs/{info.finished[0]}").text
    assert "3 images in unsupported formats (not JPEG/PNG, e.g. HEIC) skipped." in page
    assert "Decoded fast, orientation exif." in page
    assert "over the pixel budget" not in page  # no photo was too large


def test_a_leaky_run_fails_its_audit_in_api_and_page(env):
    """A pulled image in the ledger turns the verdict to fail, in JSON and on the page."""
    client, s, info = env
    dev = info.device_ids[0]
    run = repo.create_run(session=s, experiment_id=info.experiment_id, variant="method1",
                          device_id=dev, status="finished", accuracy=0.9)
    repo.record_transfer(session=s, run_id=run.id, device_id=dev, direction="pull",
                         kind="metrics", device_path="/data/local/tmp/orch/runs/x/result.json",
                         nbytes=900)
    repo.record_transfer(session=s, run_id=run.id, device_id=dev, direction="pull",
                         kind="images", device_path="/sdcard/DCIM/catsdogs/cat/1.jpg",
                         nbytes=51_234)
    audit = client.get(f"/api/runs/{run.id}/audit").json()
    assert audit["verdict"] == "fail" and audit["leaked_bytes"] == 51_234
    page = client.get(f"/runs/{run.id}").text
    assert 'data-verdict="fail"' in page and "/sdcard/DCIM/catsdogs/cat/1.jpg" in page


def test_nan_metrics_are_null_in_json_and_marked_on_the_page(env):
    """A diverged (NaN) loss is null in the API and a NaN marker in the chart data, not a 500."""
    client, s, info = env
    run = repo.create_run(session=s, experiment_id=info.experiment_id, variant="method2",
                          device_id=info.device_ids[2], status="failed",
                          error="loss became NaN at epoch 2")
    repo.record_metrics(session=s, run_id=run.id, metrics=[
        ("train_loss", 1, 0.7), ("train_loss", 2, math.nan), ("test_acc", 1, 0.5)])
    body = client.get(f"/api/runs/{run.id}")
    assert body.status_code == 200
    assert body.json()["metrics"]["train_loss"] == [[1, 0.7], [2, None]]
    page = client.get(f"/runs/{run.id}")
    assert page.status_code == 200 and '"nan":[2]' in page.text.replace(" ", "")


def test_progress_follows_the_store(env):
    """/api/progress reflects what the pipeline last wrote for a running run."""
    client, s, info = env
    before = client.get("/api/progress", params={"id": info.running}).json()
    assert before[0]["status"] == "running"
    progress = repo.get_run(session=s, run_id=info.running).progress
    done = progress["done"] + 1
    repo.update_run(session=s, run_id=info.running,
                    progress={**progress, "done": done, "epoch": done})
    after = client.get("/api/progress", params={"id": info.running}).json()
    assert after[0]["bar"]["value"] == done and f"epoch {done}/" in after[0]["bar"]["label"]


def test_run_live_has_the_charts_of_the_page(env):
    """/api/runs/ID/live carries the same chart names the run page draws."""
    client, _s, info = env
    live = client.get(f"/api/runs/{info.running}/live").json()
    assert live["status"] == "running" and live["progress"]["label"]
    assert {"loss", "accuracy", "timing", "battery"} <= set(live["charts"])


def test_compare_keeps_order_and_series(env):
    """/api/compare returns the chosen runs in order with their curves."""
    client, _s, info = env
    ids = [info.finished[2], info.finished[0]]
    body = client.get("/api/compare", params=[("run", i) for i in ids]).json()
    assert [r["id"] for r in body["runs"]] == ids
    assert set(body["metrics"]) == {str(i) for i in ids}
    assert client.get("/api/compare").status_code == 422


def test_devices_carry_their_latest_health(env):
    """/api/devices: each phone with its latest sample, the newest of its health page."""
    client, s, info = env
    body = client.get("/api/devices").json()
    assert {d["device"]["id"] for d in body} == set(info.device_ids)
    for d in body:
        (latest,) = queries.device_samples(session=s, device_id=d["device"]["id"], limit=1)
        assert d["latest"]["battery"] == latest.battery
    one = client.get(f"/api/devices/{info.device_ids[0]}").json()
    assert one["summary"]["label"] == "pixel7" and one["samples"]


def test_unknown_ids_are_404_json_for_api_and_html_for_pages(env):
    """Not found is JSON with a hint under /api, a page elsewhere."""
    client, _s, _info = env
    api = client.get("/api/runs/987654")
    assert api.status_code == 404 and "987654" in api.json()["detail"] and api.json()["hint"]
    page = client.get("/runs/987654")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert client.get("/experiments/987654").status_code == 404
    assert client.get("/no/such/page").status_code == 404


HUGE = str(2**63)  # one past SQLite's largest integer


def test_ids_beyond_the_store_range_are_404_or_422_never_500(env):
    """Pages answer 404 for an id no row can have; the API refuses it by its schema (422)
    or, at the bound itself, answers 404; filters with such ids are ignored on pages."""
    client, _s, _info = env
    for path in ("/runs/", "/experiments/", "/devices/"):
        assert client.get(path + HUGE).status_code == 404, path
        assert client.get(path + str(2**63 - 1)).status_code == 404, path
    for path in ("/api/runs/", "/api/experiments/", "/api/devices/", "/api/runs/"):
        assert client.get(path + HUGE).status_code == 422, path
        assert client.get(path + str(2**63 - 1)).status_code == 404, path
    assert client.get(f"/runs?experiment={HUGE}&device={HUGE}&page={HUGE}").status_code == 200
    assert client.get(f"/compare?run={HUGE}").status_code == 200
    assert client.get("/api/progress", params={"id": HUGE}).status_code == 422
    schema = client.get("/api/openapi.json").json()
    run_id = schema["paths"]["/api/runs/{run_id}"]["get"]["parameters"][0]["schema"]
    assert run_id["maximum"] == 2**63 - 1 and run_id["minimum"] == 1


def test_openapi_schema_lists_the_api_only_and_no_cdn_docs(env):
    """The schema at /api/openapi.json covers /api; Swagger/ReDoc (CDN assets) are off."""
    client, _s, _info = env
    schema = client.get("/api/openapi.json").json()
    paths = set(schema["paths"])
    assert {"/api/experiments", "/api/runs", "/api/runs/{run_id}", "/api/progress",
            "/api/compare", "/api/devices"} <= paths
    assert all(p.startswith("/api/") for p in paths)
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404


@pytest.mark.parametrize("path", ["/", "/runs", "/devices", "/experiments/{exp}",
                                  "/runs/{run}", "/runs/{running}", "/devices/{dev}",
                                  "/compare?run={run}&run={run2}"])
def test_every_page_renders_with_a_strict_csp(env, path):
    """Each page is 200, HTML, under a CSP without inline script, and has no inline script."""
    client, _s, info = env
    url = path.format(exp=info.experiment_id, run=info.finished[1], run2=info.finished[4],
                      running=info.running, dev=info.device_ids[0])
    r = client.get(url)
    assert r.status_code == 200, r.text[:300]
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    for tag in r.text.split("<script")[1:]:
        head = tag.split(">", 1)[0]
        assert 'src="/static/' in head or 'type="application/json"' in head, head


def test_table1_page_shows_the_compare_rows(env):
    """The experiment page's Table 1 links every queries.table1 row with its accuracy."""
    client, s, info = env
    html = client.get(f"/experiments/{info.experiment_id}").text
    for row in queries.table1(session=s, experiment=info.experiment):
        assert f'href="/runs/{row.run_id}">{pct(row.accuracy)}' in html


def test_runs_page_filters_from_the_query_string(env):
    """/runs?status=failed lists only failed runs; junk values are ignored, not errors."""
    client, _s, info = env
    html = client.get("/runs", params={"status": "failed"}).text
    assert f'data-live-run="{info.failed}"' in html
    assert f'data-live-run="{info.finished[0]}"' not in html
    assert client.get("/runs", params={"device": "x", "page": "-3", "sort": "?"}).status_code \
        == 200


def test_devices_page_finds_by_any_name_and_sorts(env):
    """/devices?q= matches alias, serial, model or SoC; sort=name orders by the shown name."""
    client, _s, _info = env

    def shown(url: str) -> list[str]:
        body = client.get(url).text
        rows = body.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in body else ""
        return [r.split('class="strong" href="/devices/', 1)[1].split(">", 1)[1].split("<", 1)[0]
                for r in rows.split("<tr>")[1:]]

    assert shown("/devices?q=exynos") == ["SM-G991B"]
    assert shown("/devices?q=28121FDH") == ["pixel7"]
    assert set(shown("/devices?q=pixel")) == {"pixel7", "Pixel 4a"}
    assert shown("/devices?sort=name") == sorted(shown("/devices"), key=str.lower)
    empty = client.get("/devices?q=nokia").text
    assert "No device matches" in empty and 'href="/devices"' in empty


def test_table1_downloads_as_the_same_csv_the_cli_prints(env):
    """/api/experiments/ID/table1.csv: an attachment with the compare records, one per cell."""
    import csv
    import io

    from orchestrator.store.export import COMPARE_COLUMNS, compare_records

    client, s, info = env
    r = client.get(f"/api/experiments/{info.experiment_id}/table1.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    got = list(csv.DictReader(io.StringIO(r.text)))
    exp = repo.get_experiment(session=s, name="paper-table1")
    want = compare_records(queries.table1(session=s, experiment=exp.name),
                           queries.cell_stats(session=s, experiment_id=exp.id))
    assert tuple(got[0]) == COMPARE_COLUMNS and len(got) == len(want)
    assert [(g["variant"], g["device"], g["run"]) for g in got] == [
        (w["variant"], w["device"], str(w["run"])) for w in want]
    page = client.get(f"/experiments/{info.experiment_id}").text
    assert f'href="/api/experiments/{info.experiment_id}/table1.csv"' in page


def test_run_page_shows_the_runtime_and_what_each_delegate_took(env):
    """The run page names the interpreter with its version and, per model, how many nodes
    the delegate took, as result.json reports them."""
    client, s, info = env
    result = {"versions": {"interpreter": "tflite_runtime",
                           "interpreter_version": "2.20.0dev20250409"},
              "delegation": {"frozen": {"delegate": "xnnpack", "delegated_nodes": 31,
                                        "total_nodes": 31},
                             "train": {"delegate": "none", "delegated_nodes": 0,
                                       "total_nodes": 533}}}
    run = repo.create_run(session=s, experiment_id=info.experiment_id, variant="method2",
                          device_id=info.device_ids[0], status="finished", result=result)

    page = client.get(f"/runs/{run.id}").text

    assert "tflite_runtime 2.20.0dev20250409" in page
    assert "xnnpack took 31 of 31 nodes" in page
    assert "no delegate: plain CPU kernels for all 533 nodes" in page
