"""Server-rendered HTML pages. Chart data rides along as JSON in the page; static JS draws it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from dashboard import data, views
from dashboard.deps import SessionDep
from dashboard.render import render
from orchestrator.store import queries, repo
from orchestrator.store.ids import MAX_ID, valid_id
from orchestrator.store.queries import SORT_KEYS
from orchestrator.store.runtime_info import delegation_rows, runtime_label

router = APIRouter(include_in_schema=False)
PER_PAGE = 50
EXPERIMENT_SORTS = ("name", "runs", "best", "last")
DEVICE_SORTS = ("last", "name", "runs", "best", "battery")


def _int(v: str | None) -> int | None:
    """A positive id or page number from the query string; None if it is not one."""
    try:
        n = int(v) if v not in (None, "") and len(v) <= 20 else None  # type: ignore[arg-type]
    except ValueError:
        return None
    return n if n is not None and valid_id(n) else None


@dataclass
class ListParams:
    """Filters, sort and page of a runs list, read leniently from the query string."""

    experiment: int | None = None
    variant: str | None = None
    device: int | None = None
    status: str | None = None
    sort: str = "id"
    order: str = "desc"
    page: int = 1

    @classmethod
    def parse(cls, request: Request) -> ListParams:
        q = request.query_params
        sort = q.get("sort") if q.get("sort") in SORT_KEYS else "id"
        status = q.get("status") if q.get("status") in repo.RUN_STATUSES else None
        return cls(experiment=_int(q.get("experiment")), variant=q.get("variant") or None,
                   device=_int(q.get("device")), status=status, sort=sort or "id",
                   order="asc" if q.get("order") == "asc" else "desc",
                   page=min(MAX_ID // PER_PAGE, max(1, _int(q.get("page")) or 1)))

    def as_query(self) -> dict[str, Any]:
        out = asdict(self)
        if out["page"] == 1:
            out["page"] = None
        return out

    def fetch(self, session: Session, **fixed: Any) -> queries.RunPage:
        filters = {"experiment_id": self.experiment, "variant": self.variant,
                   "device_id": self.device, "statuses": [self.status] if self.status else None}
        filters.update(fixed)
        return queries.runs_page(session=session, sort=self.sort,
                                 descending=self.order == "desc", limit=PER_PAGE,
                                 offset=(self.page - 1) * PER_PAGE, **filters)


def _options(session: Session, experiment_id: int | None = None) -> dict[str, Any]:
    return {"experiments": repo.list_experiments(session=session),
            "variants": queries.run_variants(session=session, experiment_id=experiment_id),
            "devices": repo.list_devices(session=session), "statuses": repo.RUN_STATUSES}


def _page(request: Request, name: str, **context: Any) -> HTMLResponse:
    return render(name, store=request.app.state.store_label, **context)


@router.get("/", response_class=HTMLResponse)
def experiments_page(request: Request, session: SessionDep) -> HTMLResponse:
    items = queries.experiments_summary(session=session)
    q = (request.query_params.get("q") or "").strip()
    if q:
        items = [e for e in items if q.lower() in e.name.lower()]
    sort = request.query_params.get("sort")
    sort = sort if sort in EXPERIMENT_SORTS else "last"
    keyf = {"name": lambda e: e.name.lower(), "runs": lambda e: -e.runs,
            "best": lambda e: -(e.best_accuracy or -1),
            "last": lambda e: -(e.last_activity or e.created).timestamp()}[sort]
    items.sort(key=keyf)
    running = sum(e.running for e in items)
    return _page(request, "experiments.html", title="Experiments", page="experiments",
                 nav="experiments", items=items, q=q, sort=sort, running=running,
                 devices=len(repo.list_devices(session=session)))


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
def experiment_page(experiment_id: int, request: Request, session: SessionDep) -> HTMLResponse:
    detail = data.experiment_detail(session, experiment_id)
    table = views.table1_view(detail.table, detail.stats)
    params = ListParams.parse(request)
    runs = params.fetch(session, experiment_id=experiment_id)
    return _page(request, "experiment.html", title=detail.experiment.name, page="experiment",
                 nav="experiments", exp=detail.experiment, spec=detail.experiment.spec,
                 table=table, charts=views.table1_charts(table), runs=runs, params=params,
                 options=_options(session, experiment_id))


@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request, session: SessionDep) -> HTMLResponse:
    params = ListParams.parse(request)
    return _page(request, "runs.html", title="Runs", page="runs", nav="runs",
                 runs=params.fetch(session), params=params, options=_options(session))


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(run_id: int, request: Request, session: SessionDep) -> HTMLResponse:
    d = data.run_detail(session, run_id)
    run = d.run
    return _page(request, "run.html", title=f"Run {run.id}", page="run", nav="runs", d=d,
                 run=run, charts=data.run_charts(run, d.metrics, d.samples),
                 timing=views.timing_view(run.timing or {}),
                 delegate_state=views.delegate_state(run), live=views.progress_view(run),
                 result=run.result or {}, runtime=runtime_label(run.result),
                 delegation=delegation_rows(run.result))


@router.get("/devices", response_class=HTMLResponse)
def devices_page(request: Request, session: SessionDep) -> HTMLResponse:
    items = queries.device_summaries(session=session)
    total = len(items)
    q = (request.query_params.get("q") or "").strip()
    if q:
        items = [s for s in items if q.lower() in " ".join(
            x or "" for x in (s.label, s.device.serial, s.device.manufacturer, s.device.model,
                              s.device.soc)).lower()]
    sort = request.query_params.get("sort")
    sort = sort if sort in DEVICE_SORTS else "last"
    if sort != "last":  # device_summaries comes most recently seen first
        battery = {s.device.id: s.latest.battery if s.latest and s.latest.battery is not None
                   else 101.0 for s in items}
        keyf = {"name": lambda s: s.label.lower(), "runs": lambda s: -s.runs,
                "best": lambda s: -(s.best_accuracy or -1),
                "battery": lambda s: battery[s.device.id]}[sort]
        items.sort(key=keyf)
    return _page(request, "devices.html", title="Devices", page="devices", nav="devices",
                 items=items, total=total, q=q, sort=sort)


@router.get("/devices/{device_id}", response_class=HTMLResponse)
def device_page(device_id: int, request: Request, session: SessionDep) -> HTMLResponse:
    d = data.device_detail(session, device_id)
    params = ListParams.parse(request)
    runs = params.fetch(session, device_id=device_id)
    return _page(request, "device.html", title=d.summary.label, page="device", nav="devices",
                 d=d, dev=d.summary.device, runs=runs, params=params,
                 options=_options(session), charts=views.health_charts(d.samples))


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request, session: SessionDep) -> HTMLResponse:
    ids = [i for v in request.query_params.getlist("run") if (i := _int(v)) is not None]
    result = data.compare(session, ids)
    missing = [i for i in ids[:data.MAX_COMPARE] if i not in {r.id for r in result.runs}]
    return _page(request, "compare.html", title="Compare runs", page="compare", nav="runs",
                 runs=result.runs, charts=views.compare_charts(result.runs, result.metrics),
                 facts=views.compare_facts(result.runs), missing=missing,
                 too_many=len(ids) > data.MAX_COMPARE, max_compare=data.MAX_COMPARE,
                 labels=[views.run_label(r) for r in result.runs])
