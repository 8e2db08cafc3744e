"""Building: the cache, clear BuildErrors, the weights loader, and `orch model build`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.build import build
from models.config import ModelConfig
from models.errors import BuildError

REPO = Path(__file__).resolve().parents[1]
SMALL = {"alpha": 0.25, "input_size": 96, "weights": "none"}


def orch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def write_h5(path: Path, alpha: float) -> Path:
    """A legacy-layout weights file of Keras's own MobileNet at `alpha` (random init)."""
    import h5py
    import keras

    base = keras.applications.MobileNet(input_shape=(96, 96, 3), alpha=alpha,
                                        include_top=False, weights=None)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in base.layers]
        for layer in base.layers:
            g = f.create_group(layer.name)
            g.attrs["weight_names"] = [f"{layer.name}/{w.name}:0".encode() for w in layer.weights]
            for w in layer.weights:
                g.create_dataset(f"{layer.name}/{w.name}:0", data=np.asarray(w.numpy()))
    return path


@pytest.mark.parametrize(("split", "layer"), [
    (None, "head_pool"), ("conv1", "scale"), ("conv_dw_1", "conv1_relu"),
    ("conv_pw_1", "conv_dw_1_relu"),
    ("conv_dw_12", "conv_pw_11_relu"), ("conv_pw_11", "conv_dw_11_relu"),
])
def test_frozen_trunk_ends_just_before_the_split(split, layer):
    """The trunk's output is the layer below the split (before a stride-2 block's padding)."""
    from models.keras_net import feature_layer_name

    assert feature_layer_name(split) == layer


# --- the cache ----------------------------------------------------------------------------


def test_second_build_is_a_cache_hit_without_importing_tensorflow(tmp_path):
    """A rebuild of the same config finds the cache before TensorFlow is imported."""
    config = ModelConfig(**SMALL, finetune_from=None)
    first = build(config, cache_dir=tmp_path)
    probe = (
        "import sys, pathlib\n"
        "from models.build import build\nfrom models.config import ModelConfig\n"
        f"r = build(ModelConfig(**{SMALL!r}, finetune_from=None), "
        f"cache_dir=pathlib.Path({str(tmp_path)!r}))\n"
        "print(r.cache_hit, r.hash, 'tensorflow' in sys.modules)\n"
    )

    second = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                            text=True, timeout=120)

    assert not first.cache_hit and first.dir == tmp_path / "models" / first.hash
    assert second.stdout.split() == ["True", first.hash, "False"], second.stderr


def test_hash_follows_what_changes_the_bytes(tmp_path):
    """Split, batch, optimizer and weights content change the hash; SGD momentum under Adam not."""
    base = ModelConfig(**SMALL, finetune_from="conv_pw_11")
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"one")
    from_file = ModelConfig(**{**SMALL, "weights": str(weights)})
    before = from_file.hash()
    weights.write_bytes(b"two")

    assert len({base.hash(), ModelConfig(**SMALL, finetune_from="conv_pw_7").hash(),
                ModelConfig(**SMALL, finetune_from="conv_pw_11", batch_size=8).hash(),
                ModelConfig(**SMALL, finetune_from="conv_pw_11", optimizer="sgd").hash()}) == 4
    assert ModelConfig(**SMALL, finetune_from="conv_pw_11", momentum=0.5).hash() == base.hash()
    assert from_file.hash() != before


# --- clear errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "expected"), [
    ({"finetune_from": "conv_pw_99"}, "conv_dw_1 … conv_dw_13"),
    ({"alpha": 0.3}, "0.25, 0.5, 0.75 or 1.0"),
    ({"input_size": 16}, "32 or more"),
    ({"optimizer": "rmsprop"}, "adam or sgd"),
    ({"weights": "/nonexistent/weights.h5"}, "does not exist"),
])
def test_impossible_configs_are_build_errors_naming_what_is_expected(tmp_path, changes, expected):
    """An unknown layer, a width or size Keras lacks, a missing file: a BuildError saying why."""
    with pytest.raises(BuildError, match=expected):
        build(ModelConfig(**{**SMALL, **changes}), cache_dir=tmp_path)


def test_weights_file_of_another_alpha_is_refused_naming_it(tmp_path):
    """A file for alpha 0.5 given to an alpha-0.25 build names both shapes and the file's alpha."""
    path = write_h5(tmp_path / "alpha05.h5", 0.5)

    with pytest.raises(BuildError) as err:
        build(ModelConfig(**{**SMALL, "weights": str(path)}), cache_dir=tmp_path)

    assert "layer conv1" in err.value.message and "(3, 3, 3, 8)" in err.value.message
    assert "alpha 0.5" in err.value.message


def test_not_an_hdf5_file_is_refused(tmp_path):
    """A file that is not HDF5 is a BuildError, not a traceback from h5py."""
    path = tmp_path / "weights.h5"
    path.write_bytes(b"not hdf5 at all")

    with pytest.raises(BuildError, match="not an HDF5 file"):
        build(ModelConfig(**{**SMALL, "weights": str(path)}), cache_dir=tmp_path)


