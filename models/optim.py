"""Optimizers of the training graph: state as resource variables, updates in the graph.

The update rules are Keras 3's (`keras.optimizers.Adam` / `SGD`, same defaults and the
same order of float operations), so a step here matches a Keras step. Each variable is read
once per step and written once: in TFLite every READ_VARIABLE and ASSIGN_VARIABLE copies
the whole tensor, and for the upper layers of alpha 1.0 those copies cost as much as the
matmuls. The step counter is float32 (exact up to 2**24 steps) so that all exported state
is one dtype.
"""

from __future__ import annotations

import tensorflow as tf

ADAM_BETA_1 = 0.9
ADAM_BETA_2 = 0.999
ADAM_EPSILON = 1e-7


class Optimizer(tf.Module):
    """Slots per parameter, exported and imported by name with the weights."""

    kind: str

    def __init__(self, params: dict[str, tf.Variable], slot_names: tuple[str, ...]) -> None:
        super().__init__()
        self.step = tf.Variable(0.0, dtype=tf.float32, name=f"{self.kind}_step")
        self.slots: dict[str, dict[str, tf.Variable]] = {
            slot: {name: tf.Variable(tf.zeros_like(p), name=f"{self.kind}_{slot}_{name}")
                   for name, p in params.items()}
            for slot in slot_names
        }

    def state(self) -> dict[str, tf.Variable]:
        out = {f"{self.kind}_step": self.step}
        for slot, by_param in self.slots.items():
            out.update({f"{self.kind}_{slot}_{name}": v for name, v in by_param.items()})
        return out

    def reset(self) -> None:
        self.step.assign(0.0)
        for by_param in self.slots.values():
            for v in by_param.values():
                v.assign(tf.zeros(v.shape, v.dtype))

    def apply(self, params: dict[str, tf.Variable], values: dict[str, tf.Tensor],
              grads: dict[str, tf.Tensor], lr: tf.Tensor) -> None:
        """One step on the parameters named in `grads` (others and their slots untouched).

        `values` holds the parameters as read at the start of the step.
        """
        raise NotImplementedError


class Adam(Optimizer):
    kind = "adam"

    def __init__(self, params: dict[str, tf.Variable]) -> None:
        super().__init__(params, ("m", "v"))

    def apply(self, params, values, grads, lr):
        local_step = self.step.read_value() + 1.0
        beta_1_power = tf.pow(tf.constant(ADAM_BETA_1), local_step)
        beta_2_power = tf.pow(tf.constant(ADAM_BETA_2), local_step)
        alpha = lr * tf.sqrt(1.0 - beta_2_power) / (1.0 - beta_1_power)
        for name, g in grads.items():
            m_var, v_var = self.slots["m"][name], self.slots["v"][name]
            m, v = m_var.read_value(), v_var.read_value()
            m = m + (g - m) * (1.0 - ADAM_BETA_1)
            v = v + (tf.square(g) - v) * (1.0 - ADAM_BETA_2)
            m_var.assign(m)
            v_var.assign(v)
            params[name].assign(values[name] - (m * alpha) / (tf.sqrt(v) + ADAM_EPSILON))
        self.step.assign(local_step)


class SGD(Optimizer):
    kind = "sgd"

    def __init__(self, params: dict[str, tf.Variable], momentum: float) -> None:
        self.momentum = float(momentum)
        super().__init__(params, ("momentum",) if self.momentum else ())

    def apply(self, params, values, grads, lr):
        for name, g in grads.items():
            if self.momentum:
                m = self.slots["momentum"][name].read_value() * self.momentum - g * lr
                self.slots["momentum"][name].assign(m)
                params[name].assign(values[name] + m)
            else:
                params[name].assign(values[name] - g * lr)
        self.step.assign(self.step.read_value() + 1.0)


def make_optimizer(kind: str, params: dict[str, tf.Variable], momentum: float) -> Optimizer:
    if kind == "adam":
        return Adam(params)
    if kind == "sgd":
        return SGD(params, momentum)
    raise ValueError(f"unknown optimizer {kind!r}; expected adam or sgd")
