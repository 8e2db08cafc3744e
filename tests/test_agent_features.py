"""The agent's preprocessing and frozen-trunk features equal Keras's on the host.

The agent decodes with PIL only (RGB, whole-image bilinear resize to S×S, 0…255); the host
reference is `tf.keras.utils.load_img(path, target_size=(S, S), interpolation="bilinear")`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from device_agent.data import decode_image
from device_agent.trunk import CpuTrunk

tf = pytest.importorskip("tensorflow")
keras = tf.keras
SIZE = 96


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    """Photos in the shapes a phone holds: large JPEG, RGBA/palette/16-bit PNG, grey, exact."""
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    rgb = (rng.random((210, 330, 3)) * 255).astype(np.uint8)
    rgb[40:160, 60:200] = (200, 40, 90)  # structure, so resizing matters
    out = []

    def save(img: Image.Image, name: str, **kw) -> None:
        img.save(d / name, **kw)
        out.append(d / name)

    save(Image.fromarray(rgb), "wide.jpg", quality=92)
    save(Image.fromarray(rgb).convert("RGBA"), "alpha.png")
    save(Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE), "palette.png")
    save(Image.fromarray(rgb).convert("L"), "grey.jpg")
    save(Image.fromarray((rng.random((50, 70)) * 65535).astype(np.uint16)), "deep.png")
    save(Image.fromarray(rgb[:SIZE, :SIZE]), "exact.png")
    return out


def _keras_pixels(path: Path) -> np.ndarray:
    img = keras.utils.load_img(str(path), target_size=(SIZE, SIZE), interpolation="bilinear")
    return keras.utils.img_to_array(img, dtype="float32")


def test_decoded_pixels_equal_keras_load_img(images):
    """For every image mode, the agent's pixels are exactly Keras's load_img pixels."""
    for path in images:
        ours = decode_image(str(path), SIZE)
        assert ours is not None and ours.shape == (SIZE, SIZE, 3) and ours.dtype == np.float32
        np.testing.assert_array_equal(ours, _keras_pixels(path), err_msg=path.name)


def _close(ours: np.ndarray, theirs: np.ndarray) -> None:
    scale = float(np.max(np.abs(theirs)))
    assert scale > 1e-3  # features that carry signal, so the comparison means something
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4 * scale)


def test_trunk_features_equal_keras_features(images, tmp_path):
    """A Keras trunk converted to TFLite gives, through the agent, Keras's own features."""
    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNet(input_shape=(SIZE, SIZE, 3), alpha=0.25,
                                        include_top=False, weights=None)
    cut = keras.Model(base.input, base.get_layer("conv_pw_1_relu").output)
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    model = keras.Model(inp, cut(keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inp)))
    path = tmp_path / "frozen.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())

    trunk = CpuTrunk(str(path), threads=1)
    for img in images:
        ours = trunk(decode_image(str(img), SIZE))
        theirs = model(_keras_pixels(img)[None], training=False).numpy()[0]
        _close(ours, theirs)


def test_built_trunk_matches_keras_mobilenet_with_reference_weights(images, tmp_path,
                                                                     shared_weights):
    """models.build's frozen.tflite (split B) equals Keras MobileNet + preprocess_input."""
    build = pytest.importorskip("models.build")
    from models.config import ModelConfig
    res = build.build(ModelConfig(alpha=0.25, input_size=SIZE, weights=str(shared_weights),
                                  finetune_from="conv_pw_11", batch_size=4),
                      cache_dir=tmp_path)
    base = keras.applications.MobileNet(input_shape=(SIZE, SIZE, 3), alpha=0.25,
                                        include_top=False, weights=str(shared_weights))
    ref = keras.Model(base.input, base.get_layer("conv_dw_11_relu").output)
    trunk = CpuTrunk(str(res.frozen_path), threads=1)
    for img in images:
        x = keras.applications.mobilenet.preprocess_input(_keras_pixels(img)[None])
        _close(trunk(decode_image(str(img), SIZE)), ref(x, training=False).numpy()[0])


@pytest.mark.parametrize("requested", ["xnnpack", "gpu", "cpu"])
def test_scaling_only_trunk_claims_no_delegate(images, tmp_path, requested):
    """Nothing frozen (from conv1): whatever is asked for, the scaling runs on plain CPU
    kernels and the record says cpu, with the reason, and that no delegate took a node."""
    from device_agent.features import nothing_frozen
    from device_agent.trunk import open_trunk

    inp = keras.Input((SIZE, SIZE, 3), name="image")
    model = keras.Model(inp, keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inp))
    path = tmp_path / "frozen.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    meta = {"input_size": SIZE, "feature_shape": [SIZE, SIZE, 3]}
    assert nothing_frozen(meta) and not nothing_frozen({**meta, "feature_shape": [48, 48, 8]})
    job = {"delegate": {"requested": requested}, "threads": 1,
           "models": {"frozen": str(path), "nnapi_plan": None}}

    trunk = open_trunk(job, probe_images=list, cache_dir=str(tmp_path), empty=True)
    pixels = decode_image(str(images[0]), SIZE)
    np.testing.assert_allclose(trunk(pixels), pixels / 127.5 - 1.0, atol=1e-6)
    record = trunk.close()

    assert record["requested"] == requested and record["used"] == "cpu"
    assert record["reason"]["code"] == "trunk_empty"
    assert trunk.delegation["delegate"] == "none" and trunk.delegation["delegated_nodes"] == 0