def test_imagenet_download_failure_says_how_to_pass_a_file(tmp_path, monkeypatch):
    """Offline, `imagenet` fails with a hint to pass a weights file (real failed download)."""
    import models.weights

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # no cached copy
    monkeypatch.setattr(models.weights, "KERAS_BASE_URL", "http://127.0.0.1:9/")  # refused

    with pytest.raises(BuildError) as err:
        models.weights.fetch_imagenet(0.25, 128)

    assert "mobilenet_2_5_128_tf_no_top.h5" in err.value.message
    assert "--set model.weights=PATH" in (err.value.hint or "")


def test_shared_imagenet_file_loads_by_name_like_keras(shared_weights):
    """The real alpha-0.25 ImageNet file gives the same features as Keras's own loader."""
    import keras

    from models import keras_net

    config = ModelConfig(alpha=0.25, input_size=128, weights=str(shared_weights))
    ours = keras_net.build_frozen_keras(config)
    ref = keras.applications.MobileNet(input_shape=(128, 128, 3), alpha=0.25,
                                       include_top=False, weights=str(shared_weights),
                                       pooling="avg")
    imgs = np.random.default_rng(0).uniform(0, 255, (2, 128, 128, 3)).astype(np.float32)

    np.testing.assert_allclose(ours.predict(imgs, verbose=0),
                               ref.predict(imgs / 127.5 - 1.0, verbose=0), atol=1e-5)


def test_autodiff_training_graph_is_refused_by_the_builtin_only_conversion():
    """TensorFlow's own depthwise gradient needs Flex: the builtin-only conversion refuses it."""
    import tensorflow as tf

    from models.convert import convert_train

    class Autodiff(tf.Module):
        def __init__(self):
            self.k = tf.Variable(tf.ones([3, 3, 2, 1]))

    module = Autodiff()

    @tf.function(input_signature=[tf.TensorSpec([1, 6, 6, 2], tf.float32, name="x")])
    def train(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.nn.depthwise_conv2d(x, module.k, [1, 1, 1, 1], "SAME"))
        module.k.assign_sub(tape.gradient(loss, module.k))
        return {"loss": loss}

    with pytest.raises(BuildError, match="builtin ops: needs DepthwiseConv2dNativeBackprop"):
        convert_train(module, {"train": train.get_concrete_function()})


# --- the spec → config mapping and the CLI ---------------------------------------------------


def test_config_for_maps_the_paper_spec():
    """method2 of the paper's spec is layer B (conv_pw_11), 2 classes, batch 4, Adam."""
    from orchestrator.model_config import config_for
    from orchestrator.spec import load_spec

    spec = load_spec(REPO / "experiments" / "paper_table1.yaml")

    m1, m2 = config_for(spec, "method1"), config_for(spec, "method2")

    assert m1.finetune_from is None and m2.finetune_from == "conv_pw_11"
    assert (m2.alpha, m2.input_size, m2.num_classes, m2.batch_size, m2.optimizer,
            m2.dropout) == (1.0, 160, 2, 4, "adam", 0.2)


def test_cli_builds_both_variants_builtin_only_then_hits_the_cache():
    """`orch model build` on the paper spec (small) reports builtin-only, no EXP in the training
    graph (tflite-runtime 2.20's aarch64 XNNPACK gets it wrong); the rerun hits."""
    args = ["model", "build", "experiments/paper_table1.yaml", "--set", "model.weights=none",
            "--set", "model.alpha=0.25", "--set", "model.input_size=96", "--format", "json"]

    first = orch(*args)
    second = orch(*args)

    assert first.returncode == 0, first.stderr
    rows = json.loads(first.stdout)
    assert [r["variant"] for r in rows] == ["method1", "method2"]
    for r in rows:
        assert not r["cache_hit"]
        for name in ("frozen.tflite", "train.tflite"):
            art = r["artifacts"][name]
            assert art["builtin_only"] and Path(art["path"]).is_file() and art["ops"]
        assert "EXP" not in r["artifacts"]["train.tflite"]["ops"]
    assert rows[1]["artifacts"]["train.tflite"]["trainable_params"] > 0
    assert [r["cache_hit"] for r in json.loads(second.stdout)] == [True, True]


def test_cli_out_folder_and_build_error_exit_code(tmp_path):
    """--out writes the files there; a missing weights file is one line and exit code 4."""
    ok = orch("model", "build", "experiments/paper_table1.yaml", "--variant", "method1",
              "--out", str(tmp_path / "out"), "--set", "model.weights=none",
              "--set", "model.alpha=0.25", "--set", "model.input_size=96")
    bad = orch("model", "build", "experiments/paper_table1.yaml",
               "--set", "model.weights=/nonexistent/w.h5")

    assert ok.returncode == 0, ok.stderr
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {
        "frozen.tflite", "train.tflite", "meta.json"}
    assert "method1" in ok.stdout and "builtin" in ok.stdout
    assert bad.returncode == 4 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and "does not exist" in bad.stderr
