"""`python -m device_agent run JOB_DIR [--resume]`: one training run, start to result.

Stages: sample + decode + frozen trunk once per image (cached) → head phase (train_head on
pooled vectors, lr) → fine-tune phase (reset_optimizer, then train on cached features,
finetune_lr; skipped for head-only builds, the paper's method 1) → result.json. A
checkpoint follows every epoch; SIGTERM stops at the next batch and the run can resume
from the last completed epoch with the same outcome as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
import traceback
from typing import Any, TextIO

import numpy as np

from device_agent import checkpoint, events, features, lock, runtime
from device_agent.contract import (
    AGENT_VERSION,
    CACHE_DIR,
    CHECKPOINT_DIR,
    ERRORS,
    EVENTS_FILE,
    EXIT_BAD_JOB,
    EXIT_CANCELLED,
    EXIT_ERROR,
    EXIT_OK,
    LOG_FILE,
    MODEL_META_KEYS,
    RESULT_FILE,
)
from device_agent.errors import AgentError, BadJob, Cancelled, RunLocked, redact
from device_agent.events import EventLog
from device_agent.fsio import read_json
from device_agent.job import job_digest, load_job
from device_agent.model import TrainModel
from device_agent.result import write_result
from device_agent.schema import message as message_of
from device_agent.training import Evaluation, evaluate, train_epoch, training_rng

HEAD_ONLY_REASON = "head-only build (method 1): nothing above the split to fine-tune"


class StopFlag:
    """Set by SIGTERM/SIGINT; training looks at it between batches and images."""

    def __init__(self) -> None:
        self.set = False

    def __call__(self) -> bool:
        return self.set

    def install(self) -> None:
        def handler(signum: int, frame: Any) -> None:
            self.set = True

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def load_meta(job: dict[str, Any]) -> dict[str, Any]:
    """meta.json of the model folder, checked against the job it is meant to serve."""
    paths = job["models"]
    for key in ("frozen", "train", "meta"):
        if not os.path.isfile(paths[key]):
            raise BadJob(f"the model file models.{key} is missing on the device")
    try:
        meta = read_json(paths["meta"])
    except ValueError as e:
        raise BadJob(f"meta.json is not valid JSON ({e})") from e
    missing = [k for k in MODEL_META_KEYS if k not in meta]
    if missing:
        raise BadJob(f"meta.json lacks {', '.join(missing)}")
    k, b = len(job["data"]["classes"]), job["training"]["batch_size"]
    if int(meta["num_classes"]) != k:
        raise BadJob(f"the model was built for {meta['num_classes']} classes, the job has {k}")
    if int(meta["batch_size"]) != b:
        raise BadJob(f"the model was built for batch size {meta['batch_size']}, the job asks "
                     f"for {b}; rebuild it")
    return meta


class Run:
    """One run in one run folder; holds what result.json reports at any point."""

    def __init__(self, run_dir: str, *, resume: bool, stdout: TextIO | None = None) -> None:
        self.run_dir = run_dir
        self.resume = resume
        self.events = EventLog(os.path.join(run_dir, EVENTS_FILE), stdout)
        self.stop = StopFlag()
        self.t0 = time.perf_counter()
        self.job: dict[str, Any] | None = None
        self.epochs: list[dict[str, Any]] = []
        self.per_class: list[float] | None = None
        self.counts: dict[str, Any] | None = None
        self.delegate: dict[str, Any] | None = None
        self.delegation: dict[str, Any] | None = None
        self.timing: dict[str, Any] = {"decode": 0.0, "features": 0.0, "embed": 0.0,
                                       "train": 0.0, "eval": 0.0, "checkpoint": 0.0,
                                       "total": 0.0, "train_per_epoch": []}
        self.prior_total = 0.0
        self.plan = {"head": 0, "finetune": 0}
        self.finetune_skipped: str | None = None

    # ------------------------------------------------------------------ entry point

    def execute(self) -> int:
        self.stop.install()
        self.events.emit("start", agent_version=AGENT_VERSION,
                         interpreter=runtime.INTERPRETER_NAME, pid=os.getpid())
        try:
            accuracy = self._train()
        except Cancelled:
            return self._finish("cancelled", EXIT_CANCELLED)
        except AgentError as e:
            return self._fail(e.code, e.message, e.exit_code, e.args_)
        except Exception as e:  # an agent bug: the traceback stays on the phone, in agent.log
            self._log_traceback()
            return self._fail("internal", f"{type(e).__name__}: {e}", EXIT_ERROR)
        self.events.emit("done", status="finished", accuracy=accuracy)
        return EXIT_OK

    # ------------------------------------------------------------------ the run

    def _train(self) -> float | None:
        stale = os.path.join(self.run_dir, RESULT_FILE)  # a result of an earlier attempt
        if os.path.exists(stale):
            os.remove(stale)
        runtime.check_supported()
        job = self.job = load_job(self.run_dir)
        meta = load_meta(job)
        # Load train.tflite first: a broken model should fail before minutes of decoding.
        model = TrainModel(job["models"]["train"], meta, threads=int(job["threads"]))
        cache_dir = os.path.join(self.run_dir, CACHE_DIR)
        ckpt_dir = os.path.join(self.run_dir, CHECKPOINT_DIR)
        saved = checkpoint.load(ckpt_dir) if self.resume else None
        if not self.resume:
            for d in (cache_dir, ckpt_dir):
                shutil.rmtree(d, ignore_errors=True)
        if saved is not None and saved[1].get("job") != job_digest(job):
            raise BadJob("the checkpoint in this run folder belongs to another job; "
                         "run it again without --resume")

        tr = job["training"]
        has_finetune = bool(meta.get("has_finetune"))
        self.plan = {"head": tr["head_epochs"], "finetune": tr["finetune_epochs"]
                     if has_finetune else 0}
        if not has_finetune and tr["finetune_epochs"]:
            self.finetune_skipped = HEAD_ONLY_REASON

        key = features.cache_key(job, meta)
        feats = features.load_cached(cache_dir, key) if self.resume else None
        if feats is None:
            feats = features.extract(job, meta, cache_dir, self.events, self.stop)
        else:
            self.events.emit("delegate", **feats.delegate)
        self.counts, self.delegate = feats.counts, feats.delegate
        self.delegation = {"train": model.interpreter.orch_delegation}
        if feats.delegation:
            self.delegation["frozen"] = feats.delegation
        self.timing.update(decode=feats.timing["decode"], features=feats.timing["features"])

        rng = training_rng(job["data"]["seed"])
        done = 0
        if saved is not None:
            state, record = saved
            model.import_state(state)
            rng.bit_generator.state = record["rng"]
            done = int(record["epoch"])
            self.epochs = list(record["epochs"])
            self.per_class = record.get("per_class")
            prior = record["timing"]
            for k in ("embed", "train", "eval", "checkpoint"):
                self.timing[k] = prior[k]
            self.timing["train_per_epoch"] = list(prior["train_per_epoch"])
            self.prior_total = prior["total"]

        head, fine = self.plan["head"], self.plan["finetune"]
        b, rate = int(meta["batch_size"]), float(meta.get("dropout") or 0.0)
        k = len(job["data"]["classes"])

        def epoch(phase: str, n: int, step, predict, x_tr, x_te, lr: float) -> None:
            self._epoch(phase, n, model=model, rng=rng, step=step, predict=predict, x_tr=x_tr,
                        y_tr=feats.train_y, x_te=x_te, y_te=feats.test_y, lr=lr, batch=b,
                        dim=int(meta["pooled_dim"]), rate=rate, classes=k, ckpt_dir=ckpt_dir)

        if done < head:
            if has_finetune:  # method 2: upper layers frozen in this phase → cache their output
                p_tr, p_te = self._embed(model, feats, cache_dir, b)
            else:  # head-only: the frozen trunk's output is already the pooled vector
                p_tr, p_te = feats.train_x, feats.test_x
            for n in range(done + 1, head + 1):
                epoch("head", n, model.train_head, model.infer_head, p_tr, p_te, tr["lr"])
        if fine and done < head + fine:
            if done <= head:
                model.reset_optimizer()  # a new phase starts with fresh optimizer slots
            for n in range(max(done, head) + 1, head + fine + 1):
                epoch("finetune", n, model.train, model.infer, feats.train_x, feats.test_x,
                      tr["finetune_lr"])

        if self.per_class is None:  # no epoch at all: report the untrained model
            fn = model.infer if has_finetune else model.infer_head
            self.per_class = evaluate(fn, feats.test_x, feats.test_y, batch=b,
                                      num_classes=k).per_class
        accuracy = self.epochs[-1]["test_acc"] if self.epochs else \
            float(np.nanmean(self.per_class))
        self._write_result("finished", accuracy)
        shutil.rmtree(cache_dir, ignore_errors=True)  # features of the user's photos: not kept
        return accuracy

    def _embed(self, model: TrainModel, feats: features.Features, cache_dir: str,
               batch: int) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        total = len(feats.train_x) + len(feats.test_x)
        self.events.emit("stage", stage="embed", done=0, total=total)
        p_tr = features.embed_cached(cache_dir, "train", model.embed, feats.train_x, batch)
        p_te = features.embed_cached(cache_dir, "test", model.embed, feats.test_x, batch)
        self.events.emit("stage", stage="embed", done=total, total=total)
        self.timing["embed"] += time.perf_counter() - t0
        return p_tr, p_te

    def _epoch(self, phase: str, n: int, *, model: TrainModel, rng: np.random.Generator,
               step, predict, x_tr, y_tr, x_te, y_te, lr: float, batch: int, dim: int,
               rate: float, classes: int, ckpt_dir: str) -> None:
        if self.stop():
            raise Cancelled("cancelled")
        t0 = time.perf_counter()
        loss = train_epoch(step, x_tr, y_tr, rng=rng, batch=batch, dim=dim, rate=rate, lr=lr,
                           should_stop=self.stop)
        if loss is None:
            raise Cancelled("cancelled during an epoch")
        t1 = time.perf_counter()
        on_train = evaluate(predict, x_tr, y_tr, batch=batch, num_classes=classes)
        on_test: Evaluation = evaluate(predict, x_te, y_te, batch=batch, num_classes=classes)
        t2 = time.perf_counter()
        row = {"phase": phase, "epoch": n, "train_loss": loss, "train_acc": on_train.accuracy,
               "test_loss": on_test.loss, "test_acc": on_test.accuracy,
               "seconds": round(t2 - t0, 4)}
        self.epochs.append(row)
        self.per_class = on_test.per_class
        self.timing["train"] += t1 - t0
        self.timing["eval"] += t2 - t1
        self.timing["train_per_epoch"].append(round(t1 - t0, 4))
        self.events.emit("epoch", **row)
        t3 = time.perf_counter()
        record = {"job": job_digest(self.job or {}), "epoch": n, "epochs": self.epochs,
                  "per_class": self.per_class, "rng": rng.bit_generator.state,
                  "timing": {**self.timing, "total": self._total()}}
        checkpoint.save(ckpt_dir, model.export_state(), record)
        self.timing["checkpoint"] += time.perf_counter() - t3
        self.events.emit("checkpoint", epoch=n)

    # ------------------------------------------------------------------ endings

    def _total(self) -> float:
        return self.prior_total + (time.perf_counter() - self.t0)

    def _write_result(self, status: str, accuracy: float | None) -> None:
        job = self.job or {}
        classes = job.get("data", {}).get("classes") or []
        timing = {k: (round(v, 4) if isinstance(v, float) else v)
                  for k, v in {**self.timing, "total": self._total()}.items()}
        per_class = None
        if self.per_class is not None:
            per_class = {c: self.per_class[i] for i, c in enumerate(classes)}
        d = job.get("data") or {}
        data = ({k: d[k] for k in ("decode", "orientation", "max_pixels")} if "decode" in d
                else None)
        write_result(
            self.run_dir, run_key=job.get("run_key"), status=status, accuracy=accuracy,
            per_class_accuracy=per_class,
            epochs=self.epochs, timing=timing, delegate=self.delegate, counts=self.counts,
            phases=self._phases(), data=data, delegation=self.delegation)

    def _phases(self) -> dict[str, Any]:
        ran = {p: sum(1 for e in self.epochs if e["phase"] == p) for p in ("head", "finetune")}
        return {
            "head": {"epochs": self.plan["head"], "ran": ran["head"]},
            "finetune": {"epochs": self.plan["finetune"], "ran": ran["finetune"],
                         "skipped": "head_only" if self.finetune_skipped else None},
        }

    def _finish(self, status: str, code: int) -> int:
        accuracy = self.epochs[-1]["test_acc"] if self.epochs else None
        try:
            self._write_result(status, accuracy)
        except AgentError as e:
            return self._fail(e.code, e.message, e.exit_code, e.args_)
        self.events.emit("done", status=status, accuracy=accuracy, best_effort=True)
        return code

    def _fail(self, code: str, message: str, exit_code: int, args: tuple[int, ...] = ()) -> int:
        line = redact(message)
        # The host gets a catalogue code and its numbers; the message stays in agent.log.
        self.events.emit("error", best_effort=True, **message_of(ERRORS, code, *args))
        if self.job is not None:
            try:
                self._write_result("failed", None)
            except (AgentError, OSError):
                pass  # a full disk: the error event (or this line) is all that can be said
        sys.stderr.write(f"error: {line}\n")
        return exit_code

    def _log_traceback(self) -> None:
        try:
            with open(os.path.join(self.run_dir, LOG_FILE), "a", encoding="utf-8") as f:
                traceback.print_exc(file=f)
        except OSError:
            pass


def run(run_dir: str, *, resume: bool = False, stdout: TextIO | None = None) -> int:
    """Run the job in `run_dir`; the agent's exit code (device_agent.contract EXIT_*)."""
    run_dir = os.path.abspath(run_dir)
    if not os.path.isdir(run_dir):
        sys.stderr.write("error: the run folder does not exist\n")
        return EXIT_BAD_JOB
    try:
        held = lock.acquire(run_dir)
    except RunLocked as e:  # before touching anything: the live agent owns the folder
        lock.restore_pid_file(run_dir, e.pid)
        out = stdout if stdout is not None else sys.stdout
        out.write(json.dumps({"kind": "error", "code": e.code, "message": e.message}) + "\n")
        sys.stderr.write(f"error: {e.message}\n")
        return e.exit_code
    try:
        try:
            if resume:
                events.repair(os.path.join(run_dir, EVENTS_FILE))
            agent = Run(run_dir, resume=resume, stdout=stdout)
        except AgentError as e:  # cannot even open events.jsonl (full disk)
            sys.stderr.write(f"error: {redact(e.message)}\n")
            return e.exit_code
        try:
            return agent.execute()
        finally:
            agent.events.close()
    finally:
        os.close(held)
