"""The contract between the host and the on-device agent: files, model signatures, events.

The host may import this module (it is plain constants); the agent never imports host code.

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

# events.jsonl: every event has seq (1, 2, …, strictly increasing), t (unix time), kind.
#   {"kind": "start", "agent_version", "interpreter", "pid"}
#   {"kind": "stage", "stage": decode|features|embed|train|eval, "done", "total"}
#   {"kind": "delegate", "requested", "used", "reason", "info": {...}}
#   {"kind": "epoch", "phase": head|finetune, "epoch": n (1-based over both phases),
#    "train_loss", "train_acc", "test_loss", "test_acc", "seconds"}
#   {"kind": "checkpoint", "epoch": n}
#   {"kind": "done", "status": finished|cancelled, "accuracy"}
#   {"kind": "error", "code": str, "message": str}   a one-line reason, no image names
EVENT_KINDS = ("start", "stage", "delegate", "epoch", "checkpoint", "done", "error", "log")

# result.json (aggregate metrics only: no file names, no per-image data)
RESULT_KEYS = (
    "schema", "run_key", "status", "accuracy", "per_class_accuracy", "epochs", "timing",
    "peak_memory_mb", "delegate", "versions", "counts", "phases", "data", "delegation",
)
# epochs: [{phase, epoch, train_loss, train_acc, test_loss, test_acc, seconds}]
# timing: {decode, features, train, eval, total} seconds, train_per_epoch: [..]
#   (the agent also reports embed and checkpoint seconds; decode is the time the feature
#   pass waited for decoded images, features the trunk's: decoding ahead on other cores
#   overlaps the trunk and is not counted twice)
# delegate: {requested, used, reason, info}
# versions: {agent, interpreter, interpreter_version, python, numpy, pillow}
# delegation: {frozen: {delegate: xnnpack|nnapi|gpu|none, delegated_nodes, total_nodes},
#              train: {...}}  what a delegate actually took of each model, as the runtime
#   logged it (delegated_nodes null where the runtime cannot tell)
# counts: {train, test, skipped_corrupt, skipped_too_large, skipped_unsupported,
#          per_class_train, per_class_test}  (numbers only)
# data: {decode: fast|exact, orientation: exif|ignore, max_pixels: int}  as the job asked
# phases: {head: {epochs, ran}, finetune: {epochs, ran, skipped: str|null}}  epochs planned
#   and run per phase; head-only builds (method 1) skip the fine-tune phase and say why.
# status: finished | cancelled | failed (the reason of a failure is the `error` event)

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
