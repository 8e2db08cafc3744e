"""The trainable part (upper layers + head) as a tf.Module with the contract's signatures.

Forward and backward passes are written out layer by layer (models.grads) instead of taken
from a GradientTape, so the converted graph holds TFLite builtins only. Weights and
optimizer slots are resource variables updated in the graph.
"""

from __future__ import annotations

import tensorflow as tf

from models import grads
from models.keras_net import UpperPlan
from models.optim import make_optimizer

# One scalar output each: TFLite drops a signature without outputs, and the assignments
# of a function without outputs are pruned.
STATE_ACK = "step"


class TrainGraph(tf.Module):
    def __init__(self, plan: UpperPlan, *, batch_size: int, optimizer: str,
                 momentum: float) -> None:
        super().__init__(name="train_graph")
        self.plan = plan
        self.batch_size = batch_size
        self.params: dict[str, tf.Variable] = {}
        for layer in plan.layers:
            self.params[f"{layer.name}_kernel"] = tf.Variable(layer.kernel, name=layer.name)
            self.params[f"{layer.name}_bias"] = tf.Variable(layer.bias, name=layer.name)
        self.params["head_kernel"] = tf.Variable(plan.head_kernel, name="head_kernel")
        self.params["head_bias"] = tf.Variable(plan.head_bias, name="head_bias")
        self.head_names = ("head_kernel", "head_bias")
        self.opt = make_optimizer(optimizer, self.params, momentum)

    # --- state ------------------------------------------------------------------------------

    def state(self) -> dict[str, tf.Variable]:
        """Everything a resumed run needs, in a fixed order: weights, then optimizer."""
        return {**self.params, **self.opt.state()}

    @property
    def pooled_dim(self) -> int:
        return int(self.plan.head_kernel.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.plan.head_kernel.shape[1])

    # --- passes (on `w`: the parameters read once at the start of a signature) -------------

    def read(self, names: tuple[str, ...] | None = None) -> dict[str, tf.Tensor]:
        """Read each variable once: every TFLite READ_VARIABLE copies the whole tensor."""
        return {n: self.params[n].read_value() for n in (names or self.params)}

    def upper_forward(self, x: tf.Tensor, w: dict) -> tuple[tf.Tensor, list]:
        caches = []
        for layer in self.plan.layers:
            k, b = w[f"{layer.name}_kernel"], w[f"{layer.name}_bias"]
            if layer.kind == "dw":
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
            if layer.kind == "dw":
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

    # --- signatures -------------------------------------------------------------------------

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        b, d = self.batch_size, self.pooled_dim
        pooled = tf.TensorSpec([b, d], tf.float32, name="pooled")
        labels = tf.TensorSpec([b], tf.int32, name="labels")
        weights = tf.TensorSpec([b], tf.float32, name="weights")
        mask = tf.TensorSpec([b, d], tf.float32, name="mask")
        lr = tf.TensorSpec([], tf.float32, name="lr")
        state = self.state()

        @tf.function(input_signature=[pooled, labels, weights, mask, lr])
        def train_head(pooled, labels, weights, mask, lr):
            w = self.read(self.head_names)
            loss, head_grads, _ = self.head_step(pooled, labels, weights, mask, w)
            self.opt.apply(self.params, w, head_grads, lr)
            return {"loss": loss}

        @tf.function(input_signature=[pooled])
        def infer_head(pooled):
            return {"probs": tf.nn.softmax(self.head_logits(pooled, self.read(self.head_names)))}

        @tf.function(input_signature=[])
        def export_state():
            return {name: tf.identity(v) for name, v in state.items()}

        @tf.function(input_signature=[tf.TensorSpec(v.shape, v.dtype, name=n)
                                      for n, v in state.items()])
        def import_state(*values):
            for v, value in zip(state.values(), values, strict=True):
                v.assign(value)
            return {STATE_ACK: tf.identity(self.opt.step)}

        @tf.function(input_signature=[])
        def reset_optimizer():
            self.opt.reset()
            return {STATE_ACK: tf.identity(self.opt.step)}

        fns = {"train_head": train_head, "infer_head": infer_head,
               "export_state": export_state, "import_state": import_state,
               "reset_optimizer": reset_optimizer}
        if self.plan.layers:
            fns.update(self._upper_signatures(labels, weights, mask, lr))
        return {k: f.get_concrete_function() for k, f in fns.items()}

    def _upper_signatures(self, labels, weights, mask, lr) -> dict:
        features = tf.TensorSpec([self.batch_size, *self.plan.feature_shape], tf.float32,
                                 name="features")

        @tf.function(input_signature=[features])
        def embed(features):
            top, _ = self.upper_forward(features, self.read())
            return {"pooled": grads.gap_forward(top)}

        @tf.function(input_signature=[features, labels, weights, mask, lr])
        def train(features, labels, weights, mask, lr):
            w = self.read()
            top, caches = self.upper_forward(features, w)
            loss, step_grads, dpooled = self.head_step(
                grads.gap_forward(top), labels, weights, mask, w)
            step_grads.update(
                self.upper_backward(grads.gap_backward(dpooled, top.shape), caches, w))
            self.opt.apply(self.params, w, step_grads, lr)
            return {"loss": loss}

        @tf.function(input_signature=[features])
        def infer(features):
            w = self.read()
            top, _ = self.upper_forward(features, w)
            return {"probs": tf.nn.softmax(self.head_logits(grads.gap_forward(top), w))}

        return {"embed": embed, "train": train, "infer": infer}
