"""The contract between the host and the on-device agent: files, model signatures, events.

The host may import this module (plain constants and the closed schema of what comes back);
the agent never imports host code.

Run folder on the device (`<root>/runs/<run_key>/`), written by the host before launch:
  job.json          the job (schema below)
Written by the agent, and the ONLY files the host's egress guard will read back:
  events.jsonl      one JSON object per line (EVENT_KINDS)
  result.json       aggregate metrics only (RESULT_KEYS)
Agent-private, never read by the host:
  cache/            features of the frozen trunk (never leave the phone)
  checkpoint/       trained weights + optimizer state + RNG position, after every epoch
  agent.pid, agent.lock, agent.log

Model folder (`<root>/models/<hash>/`), built by `models/` on the host:
  frozen.tflite     image → features at the split. Input `image`: float32 [1, S, S, 3], RGB
                    values 0…255 (the model scales to [-1, 1] itself). Output: feature map
                    [1, h, w, c] at the split, or the pooled vector [1, D] for head-only.
  train.tflite      trainable part; signatures in SIGNATURES. Builtin ops only.
  meta.json         MODEL_META_KEYS
  nnapi_plan.json + nnapi_plan.npz (optional)   the frozen trunk as an NNAPI op list
"""

from __future__ import annotations

from typing import TypeVar

_T = TypeVar("_T")

JOB_SCHEMA = 1
AGENT_VERSION = "0.1.0"

JOB_FILE = "job.json"
EVENTS_FILE = "events.jsonl"
RESULT_FILE = "result.json"
PID_FILE = "agent.pid"
LOCK_FILE = "agent.lock"  # held by the live agent (flock), names its pid and run key
LOG_FILE = "agent.log"
CACHE_DIR = "cache"
CHECKPOINT_DIR = "checkpoint"

# Files the host may read back from a run folder, and their size caps in bytes.
EGRESS_ALLOWED = {EVENTS_FILE: 4 * 1024 * 1024, RESULT_FILE: 256 * 1024}

# job.json
#   schema: 1
#   run_key: str                       unique per run (host's run id + a nonce)
#   experiment, variant: str
#   models: {frozen, train, meta, nnapi_plan|null}   absolute paths on the device
#   data: {root, classes: [..], train_per_class, test_per_class, seed,
#          decode: fast|exact, orientation: exif|ignore, max_pixels: int}
#   training: {batch_size, head_epochs, finetune_epochs, lr, finetune_lr}
#   delegate: {requested: nnapi|gpu|xnnpack|cpu, nnapi_device|null, fp16: bool,
#              allow_reference: bool}
#   threads: int
JOB_KEYS = ("schema", "run_key", "experiment", "variant", "models", "data", "training",
            "delegate", "threads")

# meta.json of a model folder
#   input_size: int; input_dtype: "float32"; input_range: [0, 255]
#   feature_shape: [h, w, c] (or [D] for head-only); pooled_dim: D; num_classes: K
#   batch_size: B (static batch of every train.tflite signature)
#   finetune_from: str|null; has_finetune: bool; dropout: float
#   optimizer: adam|sgd
#   state_layout: {group: [[name, shape], ..]} what each flat state vector holds, in order
#   hash: content hash of the build
MODEL_META_KEYS = ("input_size", "feature_shape", "pooled_dim", "num_classes", "batch_size",
                   "finetune_from", "has_finetune", "dropout", "optimizer", "state_layout",
                   "hash")

