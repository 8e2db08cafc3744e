"""The built models in LiteRT against TensorFlow/Keras: forward, one training step, resume.

Weights: a legacy-layout HDF5 file of random values with realistic BatchNorm statistics
(so folding is exercised without ../shared/data); alpha 0.25, input 96, split conv_dw_12
(a stride-2 depthwise layer, then stride-1 ones and pointwise ones: every layer kind), and
split conv1 (the paper's A: the whole network trains, the first 3×3 stride-2 convolution too).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from device_agent import contract  # noqa: E402
from device_agent.model import TrainModel  # noqa: E402
from models import keras_net  # noqa: E402
from models.build import build  # noqa: E402
from models.config import ModelConfig  # noqa: E402
from models.reference import build_folded_keras, to_keras  # noqa: E402
from models.tflite_info import describe  # noqa: E402

B = 4
SPLIT = "conv_dw_12"
# Float32 in another runtime, op set and summation order: after one step the weights agree
# to 1e-6 absolute (0.1 % of Adam's step size lr = 1e-3; measured ≤ 1e-7), and Adam's first
# moment (0.1 × the gradient, which Adam's sign-like step alone would hide) to 1e-5 of its
# largest value (measured ≤ 2e-6).
STEP_ATOL = 1e-6
SLOT_RTOL = 1e-5
rng = np.random.default_rng(3)


def write_random_weights(path: Path, alpha: float) -> Path:
    """A MobileNet V1 file in Keras's legacy HDF5 layout, BatchNorm statistics non-trivial."""
    import h5py

    base = keras.applications.MobileNet(input_shape=(96, 96, 3), alpha=alpha,
                                        include_top=False, weights=None)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in base.layers]
        for layer in base.layers:
            g = f.create_group(layer.name)
            names = [f"{layer.name}/{w.name}:0".encode() for w in layer.weights]
            g.attrs["weight_names"] = names
            for name, w in zip(names, layer.weights, strict=True):
                shape = tuple(w.shape)
                if w.name == "moving_variance":
                    value = rng.uniform(0.5, 2.0, shape)
                elif w.name == "gamma":
                    value = rng.uniform(0.5, 1.5, shape)
                elif w.name in ("beta", "moving_mean"):
                    value = rng.normal(0, 0.3, shape)
                else:
                    value = rng.normal(0, np.sqrt(2.0 / np.prod(shape[:-1])), shape)
                g.create_dataset(name.decode(), data=value.astype(np.float32))
    return path


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory) -> Path:
    return write_random_weights(tmp_path_factory.mktemp("weights") / "random.h5", 0.25)


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def finetune(weights_file, cache):
    """method 2 shape: Adam, fine-tune from a stride-2 depthwise layer."""
    config = ModelConfig(alpha=0.25, input_size=96, weights=str(weights_file),
                         finetune_from=SPLIT, batch_size=B, optimizer="adam")
    return config, build(config, cache_dir=cache)


@pytest.fixture(scope="session")
def from_a(weights_file, cache):
    """Fine-tune from A (conv1): every layer trains, the frozen trunk only scales the image."""
    config = ModelConfig(alpha=0.25, input_size=96, weights=str(weights_file),
                         finetune_from="conv1", batch_size=B, optimizer="adam")
    return config, build(config, cache_dir=cache)


@pytest.fixture(scope="session")
def head_only(weights_file, cache):
    """method 1 shape: SGD with momentum, head only."""
    config = ModelConfig(alpha=0.25, input_size=96, weights=str(weights_file),
                         finetune_from=None, batch_size=B, optimizer="sgd", momentum=0.9)
    return config, build(config, cache_dir=cache)


@pytest.fixture(scope="session")
def keras_full(finetune):
    return keras_net.build_keras_model(finetune[0])


def runner(path: Path):
    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    return interp


def meta_of(built) -> dict:
    return json.loads(built.meta_path.read_text())


def model(built) -> TrainModel:
    """train.tflite behind the agent's state keeping (the state passes in and out)."""
    return TrainModel(str(built.train_path), meta_of(built), threads=1)


