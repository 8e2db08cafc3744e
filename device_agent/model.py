"""train.tflite: the trainable part (upper layers + head) behind its signatures.

The graph holds no variables: this class keeps the state (weights, optimizer slots, step)
as the flat float32 vectors of contract.STATE_GROUPS, hands each signature the groups it
takes and keeps the groups a training signature returns. Every batch input has the static
batch size B of meta.json; callers pad short batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from device_agent import runtime
from device_agent.contract import HEAD_ONLY_SIGNATURES, SIGNATURES, STATE_GROUPS
from device_agent.errors import BadJob


class TrainModel:
    def __init__(self, path: str, meta: dict[str, Any], *, threads: int) -> None:
        try:
            self.interpreter = runtime.make_interpreter(path, threads=threads)
            self.signatures = self.interpreter.get_signature_list()
        except (ValueError, RuntimeError) as e:
            raise BadJob(f"train.tflite cannot be loaded: {e}") from e
        self.head_only = not meta.get("has_finetune", False)
        need = HEAD_ONLY_SIGNATURES if self.head_only else SIGNATURES
        missing = [s for s in need if s not in self.signatures]
        if missing:
            raise BadJob(f"train.tflite lacks the signatures {', '.join(missing)}")
        self._runners = {s: self.interpreter.get_signature_runner(s) for s in self.signatures}
        self._takes = {s: [g for g in STATE_GROUPS if g in self.signatures[s]["inputs"]]
                       for s in self.signatures}
        self.batch = int(meta["batch_size"])
        self.pooled_dim = int(meta["pooled_dim"])
        self.num_classes = int(meta["num_classes"])
        trainer = "train_head" if self.head_only else "train"
        details = self._runners[trainer].get_input_details()
        self._shapes = {g: tuple(int(n) for n in details[g]["shape"]) for g in self._takes[trainer]}
        self.state: dict[str, np.ndarray] = {}
        self.reset_state()

    def _run(self, sig: str, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        inputs = {**inputs, **{g: self.state[g] for g in self._takes[sig]}}
        runner = self._runners[sig]
        if any(np.ndim(v) == 0 for v in inputs.values()) and _is_plain_runner(runner):
            out = _call_keeping_scalars(runner, inputs)
        else:
            out = runner(**inputs)
        for g in self._takes[sig]:
            if g in out:  # a training signature hands back the updated group
                self.state[g] = out.pop(g)
        return out

    @staticmethod
    def _one(out: dict[str, np.ndarray], name: str) -> np.ndarray:
        if name in out:
            return out[name]
        if len(out) == 1:
            return next(iter(out.values()))
        raise BadJob(f"train.tflite output {name!r} not found among {sorted(out)}")

    def _step(self, sig: str, key: str, x: np.ndarray, labels: np.ndarray,
              weights: np.ndarray, mask: np.ndarray, lr: float) -> float:
        out = self._run(sig, **{key: x.astype(np.float32, copy=False)},
                        labels=labels.astype(np.int32, copy=False),
                        weights=weights.astype(np.float32, copy=False),
                        mask=mask.astype(np.float32, copy=False),
                        lr=np.asarray(lr, dtype=np.float32))
        return float(self._one(out, "loss"))

    def train_head(self, pooled, labels, weights, mask, lr: float) -> float:
        """One optimizer step of the head on pooled vectors [B, D]; the batch's loss."""
        return self._step("train_head", "pooled", pooled, labels, weights, mask, lr)

    def train(self, features, labels, weights, mask, lr: float) -> float:
        """One optimizer step of upper layers + head on trunk features [B, h, w, c]."""
        return self._step("train", "features", features, labels, weights, mask, lr)

    def infer_head(self, pooled: np.ndarray) -> np.ndarray:
        return self._one(self._run("infer_head", pooled=pooled.astype(np.float32)), "probs")

    def infer(self, features: np.ndarray) -> np.ndarray:
        return self._one(self._run("infer", features=features.astype(np.float32)), "probs")

    def embed(self, features: np.ndarray) -> np.ndarray:
        return self._one(self._run("embed", features=features.astype(np.float32)), "pooled")

    # --- state ------------------------------------------------------------------------------

    def reset_state(self) -> None:
        """The built weights, zero optimizer slots and step."""
        weights = self._runners["initial_state"]()
        self.state = {g: np.array(weights[g], np.float32) if g in weights
                      else np.zeros(shape, np.float32) for g, shape in self._shapes.items()}

    def export_state(self) -> dict[str, np.ndarray]:
        return {g: v.copy() for g, v in self.state.items()}

    def import_state(self, state: dict[str, np.ndarray]) -> None:
        if set(state) != set(self._shapes) or any(
                tuple(np.shape(v)) != self._shapes[g] for g, v in state.items()):
            raise BadJob("the checkpoint does not match train.tflite's state tensors")
        self.state = {g: np.array(v, np.float32) for g, v in state.items()}

    def reset_optimizer(self) -> None:
        """A new phase: zero optimizer slots and step, weights kept."""
        for g in self.state:
            if g not in ("upper", "head"):
                self.state[g] = np.zeros_like(self.state[g])


def _is_plain_runner(runner: Any) -> bool:
    return all(hasattr(runner, a) for a in ("_interpreter_wrapper", "_inputs", "_outputs",
                                            "_subgraph_index"))


def _call_keeping_scalars(runner: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """SignatureRunner's call without resizing scalar inputs (their shape cannot change):
    ai-edge-litert 2.3's aarch64 build crashes resizing a tensor to shape () (a memset of -4
    bytes in InterpreterWrapper::ResizeInputTensor), which every train step's `lr` is."""
    w, index, sub = runner._interpreter_wrapper, runner._inputs, runner._subgraph_index
    if set(inputs) != set(index):
        raise ValueError(f"inputs {sorted(inputs)} are not the signature's {sorted(index)}")
    for name, value in inputs.items():
        if np.ndim(value):
            w.ResizeInputTensor(index[name], np.array(value.shape, dtype=np.int32), False, sub)
    w.AllocateTensors(sub)
    for name, value in inputs.items():
        w.SetTensor(index[name], value, sub)
    w.Invoke(sub)
    return {name: w.GetTensor(i, sub) for name, i in runner._outputs}