# Signatures of train.tflite. Every batch dimension is the static B of meta.json; a short
# batch is padded and its padding rows get weight 0. The graph holds no variables: the
# agent keeps the state as flat float32 vectors (STATE_GROUPS: upper and head weights, their
# optimizer slots, the step []) and passes each signature the groups it takes; a training
# signature returns the updated groups under the same names. Every tensor is static-shaped.
#   embed(features[B,h,w,c], upper) -> pooled[B,D]   upper layers + global average pooling
#   train_head(pooled[B,D], labels[B] int32, weights[B] f32, mask[B,D] f32, lr[] f32,
#              head, head_opt, step) -> loss[], head, head_opt, step   one step, head only
#   infer_head(pooled[B,D], head) -> probs[B,K]
#   train(features[B,h,w,c], labels, weights, mask[B,D], lr, upper, head, upper_opt,
#         head_opt, step) -> loss[], upper, head, upper_opt, head_opt, step   upper + head
#   infer(features[B,h,w,c], upper, head) -> probs[B,K]
#   initial_state() -> upper, head                    the built weights (slots, step: zero)
# A new phase starts with zero slots and step. SGD without momentum has no *_opt groups.
# Head-only builds (finetune_from null) have the pooled vector as frozen output and no
# embed/train/infer and no upper groups (features are already pooled).
# `mask` is the inverted-dropout mask: 0 or 1/(1-rate) per unit, drawn by the agent.
SIGNATURES = ("embed", "train_head", "infer_head", "train", "infer", "initial_state")
HEAD_ONLY_SIGNATURES = ("train_head", "infer_head", "initial_state")
STATE_GROUPS = ("upper", "head", "upper_opt", "head_opt", "step")

# ---------------------------------------------------------------------------------------------
# What comes back: a closed schema (device_agent.schema), the single source of what the agent
# writes and of what the host's egress guard admits. Every key is from a fixed vocabulary,
# every string from an enumerated set or a short fixed format, every message from a catalogue
# of templates with numeric slots, every number range-checked and quantized to the precision
# orch shows. Anything more detailed stays in agent.log on the phone, which is never pulled.

from device_agent.schema import (  # noqa: E402 - the schema follows the constants above
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
)

PHASES = ("head", "finetune")
HEAD, FINETUNE = PHASES
DELEGATES = ("nnapi", "gpu", "xnnpack", "cpu")
STAGES = ("decode", "features", "embed", "train", "eval")
STAGE_STEPS = 16  # stage progress is reported in sixteenths of its total
INTERPRETERS = ("ai_edge_litert", "tflite_runtime")

# Why an agent failed: code → template; {0}, {1} … are numeric slots. One line adds a code.
ERRORS = {
    "error": "the agent failed (details in agent.log on the phone)",
    "internal": "the agent failed unexpectedly (details in agent.log on the phone)",
    "bad_job": "job.json or the models cannot be used (details in agent.log on the phone)",
    "data": "the data cannot be used (details in agent.log on the phone)",
    "data_missing": "the data folder or a class folder is missing on the phone",
    "data_empty": "a class folder on the phone holds no files",
    "too_few_images": "a class has {0} usable images; {1} are needed ({2} train + {3} test)",
    "disk_full": "the phone's storage is full",
    "cancelled": "cancelled",
    "no_interpreter": "no TFLite interpreter: install ai-edge-litert, or Termux's "
                      "python-tflite-runtime",
    "run_locked": "another live agent holds this run folder",
    "runtime_too_old": "the TFLite interpreter is older than orch needs (its version is in the "
                       "result; Termux: pkg upgrade python-tflite-runtime)",
    "runtime_numpy_abi": "the TFLite interpreter cannot load with this numpy (a numpy ABI "
                         "mismatch: install the numpy it was built for)",
}

# Why a delegate was not used as requested: code → template (numeric slots as above).
REASONS = {
    "xnnpack_declined": "XNNPACK did not take the graph",
    "xnnpack_unknown": "the interpreter cannot show whether XNNPACK ran",
    "gpu_no_plugin": "no GPU delegate plugin could be loaded",
    "gpu_refused": "the GPU delegate refused the model",
    "gpu_no_nodes": "the GPU delegate took no part of the graph",
    "nnapi_no_plan": "no NNAPI plan",
    "nnapi_no_binding": "NNAPI binding unavailable",
    "nnapi_unavailable": "NNAPI library unavailable",
    "nnapi_plan": "NNAPI plan unusable",
    "nnapi_model": "NNAPI rejected the plan's model",
    "nnapi_api29": "choosing an NNAPI device needs Android 10 (API 29)",
    "nnapi_devices": "no NNAPI device can run the plan (details in agent.log on the phone)",
    "nnapi_reference": "only NNAPI's CPU reference implementation is present",
    "nnapi_compile": "NNAPI compilation failed",
    "nnapi_execute": "NNAPI execution failed",
    "nnapi_mismatch": "NNAPI output differs from LiteRT CPU",
    "nnapi_other": "NNAPI could not run the frozen trunk (details in agent.log on the phone)",
    "trunk_empty": "no frozen layers (fine-tuning from A, the first layer): the trunk only "
                   "scales the image, so no delegate has anything to run",
}