def named_state(layout: dict[str, list], state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The flat state groups as named tensors (meta.json's state_layout)."""
    out = {}
    for group, pieces in layout.items():
        flat, at = np.asarray(state[group]).reshape(-1), 0
        for name, shape in pieces:
            size = int(np.prod(shape))
            out[name] = flat[at:at + size].reshape(shape)
            at += size
    return out


def named(built, m: TrainModel) -> dict[str, np.ndarray]:
    return named_state(meta_of(built)["state_layout"], m.export_state())


def images(n: int) -> np.ndarray:
    return rng.uniform(0, 255, (n, 96, 96, 3)).astype(np.float32)


def frozen_features(built, imgs: np.ndarray) -> np.ndarray:
    run = runner(built.frozen_path).get_signature_runner()
    return np.concatenate([run(image=img[None])["features"] for img in imgs])


def pooled_dim(built) -> int:
    return json.loads(built.meta_path.read_text())["pooled_dim"]


def batch(num_classes: int, dim: int, rate: float = 0.2):
    labels = rng.integers(0, num_classes, B).astype(np.int32)
    weights = np.array([1, 1, 1, 0], np.float32)  # a short batch: the last row is padding
    mask = (rng.random((B, dim)) >= rate).astype(np.float32) / (1 - rate)
    return labels, weights, mask


# --- (1) builtin ops only, loads, allocates and runs in LiteRT --------------------------------


def test_artifacts_are_builtin_only_with_contract_signatures(finetune, from_a, head_only):
    """Every build converts with TFLITE_BUILTINS only and has exactly the contract's signatures."""
    for built, expected in ((finetune[1], contract.SIGNATURES),
                            (from_a[1], contract.SIGNATURES),
                            (head_only[1], contract.HEAD_ONLY_SIGNATURES)):
        for path in (built.frozen_path, built.train_path):
            info = describe(path)
            assert info["builtin_only"] and not any(op.startswith("CUSTOM") for op in info["ops"])
        assert set(runner(built.train_path).get_signature_list()) == set(expected)


def test_meta_json_has_contract_keys_and_static_batch(finetune):
    """meta.json holds MODEL_META_KEYS; every batch dimension is the static B."""
    config, built = finetune
    meta = json.loads(built.meta_path.read_text())
    sigs = describe(built.train_path)["signatures"]

    assert tuple(meta) == contract.MODEL_META_KEYS
    assert meta["hash"] == built.hash and meta["batch_size"] == B and meta["has_finetune"]
    assert sigs["train"]["inputs"]["features"] == [B, *meta["feature_shape"]]
    assert sigs["train_head"]["inputs"]["mask"] == [B, meta["pooled_dim"]]
    layout = meta["state_layout"]
    assert set(layout) == {g for g in contract.STATE_GROUPS if g in sigs["train"]["inputs"]}
    for group, pieces in layout.items():
        size = sum(int(np.prod(shape)) for _, shape in pieces)
        assert sigs["train"]["inputs"][group] == ([] if group == "step" else [size])
        assert sigs["train"]["outputs"][group] == sigs["train"]["inputs"][group]


@pytest.mark.parametrize("which", ["finetune", "from_a"])
def test_every_tensor_is_static(which, request):
    """No signature has a dynamic dimension or a resource variable: XNNPACK takes them all."""
    _, built = request.getfixturevalue(which)
    info = describe(built.train_path)
    assert not {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"} & set(info["ops"])
    interp = runner(built.train_path)
    for sig in interp.get_signature_list():
        for details in (interp.get_signature_runner(sig).get_input_details(),
                        interp.get_signature_runner(sig).get_output_details()):
            for name, d in details.items():
                assert -1 not in list(d["shape_signature"]), f"{sig}.{name}"


# --- (4) forward parity -------------------------------------------------------------------------


def test_frozen_trunk_equals_keras_trunk(finetune, keras_full):
    """frozen.tflite (image 0…255 in) gives the Keras trunk's features at the split."""
    config, built = finetune
    imgs = images(2)

    want = keras_net.build_frozen_keras(config, keras_full).predict(imgs, verbose=0)
    got = frozen_features(built, imgs)

    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_infer_equals_keras_prediction(finetune, keras_full):
    """frozen.tflite then `infer` gives the probabilities of the Keras model on the images."""
    _, built = finetune
    imgs = images(B)

    want = keras_full.predict(imgs, verbose=0)
    got = model(built).infer(frozen_features(built, imgs))

    np.testing.assert_allclose(got, want, atol=1e-5)


def test_from_a_trunk_is_the_scaling_and_infer_equals_keras(from_a):
    """From A the frozen trunk only scales the image to −1…1; then `infer` is the Keras model."""
    config, built = from_a
    imgs = images(B)

    features = frozen_features(built, imgs)
    np.testing.assert_allclose(features, imgs / 127.5 - 1.0, atol=1e-6)
    assert describe(built.frozen_path)["ops"] and meta_of(built)["feature_shape"] == [96, 96, 3]
    got = model(built).infer(features)

    np.testing.assert_allclose(got, keras_net.build_keras_model(config).predict(imgs, verbose=0),
                               atol=1e-5)


def test_head_only_infer_head_equals_keras_prediction(head_only):
    """method 1: the frozen trunk's pooled vector then `infer_head` equals Keras's prediction."""
    config, built = head_only
    imgs = images(B)

    want = keras_net.build_keras_model(config).predict(imgs, verbose=0)
    got = model(built).infer_head(frozen_features(built, imgs))

    np.testing.assert_allclose(got, want, atol=1e-5)


# --- (3) one training step against Keras on the equivalent (folded) model ---------------------


def folded_keras(config: ModelConfig, state: dict[str, np.ndarray]):
    """The upper part + head in stock Keras layers, BatchNorm folded, weights from `state`."""
    plan = keras_net.upper_plan(config, keras_net.build_keras_model(config))
    return build_folded_keras(plan, B, state)


def keras_step(model, optimizer, inputs, labels, weights):
    with tf.GradientTape() as tape:
        logits = model(inputs)
        ce = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        loss = tf.reduce_sum(weights * ce) / tf.reduce_sum(weights)
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                  model.trainable_variables, strict=True))
    return float(loss)


@pytest.mark.parametrize("which", ["finetune", "from_a"])
def test_train_step_equals_keras_adam_step(which, request):
    """One `train` step in LiteRT leaves the weights and Adam slots of one Keras Adam step."""
    config, built = request.getfixturevalue(which)
    m = model(built)
    state0 = named(built, m)
    features = frozen_features(built, images(B))
    labels, weights, mask = batch(config.num_classes, state0["head_kernel"].shape[0])
    lr = np.float32(1e-3)
    keras_model, assign = folded_keras(config, state0)
    adam = keras.optimizers.Adam(learning_rate=float(lr))

    loss = m.train(features, labels, weights, mask, lr)
    state1 = named(built, m)
    want_loss = keras_step(keras_model, adam, [features, mask], labels, weights)

    assert float(loss) == pytest.approx(want_loss, rel=1e-5)
    assert state1["adam_step"] == 1.0
    # Keras keeps Adam's slots in the order of model.trainable_variables (no public accessor).
    slots = iter(zip(adam._momentums, adam._velocities, strict=True))
    for prefix, layer in assign:
        for part, var in zip(("kernel", "bias"), layer.weights, strict=True):
            key, (m, v) = f"{prefix}_{part}", next(slots)

            def keras_layout(name: str, part: str = part, prefix: str = prefix) -> np.ndarray:
                return to_keras(prefix, state1[name]) if part == "kernel" else state1[name]

            # From A the gradient reaching the bottom layers of random weights is ~1e-11,
            # where Adam's step (~lr·g/eps) moves nothing: there, the slots tell it arrived.
            assert np.abs(state1[f"adam_m_{key}"]).max() > 0, f"no gradient reached {key}"
            if which == "finetune":
                assert np.abs(state1[key] - state0[key]).max() > 1e-4, f"{key} did not train"
            np.testing.assert_allclose(keras_layout(key), var.numpy(), atol=STEP_ATOL,
                                       err_msg=key)
            # From A the gradient crosses 27 layers in float32, summed in another order than
            # TensorFlow's: the bottom layers' agree to ~6e-6 of their largest value (measured),
            # so 4× the bound there. v holds the squared gradient: twice its relative error.
            rtol = SLOT_RTOL * (4 if which == "from_a" else 1)
            for slot, want, tol in (("m", m.numpy(), rtol), ("v", v.numpy(), 2 * rtol)):
                np.testing.assert_allclose(
                    keras_layout(f"adam_{slot}_{key}"), want,
                    atol=tol * np.abs(want).max(), err_msg=f"{slot} of {key}")


def test_train_head_step_equals_keras_sgd_momentum_step(head_only):
    """method 1: two `train_head` SGD-momentum steps equal two Keras SGD steps on the head."""
    config, built = head_only
    m = model(built)
    state0 = named(built, m)
    pooled = frozen_features(built, images(B))
    dim = pooled.shape[1]
    dense = keras.layers.Dense(config.num_classes)
    inp, msk = keras.Input((dim,), batch_size=B), keras.Input((dim,), batch_size=B)
    keras_model = keras.Model([inp, msk], dense(keras.layers.Multiply()([inp, msk])))
    dense.set_weights([state0["head_kernel"], state0["head_bias"]])
    sgd = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)

    for _ in range(2):
        labels, weights, mask = batch(config.num_classes, dim)
        m.train_head(pooled, labels, weights, mask, 0.01)
        keras_step(keras_model, sgd, [pooled, mask], labels, weights)
    state = named(built, m)

    np.testing.assert_allclose(state["head_kernel"], dense.kernel.numpy(), atol=STEP_ATOL)
    np.testing.assert_allclose(state["head_bias"], dense.bias.numpy(), atol=STEP_ATOL)
    assert np.abs(state["sgd_momentum_head_kernel"]).max() > 0


