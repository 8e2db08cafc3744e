"""The NNAPI plan of the frozen trunk: export from Keras, layouts, hash, numpy executor."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from nnapi.executor import run_plan
from nnapi.trunks import LiteRT, images, keras_trunk, randomize_batchnorm

from device_agent.nnapi.planfile import PLAN_NPZ, PlanError, read_plan, write_plan
from models.errors import BuildError
from models.nnapi_plan import export_plan, plan_from_keras

pytest_plugins = ["nnapi.fixtures"]  # the simulated library, trunks, env

TOL = {"rtol": 1e-4, "atol": 1e-4}


def _op(plan, layer_prefix: str) -> dict:
    return next(op for op in plan.spec["operations"] if op["layer"].startswith(layer_prefix))


def _value(plan, index: int):
    operand = plan.spec["operands"][index]
    return plan.tensors[operand["tensor"]] if "tensor" in operand else operand["value"]


def test_split_plan_equals_frozen_tflite(split_trunk):
    """At layer B the numpy run of the plan equals LiteRT on frozen.tflite to 1e-4."""
    x = images(4, seed=1)

    got = run_plan(read_plan(split_trunk.plan), x)

    want = LiteRT(split_trunk.frozen)(x)
    assert got.shape == want.shape == (4, 6, 6, 128)
    assert want.max() > 1.0  # features in ReLU6's range, not vanishing
    np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize("which", ["plan", "plan_avg_pool"])
def test_pooled_plans_equal_frozen_tflite(pooled_trunk, which):
    """Head-only trunks, pooled by MEAN or by AVERAGE_POOL_2D + RESHAPE, equal frozen.tflite."""
    x = images(3, seed=2)
    plan = read_plan(getattr(pooled_trunk, which))

    got = run_plan(plan, x)

    want = LiteRT(pooled_trunk.frozen)(x)
    assert got.shape == want.shape == (3, 256)
    np.testing.assert_allclose(got, want, **TOL)
    expected_tail = ["MEAN"] if which == "plan" else ["AVERAGE_POOL_2D", "RESHAPE"]
    assert plan.op_types()[-len(expected_tail):] == expected_tail


def test_plan_uses_nnapi_layouts_folded_batchnorm_and_explicit_padding(split_trunk):
    """Scaling is MUL+ADD; filters are in NNAPI layout with BatchNorm folded; pads explicit."""
    plan = read_plan(split_trunk.plan)
    trunk = split_trunk.keras
    ops = plan.spec["operations"]

    assert [ops[0]["type"], ops[1]["type"]] == ["MUL", "ADD"]
    assert _value(plan, ops[0]["inputs"][1])[0] == np.float32(1 / 127.5)
    assert _value(plan, ops[1]["inputs"][1])[0] == np.float32(-1.0)
    bn = trunk.get_layer("conv1_bn")
    gamma, beta, mean, var = (np.asarray(w, np.float64) for w in bn.get_weights())
    scale = gamma / np.sqrt(var + bn.epsilon)
    kernel = np.asarray(trunk.get_layer("conv1").get_weights()[0], np.float64)
    conv1 = _op(plan, "conv1")
    np.testing.assert_allclose(_value(plan, conv1["inputs"][1]),
                               (kernel * scale).transpose(3, 0, 1, 2), rtol=1e-6)
    np.testing.assert_allclose(_value(plan, conv1["inputs"][2]), beta - mean * scale, rtol=1e-5,
                               atol=1e-6)
    dw2 = _op(plan, "conv_dw_2")
    assert dw2["type"] == "DEPTHWISE_CONV_2D"
    assert _value(plan, dw2["inputs"][1]).shape == (1, 3, 3, 16)
    # left, right, top, bottom: MobileNet's ZeroPadding2D ((0, 1), (0, 1)) before stride 2.
    assert [_value(plan, i) for i in dw2["inputs"][3:9]] == [0, 1, 0, 1, 2, 2]
    assert [_value(plan, i) for i in dw2["inputs"][9:11]] == [1, 3]  # multiplier, RELU6
    assert all(op["type"] != "PAD" for op in ops)  # every padding merged into a convolution


def test_plan_shapes_and_hash_are_recorded(split_trunk):
    """The plan states input, output and a sha256 that read_plan verifies."""
    plan = read_plan(split_trunk.plan)

    assert plan.spec["input"] == {"shape": [1, 96, 96, 3], "dtype": "float32", "range": [0, 255]}
    assert plan.spec["output"]["shape"] == [1, 6, 6, 128]
    assert len(plan.hash) == 64 and int(plan.hash, 16) >= 0


def test_odd_input_size_keeps_keras_padding():
    """At an odd size (97) the exported explicit padding reproduces Keras, not implicit SAME."""
    trunk = keras_trunk("conv_pw_5", size=97)
    x = images(2, seed=3, size=97)

    spec, tensors = plan_from_keras(trunk)
    got = run_plan((spec, tensors), x)

    want = np.asarray(trunk(x, training=False))
    assert got.shape == want.shape == (2, 12, 12, 64)  # implicit SAME would give 13 × 13
    np.testing.assert_allclose(got, want, **TOL)


def test_every_split_point_exports_and_matches_keras():
    """All 27 split layers and head-only export, and each plan computes Keras's features."""
    from models import keras_net
    from models.config import ModelConfig
    from models.layers import SPLIT_LAYERS

    config = ModelConfig(alpha=0.25, input_size=64, weights="none")
    model = keras_net.build_keras_model(config)
    randomize_batchnorm(model, seed=4)
    x = images(1, seed=4, size=64)
    for split in (*SPLIT_LAYERS, None):
        trunk = keras_net.build_frozen_keras(dataclasses.replace(config, finetune_from=split),
                                             model)

        got = run_plan(plan_from_keras(trunk), x)

        np.testing.assert_allclose(got, np.asarray(trunk(x, training=False)), **TOL,
                                   err_msg=f"split {split}")


