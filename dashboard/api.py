"""The JSON API under /api (schema at /api/openapi.json). Read-only; NaN is sent as null."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from dashboard import data
from dashboard.deps import SessionDep
from dashboard.render import dumps
from orchestrator.audit import AuditVerdict, audit_verdict
from orchestrator.store import queries, repo
from orchestrator.store.export import COMPARE_COLUMNS, compare_records, to_csv
from orchestrator.store.ids import MAX_ID
from orchestrator.store.queries import (
    SORT_KEYS,
    DeviceSummary,
    ExperimentSummary,
    RunPage,
)


class SafeJSONResponse(JSONResponse):
    """JSON with NaN / ±inf as null: a diverged loss must not turn a page into a 500."""

    def render(self, content: Any) -> bytes:
        return dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


class ApiError(BaseModel):
    """The body of every error the API answers itself (404, 503)."""

    detail: str
    hint: str | None = None


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ApiError, "description": "No such id in the store."}}

router = APIRouter(prefix="/api", tags=["results"], default_response_class=SafeJSONResponse)

# Ids are bounded as the store bounds them: a larger one names nothing (and overflows SQLite).
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
IdFilter = Annotated[int | None, Query(ge=1, le=MAX_ID)]
IdList = list[Annotated[int, Field(ge=1, le=MAX_ID)]]
SortParam = Annotated[Literal[SORT_KEYS], Query(description="Column to sort by.")]  # type: ignore[valid-type]


@router.get("/experiments", response_model=list[ExperimentSummary])
def experiments(session: SessionDep) -> Any:
    """Every experiment with run counts, devices and best accuracy."""
    return queries.experiments_summary(session=session)


@router.get("/experiments/{experiment_id}", response_model=data.ExperimentDetail,
            responses=NOT_FOUND)
def experiment(experiment_id: Id, session: SessionDep) -> Any:
    """The paper's Table 1 for one experiment (variant × device) and the spread of repeats."""
    return data.experiment_detail(session, experiment_id)


@router.get("/experiments/{experiment_id}/table1.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}, **NOT_FOUND})
def experiment_table_csv(experiment_id: Id, session: SessionDep) -> Response:
    """Table 1 as CSV (as `orch results compare EXP --format csv`): plain numbers, the
    spread of repeated runs included."""
    detail = data.experiment_detail(session, experiment_id)
    body = to_csv(COMPARE_COLUMNS, compare_records(detail.table, detail.stats))
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", detail.experiment.name) or "experiment"
    return Response(body, media_type="text/csv; charset=utf-8", headers={
        "content-disposition": f'attachment; filename="{name}-table1.csv"'})


@router.get("/runs", response_model=RunPage)
def runs(
    session: SessionDep,
    experiment_id: IdFilter = None,
    status: Annotated[list[str] | None, Query(description="Repeat to allow several.")] = None,
    variant: str | None = None,
    device_id: IdFilter = None,
    sweep_id: IdFilter = None,
    sort: SortParam = "id",
    order: Literal["asc", "desc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> Any:
    """Runs, filtered, sorted and paginated (without result.json: read one run for it)."""
    return queries.runs_page(session=session, experiment_id=experiment_id, statuses=status,
                             variant=variant, device_id=device_id, sweep_id=sweep_id,
                             sort=sort, descending=order == "desc", limit=limit, offset=offset)


@router.get("/runs/{run_id}", response_model=data.RunDetail, responses=NOT_FOUND)
def run(run_id: Id, session: SessionDep) -> Any:
    """One run: facts, per-epoch metrics, device samples, transfer ledger and audit verdict."""
    return data.run_detail(session, run_id)


@router.get("/runs/{run_id}/live", response_model=data.RunLive, responses=NOT_FOUND)
def run_live(run_id: Id, session: SessionDep) -> Any:
    """Status, progress and chart data of a run, for pages that follow a live run."""
    return data.run_live(session, run_id)


@router.get("/runs/{run_id}/audit", response_model=AuditVerdict, responses=NOT_FOUND)
def run_audit(run_id: Id, session: SessionDep) -> Any:
    """The privacy verdict of a run, computed from its transfer ledger."""
    repo.get_run(session=session, run_id=run_id)
    return audit_verdict(repo.run_transfers(session=session, run_id=run_id),
                         repo.run_bound(session=session, run_id=run_id))


@router.get("/progress", response_model=list[data.LiveRow])
def progress(
    session: SessionDep,
    ids: Annotated[IdList, Query(alias="id", max_length=200,
                                    description="Run ids; repeat the parameter.")],
) -> Any:
    """Status and progress bar of several runs at once (what live pages poll)."""
    return data.live_rows(session, ids)


@router.get("/compare", response_model=data.CompareResult)
def compare(
    session: SessionDep,
    run_ids: Annotated[IdList, Query(alias="run", min_length=1,
                                        description="Run ids; repeat the parameter.")],
) -> Any:
    """Several runs side by side: their facts and per-epoch curves."""
    return data.compare(session, run_ids)


@router.get("/devices", response_model=list[DeviceSummary])
def devices(session: SessionDep) -> Any:
    """Every phone seen, with run counts and its latest health sample."""
    return queries.device_summaries(session=session)


@router.get("/devices/{device_id}", response_model=data.DeviceDetail, responses=NOT_FOUND)
def device(device_id: Id, session: SessionDep) -> Any:
    """One phone: facts, run counts and its recent health samples."""
    return data.device_detail(session, device_id)
