"""TensorFlow → TFLite with builtin ops only (no Flex, no custom ops)."""

from __future__ import annotations

import re
import tempfile
from typing import Any

import tensorflow as tf

from models.errors import BuildError


def _convert(converter: tf.lite.TFLiteConverter, what: str) -> bytes:
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        return converter.convert()
    except Exception as e:  # the converter raises ConverterError and plain Exceptions alike
        text = str(e)
        missing = sorted(set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex", text)))
        why = (f"needs {', '.join(missing)}" if missing
               else (text.strip().splitlines() or [type(e).__name__])[0])
        raise BuildError(f"{what} does not convert to TFLite builtin ops: {why}.") from None


def convert_frozen(trunk: Any) -> bytes:
    """The Keras frozen trunk → one `serving_default` signature: image → features.

    The weights become constants first: converted with its Keras variables captured, the
    trunk kept them as resource variables and BatchNorm stayed unfolded.
    """
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    spec = tf.TensorSpec([1, *trunk.input.shape[1:]], tf.float32, name="image")

    @tf.function(input_signature=[spec])
    def trunk_fn(image):
        return trunk(image, training=False)

    frozen = convert_variables_to_constants_v2(trunk_fn.get_concrete_function())

    @tf.function(input_signature=[spec])
    def serve(image):
        out = frozen(image)
        return {"features": out[0] if isinstance(out, (list, tuple)) else out}

    with tempfile.TemporaryDirectory(prefix="orch-frozen-") as tmp:
        tf.saved_model.save(tf.Module(), tmp, signatures={"serving_default": serve})
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        return _convert(converter, "the frozen trunk")


def convert_train(module: tf.Module, signatures: dict[str, Any]) -> bytes:
    """A module with several signatures (state passed in and out) → one .tflite."""
    with tempfile.TemporaryDirectory(prefix="orch-train-") as tmp:
        tf.saved_model.save(module, tmp, signatures=signatures)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            tmp, signature_keys=list(signatures))
        return _convert(converter, "the training model")