def test_embed_equals_folded_keras_pooled_vector(finetune):
    """`embed` gives the pooled vector of the upper layers (what the head phase caches)."""
    config, built = finetune
    m = model(built)
    features = frozen_features(built, images(B))
    keras_model, _ = folded_keras(config, named(built, m))
    pooled_model = keras.Model(keras_model.inputs[0], keras_model.get_layer("pooled").output)

    got = m.embed(features)

    np.testing.assert_allclose(got, pooled_model.predict(features, verbose=0), atol=1e-5)


# --- state: resume, reset, padding ---------------------------------------------------------


def test_resume_from_exported_state_continues_exactly(finetune):
    """Export after 2 steps, import into a fresh interpreter, 2 more: same as 4 straight."""
    config, built = finetune
    features = frozen_features(built, images(B))
    steps = [batch(config.num_classes, pooled_dim(built)) for _ in range(4)]

    def run(m, todo):
        for labels, weights, mask in todo:
            m.train(features, labels, weights, mask, 1e-3)

    straight = model(built)
    run(straight, steps)
    first = model(built)
    run(first, steps[:2])
    saved = first.export_state()
    resumed = model(built)
    resumed.import_state(saved)
    run(resumed, steps[2:])

    want, got = named(built, straight), named(built, resumed)
    assert got["adam_step"] == 4.0
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_reset_optimizer_zeroes_slots_and_keeps_weights(finetune):
    """`reset_optimizer` starts a new phase: slots and step zero, weights untouched."""
    config, built = finetune
    m = model(built)
    labels, weights, mask = batch(config.num_classes, pooled_dim(built))
    m.train(frozen_features(built, images(B)), labels, weights, mask, 1e-3)
    before = named(built, m)

    m.reset_optimizer()
    after = named(built, m)

    assert before["adam_step"] == 1.0 and after["adam_step"] == 0.0
    for name, value in after.items():
        if name.startswith("adam_"):
            assert not value.any(), name
        else:
            np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_padding_rows_with_weight_zero_change_nothing(finetune):
    """A short batch's padding rows (weight 0) do not move the weights, whatever they hold."""
    config, built = finetune
    features = frozen_features(built, images(B))
    labels, weights, mask = batch(config.num_classes, pooled_dim(built))
    other = features.copy()
    other[-1] = rng.uniform(0, 6, other[-1].shape)
    other_labels = labels.copy()
    other_labels[-1] = 1 - labels[-1]

    results = []
    for f, lab in ((features, labels), (other, other_labels)):
        m = model(built)
        loss = m.train(f, lab, weights, mask, 1e-3)
        results.append((loss, named(built, m)))

    assert results[0][0] == results[1][0]
    for name, value in results[0][1].items():
        np.testing.assert_array_equal(value, results[1][1][name], err_msg=name)
