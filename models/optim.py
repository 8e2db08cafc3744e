"""Optimizers of the training graph: pure functions of (values, gradients, slots, step).

The update rules are Keras 3's (`keras.optimizers.Adam` / `SGD`, same defaults and the
same order of float operations), so a step here matches a Keras step. The state is not held
in the graph: each signature takes it in and hands the updated state back (see
train_graph.py), so the graph has no resource variables and every tensor is static. The step
counter is float32 (exact up to 2**24 steps) so that all state is one dtype.
"""

from __future__ import annotations

import tensorflow as tf

ADAM_BETA_1 = 0.9
ADAM_BETA_2 = 0.999
ADAM_EPSILON = 1e-7

Tensors = dict[str, tf.Tensor]


class Optimizer:
    """Slot names per parameter; `apply` returns the new values, slots and step."""

    kind: str
    slot_names: tuple[str, ...] = ()

    def slot_key(self, slot: str, name: str) -> str:
        """The state name of one slot of one parameter (e.g. `adam_m_head_kernel`)."""
        return f"{self.kind}_{slot}_{name}"

    @property
    def step_key(self) -> str:
        return f"{self.kind}_step"

    def apply(self, values: Tensors, grads: Tensors, slots: Tensors, step: tf.Tensor,
              lr: tf.Tensor) -> tuple[Tensors, Tensors, tf.Tensor]:
        """One step on the parameters named in `grads`: (new values, new slots, new step).

        `slots` is keyed by `slot_key`; only the slots of `grads`' parameters are returned.
        """
        raise NotImplementedError


class Adam(Optimizer):
    kind = "adam"
    slot_names = ("m", "v")

    def apply(self, values, grads, slots, step, lr):
        local_step = step + 1.0
        beta_1_power = tf.pow(tf.constant(ADAM_BETA_1), local_step)
        beta_2_power = tf.pow(tf.constant(ADAM_BETA_2), local_step)
        alpha = lr * tf.sqrt(1.0 - beta_2_power) / (1.0 - beta_1_power)
        new_values, new_slots = {}, {}
        for name, g in grads.items():
            m, v = slots[self.slot_key("m", name)], slots[self.slot_key("v", name)]
            m = m + (g - m) * (1.0 - ADAM_BETA_1)
            v = v + (tf.square(g) - v) * (1.0 - ADAM_BETA_2)
            new_slots[self.slot_key("m", name)], new_slots[self.slot_key("v", name)] = m, v
            new_values[name] = values[name] - (m * alpha) / (tf.sqrt(v) + ADAM_EPSILON)
        return new_values, new_slots, local_step


class SGD(Optimizer):
    kind = "sgd"

    def __init__(self, momentum: float) -> None:
        self.momentum = float(momentum)
        self.slot_names = ("momentum",) if self.momentum else ()

    def apply(self, values, grads, slots, step, lr):
        new_values, new_slots = {}, {}
        for name, g in grads.items():
            if self.momentum:
                key = self.slot_key("momentum", name)
                m = slots[key] * self.momentum - g * lr
                new_slots[key] = m
                new_values[name] = values[name] + m
            else:
                new_values[name] = values[name] - g * lr
        return new_values, new_slots, step + 1.0


def make_optimizer(kind: str, momentum: float) -> Optimizer:
    if kind == "adam":
        return Adam()
    if kind == "sgd":
        return SGD(momentum)
    raise ValueError(f"unknown optimizer {kind!r}; expected adam or sgd")
