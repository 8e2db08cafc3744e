"""The hand-written gradients of each layer kind equal TensorFlow's autodiff (1e-5, float32)."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from models import grads  # noqa: E402

TOL = {"rtol": 1e-5, "atol": 1e-5}
rng = np.random.default_rng(7)


def rand(*shape: int, scale: float = 1.0) -> tf.Tensor:
    return tf.constant(rng.normal(0.0, scale, shape).astype(np.float32))


def autodiff(fn, inputs: list[tf.Tensor], dy: tf.Tensor) -> list[np.ndarray]:
    """TensorFlow's own gradients of fn(*inputs) for an upstream gradient dy."""
    with tf.GradientTape() as tape:
        for t in inputs:
            tape.watch(t)
        y = fn(*inputs)
    return [g.numpy() for g in tape.gradient(y, inputs, output_gradients=dy)]


def test_pointwise_matches_conv2d_autodiff():
    """A 1×1 convolution as a matmul: dx, dkernel, dbias equal Conv2D's gradients."""
    x, k, b = rand(2, 5, 5, 6), rand(1, 4, 6), rand(4)  # kernel [1, Cout, Cin]
    dy = rand(2, 5, 5, 4)

    def conv(x, k, b):
        return tf.nn.conv2d(x, tf.reshape(tf.transpose(k[0]), [1, 1, 6, 4]), 1, "VALID") + b

    ours = grads.pointwise_backward(dy, x, k)
    ref = autodiff(conv, [x, k, b], dy)

    np.testing.assert_allclose(grads.pointwise_forward(x, k, b), conv(x, k, b), **TOL)
    for got, want in zip(ours, ref, strict=True):
        np.testing.assert_allclose(got.numpy(), want, **TOL)


@pytest.mark.parametrize("size", [8, 7])
def test_depthwise_stride1_matches_same_padding_autodiff(size):
    """Stride 1 ('same'): the flipped-kernel input gradient and nine-tap filter gradient."""
    x, k, b = rand(2, size, size, 5), rand(3, 3, 5, 1), rand(5)
    dy = rand(2, size, size, 5)

    ours = grads.depthwise_backward(dy, x, k, 1)
    ref = autodiff(lambda x, k, b: tf.nn.depthwise_conv2d(x, k, [1, 1, 1, 1], "SAME") + b,
                   [x, k, b], dy)

    np.testing.assert_allclose(grads.depthwise_forward(x, k, b, 1),
                               tf.nn.depthwise_conv2d(x, k, [1, 1, 1, 1], "SAME") + b, **TOL)
    for got, want in zip(ours, ref, strict=True):
        np.testing.assert_allclose(got.numpy(), want, **TOL)


@pytest.mark.parametrize("size", [8, 7, 6])
def test_depthwise_stride2_matches_keras_padding_autodiff(size):
    """Stride 2 (Keras: ZeroPadding2D((0,1),(0,1)) + 'valid'): dilated gradient, even or odd."""
    x, k, b = rand(2, size, size, 3), rand(3, 3, 3, 1), rand(3)

    def keras_way(x, k, b):
        padded = tf.keras.layers.ZeroPadding2D(((0, 1), (0, 1)))(x)
        return tf.nn.depthwise_conv2d(padded, k, [1, 2, 2, 1], "VALID") + b

    out_shape = keras_way(x, k, b).shape
    dy = rand(*out_shape)

    ours = grads.depthwise_backward(dy, x, k, 2)
    ref = autodiff(keras_way, [x, k, b], dy)

    assert grads.depthwise_forward(x, k, b, 2).shape == out_shape
    for got, want in zip(ours, ref, strict=True):
        np.testing.assert_allclose(got.numpy(), want, **TOL)



@pytest.mark.parametrize("size", [8, 7, 6])
def test_first_conv_stride2_matches_keras_same_padding_autodiff(size):
    """conv1 (full 3×3, stride 2, Keras 'same'): forward, dkernel and dbias equal Conv2D's."""
    x, k, b = rand(2, size, size, 3), rand(3, 3, 3, 4), rand(4)

    def keras_way(x, k, b):
        return tf.nn.conv2d(x, k, 2, "SAME") + b

    out_shape = keras_way(x, k, b).shape
    dy = rand(*out_shape)
    patches = grads.conv_patches(x)

    assert grads.conv_out_shape(x.shape, 4) == list(out_shape)
    np.testing.assert_allclose(grads.conv_forward(patches, k, b, list(out_shape)),
                               keras_way(x, k, b), **TOL)
    ours = grads.conv_backward(dy, patches, k)
    ref = autodiff(keras_way, [x, k, b], dy)[1:]  # the image needs no gradient
    for got, want in zip(ours, ref, strict=True):
        np.testing.assert_allclose(got.numpy(), want, **TOL)

def test_relu6_matches_autodiff():
    """ReLU6 passes the gradient only where 0 < z < 6."""
    z = rand(3, 4, 4, 8, scale=5.0)
    dy = rand(3, 4, 4, 8)

    (want,) = autodiff(tf.nn.relu6, [z], dy)

    np.testing.assert_allclose(grads.relu6_backward(dy, z).numpy(), want, **TOL)


def test_global_average_pooling_matches_autodiff():
    """GAP spreads the pooled gradient evenly over h × w."""
    x = rand(2, 3, 5, 6)
    dy = rand(2, 6)

    (want,) = autodiff(lambda x: tf.reduce_mean(x, axis=[1, 2]), [x], dy)

    np.testing.assert_allclose(grads.gap_backward(dy, x.shape).numpy(), want, **TOL)


def test_dense_matches_autodiff():
    """Dense: dx, dkernel, dbias equal the autodiff of x @ W + b."""
    x, k, b = rand(4, 10), rand(10, 3), rand(3)
    dy = rand(4, 3)

    ours = grads.dense_backward(dy, x, k)
    ref = autodiff(lambda x, k, b: tf.matmul(x, k) + b, [x, k, b], dy)

    for got, want in zip(ours, ref, strict=True):
        np.testing.assert_allclose(got.numpy(), want, **TOL)


def test_weighted_cross_entropy_matches_autodiff_with_padding_rows():
    """Σ w·ce / Σ w and softmax − one-hot; weight-0 padding rows get no gradient."""
    logits = rand(5, 3, scale=3.0)
    labels = tf.constant([0, 2, 1, 1, 0], tf.int32)
    weights = tf.constant([1.0, 1.0, 0.5, 0.0, 0.0])

    def reference(logits):
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        return tf.reduce_sum(weights * ce) / tf.reduce_sum(weights)

    (want,) = autodiff(reference, [logits], tf.constant(1.0))
    loss, dlogits = grads.weighted_ce(logits, labels, weights)

    np.testing.assert_allclose(loss.numpy(), reference(logits).numpy(), **TOL)
    np.testing.assert_allclose(dlogits.numpy(), want, **TOL)
    assert not dlogits.numpy()[3:].any()