def test_empty_trunks_export_a_plan_of_the_scaling_or_one_reshape():
    """From conv1 (A, nothing frozen) the plan is the input scaling, MUL + ADD; a trunk with
    no layer at all is one RESHAPE (NNAPI wants an operation); both compute the trunk."""
    import keras

    from models import keras_net
    from models.config import ModelConfig

    config = ModelConfig(alpha=0.25, input_size=32, weights="none", finetune_from="conv1")
    trunk = keras_net.build_frozen_keras(config)
    x = images(2, seed=5, size=32)
    spec, tensors = plan_from_keras(trunk)
    assert [op["type"] for op in spec["operations"]] == ["MUL", "ADD"]
    np.testing.assert_allclose(run_plan((spec, tensors), x), x / 127.5 - 1.0, **TOL)

    image = keras.Input((32, 32, 3))
    spec, tensors = plan_from_keras(keras.Model(image, image, name="identity"))
    assert [op["type"] for op in spec["operations"]] == ["RESHAPE"]
    assert spec["outputs"] != spec["inputs"]
    np.testing.assert_array_equal(run_plan((spec, tensors), x), x)


def test_a_changed_tensor_or_op_breaks_the_hash(split_trunk, tmp_path):
    """read_plan refuses a plan whose weights or op list changed after export."""
    plan = read_plan(split_trunk.plan)
    write_plan(tmp_path / "a", plan.spec, plan.tensors)
    tensors = dict(plan.tensors)
    name = next(iter(k for k in tensors if k.endswith(".filter")))
    tensors[name] = tensors[name].copy()
    tensors[name].flat[0] += 1e-3
    np.savez(tmp_path / "a" / PLAN_NPZ, **tensors)
    write_plan(tmp_path / "b", plan.spec, plan.tensors)
    spec = json.loads((tmp_path / "b" / "nnapi_plan.json").read_text())
    conv1 = spec["operations"][2]["inputs"]
    conv1[3], conv1[4] = conv1[4], conv1[3]  # pad left 0 ↔ pad right 1
    (tmp_path / "b" / "nnapi_plan.json").write_text(json.dumps(spec))

    for folder in ("a", "b"):
        with pytest.raises(PlanError, match="hash"):
            read_plan(tmp_path / folder)


def test_rewriting_the_same_plan_keeps_its_hash(split_trunk, tmp_path):
    """The hash depends on content only: re-exporting gives the same hash."""
    plan = read_plan(split_trunk.plan)

    again = read_plan(export_plan(split_trunk.keras, tmp_path))

    assert again.hash == plan.hash


def test_a_layer_without_nnapi_equivalent_is_a_build_error():
    """An unsupported layer stops the export with its name."""
    import keras

    inp = keras.Input((32, 32, 3))
    out = keras.layers.MaxPooling2D(name="maxpool")(keras.layers.Rescaling(1 / 127.5)(inp))

    with pytest.raises(BuildError, match="maxpool"):
        plan_from_keras(keras.Model(inp, out))
