"""Epochs and evaluation over cached arrays, with a static batch size and seeded randomness.

The randomness of training (shuffles and dropout masks) comes from ONE numpy Generator whose
state is checkpointed, so a resumed run draws exactly what an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

StepFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float], float]
PredictFn = Callable[[np.ndarray], np.ndarray]
TRAIN_STREAM = 0x747261696E  # mixed into the seed: training draws differ from sampling's


def training_rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([seed, TRAIN_STREAM]))


def padded(x: np.ndarray, batch: int) -> np.ndarray:
    """`x` with zero rows appended up to `batch` rows (the graphs have a static batch)."""
    if len(x) == batch:
        return x
    pad = np.zeros((batch - len(x),) + x.shape[1:], dtype=x.dtype)
    return np.concatenate([x, pad])


def dropout_mask(rng: np.random.Generator, batch: int, dim: int, rate: float) -> np.ndarray:
    """Inverted dropout: each unit kept with probability 1 - rate and scaled by 1/(1 - rate)."""
    if rate <= 0:
        return np.ones((batch, dim), dtype=np.float32)
    keep = rng.random((batch, dim)) >= rate
    return (keep / (1.0 - rate)).astype(np.float32)


def train_epoch(step: StepFn, x: np.ndarray, y: np.ndarray, *, rng: np.random.Generator,
                batch: int, dim: int, rate: float, lr: float,
                should_stop: Callable[[], bool] = lambda: False) -> float | None:
    """One shuffled pass; the example-weighted mean of the batch losses, None if stopped."""
    order = rng.permutation(len(x))
    total, seen = 0.0, 0
    for start in range(0, len(order), batch):
        if should_stop():
            return None
        idx = order[start:start + batch]
        n = len(idx)
        weights = np.zeros(batch, dtype=np.float32)
        weights[:n] = 1.0
        mask = dropout_mask(rng, batch, dim, rate)
        loss = step(padded(np.asarray(x[idx]), batch), padded(y[idx], batch), weights, mask, lr)
        total += loss * n
        seen += n
    return total / max(seen, 1)


@dataclass
class Evaluation:
    loss: float
    accuracy: float
    per_class: list[float]


def predict(fn: PredictFn, x: np.ndarray, batch: int) -> np.ndarray:
    """Class probabilities for every row of `x`, run in static batches (padding dropped)."""
    out = []
    for start in range(0, len(x), batch):
        chunk = np.asarray(x[start:start + batch])
        out.append(np.asarray(fn(padded(chunk, batch)))[: len(chunk)])
    return np.concatenate(out)


def evaluate(fn: PredictFn, x: np.ndarray, y: np.ndarray, *, batch: int,
             num_classes: int) -> Evaluation:
    """Cross-entropy, accuracy and per-class accuracy of the model on (x, y)."""
    probs = predict(fn, x, batch).astype(np.float64)
    p_true = probs[np.arange(len(y)), y]
    loss = float(np.mean(-np.log(np.clip(p_true, 1e-7, 1.0))))
    hit = probs.argmax(axis=1) == y
    per_class = [float(hit[y == k].mean()) if np.any(y == k) else float("nan")
                 for k in range(num_classes)]
    return Evaluation(loss, float(hit.mean()), per_class)
