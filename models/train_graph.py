"""The trainable part (upper layers + head) as a tf.Module with the contract's signatures.

Forward and backward passes are written out layer by layer (models.grads) instead of taken
from a GradientTape, so the converted graph holds TFLite builtins only. The weights and
optimizer slots are not resource variables: every signature takes the state it needs as a
few flat float32 vectors (STATE_GROUPS) and returns the updated ones. A resource variable's
read is a dynamic-sized tensor in TFLite, and XNNPACK before LiteRT refuses any graph that
has one; passed in and out, every tensor of every signature is static.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from device_agent.contract import STATE_GROUPS
from models import grads
from models.keras_net import UpperPlan
from models.optim import make_optimizer

# The flat state vectors (STATE_GROUPS, in order): weights of the upper layers, of the
# head, their optimizer slots, the optimizer step. A group with nothing in it is left out.
Layout = dict[str, list[tuple[str, list[int]]]]


class TrainGraph(tf.Module):
    def __init__(self, plan: UpperPlan, *, batch_size: int, optimizer: str,
                 momentum: float) -> None:
        super().__init__(name="train_graph")
        self.plan = plan
        self.batch_size = batch_size
        self.params: dict[str, np.ndarray] = {}
        for layer in plan.layers:
            self.params[f"{layer.name}_kernel"] = np.asarray(layer.kernel, np.float32)
            self.params[f"{layer.name}_bias"] = np.asarray(layer.bias, np.float32)
        self.head_names = ("head_kernel", "head_bias")
        self.upper_names = tuple(self.params)
        self.params["head_kernel"] = np.asarray(plan.head_kernel, np.float32)
        self.params["head_bias"] = np.asarray(plan.head_bias, np.float32)
        self.opt = make_optimizer(optimizer, momentum)

    # --- state ------------------------------------------------------------------------------

    def layout(self) -> Layout:
        """Each state group's (name, shape) pieces, in the order they sit in its vector."""
        def shapes(names):
            return [(n, list(self.params[n].shape)) for n in names]

        def slots(names):
            return [(self.opt.slot_key(s, n), list(self.params[n].shape))
                    for s in self.opt.slot_names for n in names]

        groups = {"upper": shapes(self.upper_names), "head": shapes(self.head_names),
                  "upper_opt": slots(self.upper_names), "head_opt": slots(self.head_names),
                  "step": [(self.opt.step_key, [])]}
        return {g: pieces for g, pieces in groups.items() if pieces}

    def group_size(self, group: str) -> int:
        return sum(int(np.prod(shape)) for _, shape in self.layout()[group])

    def state_spec(self, group: str) -> tf.TensorSpec:
        shape = [] if group == "step" else [self.group_size(group)]
        return tf.TensorSpec(shape, tf.float32, name=group)

    def unpack(self, group: str, flat: tf.Tensor) -> dict[str, tf.Tensor]:
        if group == "step":
            return {self.opt.step_key: flat}
        out, at = {}, 0
        for name, shape in self.layout()[group]:
            size = int(np.prod(shape))
            out[name] = tf.reshape(tf.slice(flat, [at], [size]), shape)
            at += size
        return out

    def pack(self, group: str, values: dict[str, tf.Tensor]) -> tf.Tensor:
        if group == "step":
            return values[self.opt.step_key]
        parts = [tf.reshape(values[name], [-1]) for name, _ in self.layout()[group]]
        return parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)

    def initial(self, group: str) -> np.ndarray:
        """A group's vector at the start: the built weights, zero slots and step."""
        if group in ("upper", "head"):
            return np.concatenate([self.params[n].reshape(-1) for n, _ in self.layout()[group]])
        return np.zeros(self.state_spec(group).shape, np.float32)

    @property
    def pooled_dim(self) -> int:
        return int(self.plan.head_kernel.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.plan.head_kernel.shape[1])

    # --- passes (on `w`: the parameters unpacked at the start of a signature) ---------------

    def upper_forward(self, x: tf.Tensor, w: dict) -> tuple[tf.Tensor, list]:
        caches = []
        for layer in self.plan.layers:
            k, b = w[f"{layer.name}_kernel"], w[f"{layer.name}_bias"]
            if layer.kind == "conv":  # caches the image's patches, not the image
                out_shape = grads.conv_out_shape(x.shape, k.shape[3])
                x = grads.conv_patches(x)
                z = grads.conv_forward(x, k, b, out_shape)
            elif layer.kind == "dw":
                z = grads.depthwise_forward(x, k, b, layer.stride)
            else:
                z = grads.pointwise_forward(x, k, b)
            caches.append((x, z))
            x = grads.relu6_forward(z)
        return x, caches

    def upper_backward(self, dy: tf.Tensor, caches: list, w: dict) -> dict[str, tf.Tensor]:
        out = {}
        for i in reversed(range(len(self.plan.layers))):
            layer = self.plan.layers[i]
            x, z = caches[i]
            dz = grads.relu6_backward(dy, z)
            k = w[f"{layer.name}_kernel"]
            if layer.kind == "conv":  # the first layer (conv1): its input is the image
                dx = None
                dk, db = grads.conv_backward(dz, x, k)
            elif layer.kind == "dw":
                dx, dk, db = grads.depthwise_backward(dz, x, k, layer.stride)
            else:
                dx, dk, db = grads.pointwise_backward(dz, x, k)
            out[f"{layer.name}_kernel"], out[f"{layer.name}_bias"] = dk, db
            dy = dx  # the first layer's dx is unused and pruned by the converter
        return out

    def head_logits(self, pooled: tf.Tensor, w: dict) -> tf.Tensor:
        return grads.dense_forward(pooled, w["head_kernel"], w["head_bias"])

    def head_step(self, pooled, labels, weights, mask, w) -> tuple[tf.Tensor, dict, tf.Tensor]:
        """Return (loss, head gradients, gradient w.r.t. the pooled vector)."""
        dropped = pooled * mask
        loss, dlogits = grads.weighted_ce(self.head_logits(dropped, w), labels, weights)
        ddropped, dk, db = grads.dense_backward(dlogits, dropped, w["head_kernel"])
        return loss, {"head_kernel": dk, "head_bias": db}, ddropped * mask

    def step(self, groups: tuple[str, ...], state: dict[str, tf.Tensor], step_grads: dict,
             lr: tf.Tensor, w: dict) -> dict[str, tf.Tensor]:
        """One optimizer step; the updated vectors of `groups` (weights, slots, step)."""
        slots = {}
        for g in groups:
            if g.endswith("_opt"):
                slots.update(self.unpack(g, state[g]))
        new_w, new_slots, new_step = self.opt.apply(w, step_grads, slots, state["step"], lr)
        out = {g: self.pack(g, new_w) for g in groups if g in ("upper", "head")}
        out.update({g: self.pack(g, new_slots) for g in groups if g.endswith("_opt")})
        out["step"] = new_step
        return out

    # --- signatures -------------------------------------------------------------------------

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        b, d = self.batch_size, self.pooled_dim
        pooled = tf.TensorSpec([b, d], tf.float32, name="pooled")
        labels = tf.TensorSpec([b], tf.int32, name="labels")
        weights = tf.TensorSpec([b], tf.float32, name="weights")
        mask = tf.TensorSpec([b, d], tf.float32, name="mask")
        lr = tf.TensorSpec([], tf.float32, name="lr")
        have = self.layout()
        head_groups = tuple(g for g in ("head", "head_opt", "step") if g in have)

        @tf.function(input_signature=[pooled, labels, weights, mask, lr,
                                      *(self.state_spec(g) for g in head_groups)])
        def train_head(pooled, labels, weights, mask, lr, *state):
            state = dict(zip(head_groups, state, strict=True))
            w = self.unpack("head", state["head"])
            loss, head_grads, _ = self.head_step(pooled, labels, weights, mask, w)
            return {"loss": loss, **self.step(head_groups, state, head_grads, lr, w)}

        @tf.function(input_signature=[pooled, self.state_spec("head")])
        def infer_head(pooled, head):
            return {"probs": tf.nn.softmax(self.head_logits(pooled, self.unpack("head", head)))}

        @tf.function(input_signature=[])
        def initial_state():
            return {g: tf.constant(self.initial(g)) for g in ("upper", "head") if g in have}

        fns = {"train_head": train_head, "infer_head": infer_head,
               "initial_state": initial_state}
        if self.plan.layers:
            fns.update(self._upper_signatures(labels, weights, mask, lr))
        return {k: f.get_concrete_function() for k, f in fns.items()}

    def _upper_signatures(self, labels, weights, mask, lr) -> dict:
        features = tf.TensorSpec([self.batch_size, *self.plan.feature_shape], tf.float32,
                                 name="features")
        upper, head = self.state_spec("upper"), self.state_spec("head")
        groups = tuple(g for g in STATE_GROUPS if g in self.layout())

        @tf.function(input_signature=[features, upper])
        def embed(features, upper):
            top, _ = self.upper_forward(features, self.unpack("upper", upper))
            return {"pooled": grads.gap_forward(top)}

        @tf.function(input_signature=[features, labels, weights, mask, lr,
                                      *(self.state_spec(g) for g in groups)])
        def train(features, labels, weights, mask, lr, *state):
            state = dict(zip(groups, state, strict=True))
            w = {**self.unpack("upper", state["upper"]), **self.unpack("head", state["head"])}
            top, caches = self.upper_forward(features, w)
            loss, step_grads, dpooled = self.head_step(
                grads.gap_forward(top), labels, weights, mask, w)
            step_grads.update(
                self.upper_backward(grads.gap_backward(dpooled, top.shape), caches, w))
            return {"loss": loss, **self.step(groups, state, step_grads, lr, w)}

        @tf.function(input_signature=[features, upper, head])
        def infer(features, upper, head):
            w = {**self.unpack("upper", upper), **self.unpack("head", head)}
            top, _ = self.upper_forward(features, w)
            return {"probs": tf.nn.softmax(self.head_logits(grads.gap_forward(top), w))}

        return {"embed": embed, "train": train, "infer": infer}
