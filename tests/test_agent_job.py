"""job.json: make_job/validate_job are shared by host and agent; bad jobs name every field."""

from __future__ import annotations

import json

import pytest

from device_agent.contract import JOB_KEYS
from device_agent.errors import BadJob
from device_agent.job import JobInvalid, job_digest, load_job, make_job, validate_job, write_job


def _job(**over):
    args = dict(run_key="run-1.abc", experiment="paper", variant="method2",
                frozen="/m/frozen.tflite", train="/m/train.tflite", meta="/m/meta.json",
                data_root="/sdcard/x", classes=["cat", "dog"], train_per_class=5,
                test_per_class=5, seed=3, batch_size=4, head_epochs=1, finetune_epochs=1,
                lr=1e-3, finetune_lr=1e-4)
    args.update(over)
    return make_job(**args)


def test_make_job_has_every_contract_key_and_round_trips(tmp_path):
    """make_job → write_job → load_job gives back the same dict with all JOB_KEYS."""
    job = _job(delegate="nnapi", nnapi_plan="/m/plan.json", fp16=True)
    write_job(str(tmp_path), job)
    loaded = load_job(str(tmp_path))
    assert loaded == job
    assert set(loaded) == set(JOB_KEYS)
    assert loaded["delegate"] == {"requested": "nnapi", "nnapi_device": None, "fp16": True,
                                  "allow_reference": False}


def test_validate_job_lists_every_problem():
    """Several broken fields are all named in one error."""
    job = _job()
    job["data"]["train_per_class"] = 0
    job["training"]["lr"] = -1.0
    job["delegate"]["requested"] = "tpu"
    job["extra"] = 1
    with pytest.raises(JobInvalid) as e:
        validate_job(job)
    text = str(e.value)
    for needle in ("data.train_per_class", "training.lr", "delegate.requested", "'extra'"):
        assert needle in text
    assert len(e.value.problems) == 4


@pytest.mark.parametrize("mutate, needle", [
    (lambda j: j["data"].pop("seed"), "data.seed is missing"),
    (lambda j: j["data"].__setitem__("classes", ["cat"]), "at least two"),
    (lambda j: j["data"].__setitem__("classes", ["cat", "cat"]), "unique"),
    (lambda j: j["data"].__setitem__("classes", ["cat", "../dog"]), "folder names"),
    (lambda j: j["training"].__setitem__("batch_size", True), "training.batch_size"),
    (lambda j: j.__setitem__("run_key", "a b"), "run_key"),
    (lambda j: j.__setitem__("threads", 0), "threads"),
    (lambda j: j.__setitem__("schema", 99), "schema"),
    (lambda j: j["data"].__setitem__("decode", "lossy"), "data.decode must be one of fast"),
    (lambda j: j["data"].__setitem__("orientation", "auto"), "data.orientation must be one"),
    (lambda j: j["data"].__setitem__("max_pixels", 0), "data.max_pixels must be ≥ 1"),
    (lambda j: j["data"].pop("decode"), "data.decode is missing"),
])
def test_validate_job_rejects(mutate, needle):
    """Each kind of broken field is refused with its name."""
    job = _job()
    mutate(job)
    with pytest.raises(JobInvalid, match=needle.replace(".", r"\.").replace("(", r"\(")):
        validate_job(job)


def test_load_job_missing_or_not_json(tmp_path):
    """A run folder without job.json, or with broken JSON, is a BadJob."""
    with pytest.raises(BadJob, match="no job.json"):
        load_job(str(tmp_path))
    (tmp_path / "job.json").write_text("{nope")
    with pytest.raises(BadJob, match="not valid JSON"):
        load_job(str(tmp_path))


def test_job_digest_changes_with_content():
    """The digest that binds checkpoints to jobs changes when any field changes."""
    a, b = _job(), _job(seed=4)
    assert job_digest(a) == job_digest(json.loads(json.dumps(a)))
    assert job_digest(a) != job_digest(b)
