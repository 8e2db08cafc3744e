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
from dataclasses import dataclass
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
    FINETUNE,
    HEAD,
    LOG_FILE,
    MODEL_META_KEYS,
    PHASES,
    RESULT_FILE,
    planned_epochs,
)
from device_agent.errors import AgentError, BadJob, Cancelled, RunLocked, redact
from device_agent.events import EventLog
from device_agent.fsio import read_json
from device_agent.job import job_digest, load_job
from device_agent.model import TrainModel
from device_agent.result import write_result
from device_agent.schema import message as message_of
from device_agent.training import (
    Evaluation,
    PredictFn,
    StepFn,
    evaluate,
    train_epoch,
    training_rng,
)

HEAD_ONLY_REASON = "head-only build (method 1): nothing above the split to fine-tune"


Checkpoint = tuple[dict[str, np.ndarray], dict[str, Any]]  # (model state, record)


@dataclass(frozen=True)
class EpochContext:
    """What every epoch of a run shares: the model, the labels, the batch shape, the RNG."""

    model: TrainModel
    rng: np.random.Generator
    y_tr: np.ndarray
    y_te: np.ndarray
    batch: int
    dim: int  # pooled width, for the dropout mask
    rate: float  # dropout rate
    classes: int


@dataclass(frozen=True)
class Phase:
    """One training phase: its signatures (one step, predict), inputs and learning rate."""

    name: str
    step: StepFn
    predict: PredictFn
    x_tr: np.ndarray
    x_te: np.ndarray
    lr: float


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
        self.plan = dict.fromkeys(PHASES, 0)
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
        """The run's steps in order; the test accuracy of the finished run."""
        self._remove_stale_result()
        runtime.check_supported()
        job = self.job = load_job(self.run_dir)
        meta = load_meta(job)
        # Load train.tflite first: a broken model should fail before minutes of decoding.
        model = TrainModel(job["models"]["train"], meta, threads=int(job["threads"]))
        saved = self._checkpoint_to_resume(job)
        self._plan_phases(job, meta)
        feats = self._features(job, meta, model)
        ctx = EpochContext(model=model, rng=training_rng(job["data"]["seed"]),
                           y_tr=feats.train_y, y_te=feats.test_y,
                           batch=int(meta["batch_size"]), dim=int(meta["pooled_dim"]),
                           rate=float(meta.get("dropout") or 0.0),
                           classes=len(job["data"]["classes"]))
        done = self._restore(saved, ctx) if saved is not None else 0
        has_finetune, tr = bool(meta.get("has_finetune")), job["training"]
        self._head_phase(ctx, feats, done, lr=tr["lr"], has_finetune=has_finetune)
        self._finetune_phase(ctx, feats, done, lr=tr["finetune_lr"])
        return self._conclude(ctx, feats, has_finetune=has_finetune)

    @property
    def _cache_dir(self) -> str:
        return os.path.join(self.run_dir, CACHE_DIR)

    @property
    def _ckpt_dir(self) -> str:
        return os.path.join(self.run_dir, CHECKPOINT_DIR)

    def _remove_stale_result(self) -> None:
        stale = os.path.join(self.run_dir, RESULT_FILE)  # a result of an earlier attempt
        if os.path.exists(stale):
            os.remove(stale)

    def _checkpoint_to_resume(self, job: dict[str, Any]) -> Checkpoint | None:
        """The checkpoint a resume continues from; a fresh run clears cache and checkpoint."""
        saved = checkpoint.load(self._ckpt_dir) if self.resume else None
        if not self.resume:
            for d in (self._cache_dir, self._ckpt_dir):
                shutil.rmtree(d, ignore_errors=True)
        if saved is not None and saved[1].get("job") != job_digest(job):
            raise BadJob("the checkpoint in this run folder belongs to another job; "
                         "run it again without --resume")
        return saved

    def _plan_phases(self, job: dict[str, Any], meta: dict[str, Any]) -> None:
        tr = job["training"]
        has_finetune = bool(meta.get("has_finetune"))
        self.plan = planned_epochs(tr["head_epochs"], tr["finetune_epochs"],
                                   has_finetune=has_finetune)
        if not has_finetune and tr["finetune_epochs"]:
            self.finetune_skipped = HEAD_ONLY_REASON

    def _features(self, job: dict[str, Any], meta: dict[str, Any],
                  model: TrainModel) -> features.Features:
        """The frozen trunk's features: from the cache on resume, else decoded and computed."""
        key = features.cache_key(job, meta)
        feats = features.load_cached(self._cache_dir, key) if self.resume else None
        if feats is None:
            feats = features.extract(job, meta, self._cache_dir, self.events, self.stop)
        else:
            self.events.emit("delegate", **feats.delegate)
        self.counts, self.delegate = feats.counts, feats.delegate
        self.delegation = {"train": model.interpreter.orch_delegation}
        if feats.delegation:
            self.delegation["frozen"] = feats.delegation
        self.timing.update(decode=feats.timing["decode"], features=feats.timing["features"])
        return feats

    def _restore(self, saved: Checkpoint, ctx: EpochContext) -> int:
        """Weights, RNG position, epochs and timing of the checkpoint; the epochs done."""
        state, record = saved
        ctx.model.import_state(state)
        ctx.rng.bit_generator.state = record["rng"]
        self.epochs = list(record["epochs"])
        self.per_class = record.get("per_class")
        prior = record["timing"]
        for k in ("embed", "train", "eval", "checkpoint"):
            self.timing[k] = prior[k]
        self.timing["train_per_epoch"] = list(prior["train_per_epoch"])
        self.prior_total = prior["total"]
        return int(record["epoch"])

    def _head_phase(self, ctx: EpochContext, feats: features.Features, done: int, *,
                    lr: float, has_finetune: bool) -> None:
        head = self.plan[HEAD]
        if done >= head:
            return
        if has_finetune:  # method 2: upper layers frozen in this phase → cache their output
            p_tr, p_te = self._embed(ctx.model, feats, ctx.batch)
        else:  # head-only: the frozen trunk's output is already the pooled vector
            p_tr, p_te = feats.train_x, feats.test_x
        phase = Phase(HEAD, ctx.model.train_head, ctx.model.infer_head, p_tr, p_te, lr)
        for n in range(done + 1, head + 1):
            self._epoch(ctx, phase, n)

    def _finetune_phase(self, ctx: EpochContext, feats: features.Features, done: int, *,
                        lr: float) -> None:
        head, fine = self.plan[HEAD], self.plan[FINETUNE]
        if not fine or done >= head + fine:
            return
        if done <= head:
            ctx.model.reset_optimizer()  # a new phase starts with fresh optimizer slots
        phase = Phase(FINETUNE, ctx.model.train, ctx.model.infer, feats.train_x,
                      feats.test_x, lr)
        for n in range(max(done, head) + 1, head + fine + 1):
            self._epoch(ctx, phase, n)

    def _conclude(self, ctx: EpochContext, feats: features.Features, *,
                  has_finetune: bool) -> float:
        """result.json of a finished run; the cached features of the photos are removed."""
        if self.per_class is None:  # no epoch at all: report the untrained model
            fn = ctx.model.infer if has_finetune else ctx.model.infer_head
            self.per_class = evaluate(fn, feats.test_x, feats.test_y, batch=ctx.batch,
                                      num_classes=ctx.classes).per_class
        accuracy = self.epochs[-1]["test_acc"] if self.epochs else \
            float(np.nanmean(self.per_class))
        self._write_result("finished", accuracy)
        # Features of the user's photos: not kept.
        shutil.rmtree(self._cache_dir, ignore_errors=True)
        return accuracy

    def _embed(self, model: TrainModel, feats: features.Features,
               batch: int) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        total = len(feats.train_x) + len(feats.test_x)
        self.events.emit("stage", stage="embed", done=0, total=total)
        p_tr = features.embed_cached(self._cache_dir, "train", model.embed, feats.train_x, batch)
        p_te = features.embed_cached(self._cache_dir, "test", model.embed, feats.test_x, batch)
        self.events.emit("stage", stage="embed", done=total, total=total)
        self.timing["embed"] += time.perf_counter() - t0
        return p_tr, p_te

    def _epoch(self, ctx: EpochContext, phase: Phase, n: int) -> None:
        """Epoch n of a phase: train, evaluate on both sets, report, checkpoint."""
        if self.stop():
            raise Cancelled("cancelled")
        t0 = time.perf_counter()
        loss = train_epoch(phase.step, phase.x_tr, ctx.y_tr, rng=ctx.rng, batch=ctx.batch,
                           dim=ctx.dim, rate=ctx.rate, lr=phase.lr, should_stop=self.stop)
        if loss is None:
            raise Cancelled("cancelled during an epoch")
        t1 = time.perf_counter()
        on_train = evaluate(phase.predict, phase.x_tr, ctx.y_tr, batch=ctx.batch,
                            num_classes=ctx.classes)
        on_test: Evaluation = evaluate(phase.predict, phase.x_te, ctx.y_te, batch=ctx.batch,
                                       num_classes=ctx.classes)
        t2 = time.perf_counter()
        row = {"phase": phase.name, "epoch": n, "train_loss": loss,
               "train_acc": on_train.accuracy, "test_loss": on_test.loss,
               "test_acc": on_test.accuracy, "seconds": round(t2 - t0, 4)}
        self.epochs.append(row)
        self.per_class = on_test.per_class
        self.timing["train"] += t1 - t0
        self.timing["eval"] += t2 - t1
        self.timing["train_per_epoch"].append(round(t1 - t0, 4))
        self.events.emit("epoch", **row)
        self._save_checkpoint(ctx, n)

    def _save_checkpoint(self, ctx: EpochContext, n: int) -> None:
        t0 = time.perf_counter()
        record = {"job": job_digest(self.job or {}), "epoch": n, "epochs": self.epochs,
                  "per_class": self.per_class, "rng": ctx.rng.bit_generator.state,
                  "timing": {**self.timing, "total": self._total()}}
        checkpoint.save(self._ckpt_dir, ctx.model.export_state(), record)
        self.timing["checkpoint"] += time.perf_counter() - t0
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
        ran = {p: sum(1 for e in self.epochs if e["phase"] == p) for p in PHASES}
        return {
            HEAD: {"epochs": self.plan[HEAD], "ran": ran[HEAD]},
            FINETUNE: {"epochs": self.plan[FINETUNE], "ran": ran[FINETUNE],
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