# Why a phase was skipped.
SKIPS = ("head_only",)

VERSION = Pattern(r"[0-9]{1,4}(\.[0-9]{1,4}){0,3}(\.?[a-z]{1,4}[0-9]{0,8})?", 24, 37)
NAME = Pattern(r"[a-z][a-z0-9-]{0,23}", 24, 37)  # an NNAPI device's name
SECONDS = Fixed(0, 7 * 24 * 3600, 0.001)
MS = Fixed(0, 100_000, 0.001)
LOSS = Sig(4)
NODES = Int(0, 100_000)

# The frozen trunk's record: which delegate ran it, and a closed set of facts about it.
DELEGATE_INFO = Obj({
    "xnnpack": Bool(), "threads": Int(1, 64), "library": Enum(
        ("libtensorflowlite_gpu_delegate.so", "libLiteRtGpuAccelerator.so",
         "libLiteRtOpenClAccelerator.so", "other")),
    "device": NAME, "type": Enum(("UNKNOWN", "OTHER", "CPU", "GPU", "ACCELERATOR")),
    "feature_level": Int(0, 10_000_000), "runtime_feature_level": Int(0, 10_000_000),
    "fp16": Bool(), "simulated": Bool(), "caching": Bool(),
    "execution": Enum(("compute", "startCompute")),
    "ms_per_image_hw": MS, "ms_per_image_driver": MS, "ms_per_image_wall": MS,
})
DELEGATE = Obj({"requested": Enum(DELEGATES), "used": Enum(DELEGATES),
                "reason": Msg(REASONS), "info": DELEGATE_INFO})
EPOCH = Obj({"phase": Enum(PHASES), "epoch": Int(1, "epochs"), "train_loss": LOSS,
             "train_acc": Frac("train"), "test_loss": LOSS, "test_acc": Frac("test"),
             "seconds": SECONDS}, required=("phase", "epoch"))
GRAPH = Obj({"delegate": Enum(("xnnpack", "nnapi", "gpu", "none")), "delegated_nodes": NODES,
             "total_nodes": NODES})

# result.json (aggregate metrics only: no file names, no per-image data)
RESULT = Obj({
    "schema": Int(JOB_SCHEMA, JOB_SCHEMA),
    "run_key": Enum(()),  # checked against the run's own key by the host
    "status": Enum(("finished", "cancelled", "failed")),
    "accuracy": Frac("test"),
    "per_class_accuracy": PerClass(Frac("test_per_class")),
    "epochs": List(EPOCH, "epochs"),
    "timing": Obj({**{k: SECONDS for k in ("decode", "features", "embed", "train", "eval",
                                            "checkpoint", "total")},
                   "train_per_epoch": List(SECONDS, "epochs")}),
    "peak_memory_mb": Fixed(0, 1_000_000, 0.1),
    "delegate": DELEGATE,
    "delegation": Obj({"frozen": GRAPH, "train": GRAPH}),
    "versions": Obj({"agent": Enum((AGENT_VERSION,)), "interpreter": Enum(INTERPRETERS),
                     "interpreter_version": VERSION, "python": VERSION, "numpy": VERSION,
                     "pillow": VERSION}),
    "data": Obj({"decode": Enum(("fast", "exact")), "orientation": Enum(("exif", "ignore")),
                 "max_pixels": Int(0, 1 << 31)}),
    "counts": Obj({"train": Int(0, "train"), "test": Int(0, "test"),
                   "skipped_corrupt": Int(0, 10_000_000),
                   "skipped_too_large": Int(0, 10_000_000),
                   "skipped_unsupported": Int(0, 10_000_000),
                   "per_class_train": PerClass(Int(0, "train_per_class")),
                   "per_class_test": PerClass(Int(0, "test_per_class"))}),
    "phases": Obj({"head": Obj({"epochs": Int(0, "epochs"), "ran": Int(0, "epochs")}),
                   "finetune": Obj({"epochs": Int(0, "epochs"), "ran": Int(0, "epochs"),
                                    "skipped": Enum(SKIPS)})}),
}, required=("schema", "status"))  # run_key: checked by the host
RESULT_KEYS = tuple(RESULT.fields)
# status: finished | cancelled | failed (the reason of a failure is the `error` event)
# phases: epochs planned and run per phase; head-only builds (method 1) skip the fine-tune
#   phase and say why.

# events.jsonl: every event has seq (1, 2, …, strictly increasing), t (unix time; the host
# keeps its own clock instead), kind, and the fields of its kind:
EVENTS = {
    "start": Obj({"agent_version": Enum((AGENT_VERSION,)), "interpreter": Enum(INTERPRETERS),
                  "pid": Int(0, 1 << 22)}),
    "stage": Obj({"stage": Enum(STAGES), "done": Int(0, "images"), "total": Int(0, "images")},
                 required=("stage", "done", "total")),
    "delegate": DELEGATE,
    "epoch": EPOCH,
    "checkpoint": Obj({"epoch": Int(0, "epochs")}, required=("epoch",)),
    "done": Obj({"status": Enum(("finished", "cancelled")), "accuracy": Frac("test")},
                required=("status",)),
    "error": Msg(ERRORS),  # {code, args}
}
EVENT_KINDS = tuple(EVENTS)
EVENT_BASE = ("seq", "t", "kind")
STARTS_MAX = 4  # agent starts (a run and its resumes) one run may report
LINE_MAX = 2048  # longest event line the schema allows, in bytes


def event_table(table: dict[str, _T], *, every: bool = True) -> dict[str, _T]:
    """`table` (what to do per event kind), checked against EVENTS when it is built: every
    key is a kind, and with `every` each kind has an entry, so a kind added here fails at
    import wherever it is not handled yet."""
    unknown = set(table) - set(EVENTS)
    missing = set(EVENTS) - set(table) if every else set()
    if unknown or missing:
        raise ValueError(f"event table: unknown kinds {sorted(unknown)}, "
                         f"missing kinds {sorted(missing)}")
    return table


# Most events of each kind per agent start; None: one per epoch.
EVENTS_PER_START: dict[str, int | None] = event_table({
    "start": 1, "stage": len(STAGES) * (STAGE_STEPS + 1), "delegate": 1, "epoch": None,
    "checkpoint": None, "done": 1, "error": 1})


def event_budget(kind: str, epochs: int) -> int:
    """Most events of a kind one run may send (the host refuses more)."""
    per_start = EVENTS_PER_START[kind]
    if per_start is None:
        return epochs + STARTS_MAX  # epoch, checkpoint: an interrupted epoch may run again
    return STARTS_MAX * per_start


def stage_step(done: int, total: int) -> int:
    """Stage progress on its grid of STAGE_STEPS: what the agent reports, what the host keeps."""
    if total <= 0 or done >= total:
        return max(done, total) if total > 0 else 0
    k = done * STAGE_STEPS // total
    return -(-k * total // STAGE_STEPS)  # the first whole number at or above k/16 of total


def planned_epochs(head_epochs: int, finetune_epochs: int, *,
                   has_finetune: bool) -> dict[str, int]:
    """Epochs each phase runs: head-only builds (method 1, finetune_from null) have nothing
    above the split to fine-tune, so they skip the fine-tune epochs whatever the job asks."""
    return {HEAD: head_epochs, FINETUNE: finetune_epochs if has_finetune else 0}


# The oldest interpreter versions that load orch's models (tested); the agent refuses older
# ones at start (error code runtime_too_old) and `orch devices doctor` warns.
MIN_RUNTIME_VERSIONS = {"tflite_runtime": "2.14", "ai_edge_litert": "1.0"}

# Agent exit codes
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_JOB = 2
EXIT_DATA = 3
EXIT_CANCELLED = 4
EXIT_DISK_FULL = 5
EXIT_LOCKED = 6  # another live agent holds the run folder (error code "run_locked")
