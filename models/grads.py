"""Forward and hand-written backward passes of each layer kind of the training graph.

TensorFlow's own gradients of these layers need Flex ops (Conv2DBackpropFilter,
DepthwiseConv2dNativeBackprop*, Relu6Grad, SparseSoftmaxCrossEntropyWithLogits), which no
phone-side Python interpreter links. Every function here uses only ops that convert to
TFLite builtins, with static shapes (a dynamic batch brings BroadcastGradientArgs).
Layouts: activations NHWC; first-layer kernel [3, 3, 3, C] and depthwise kernel [3, 3, C, 1]
(as Keras); pointwise kernel
[1, Cout, Cin] (a 1×1 convolution is a matmul over the B·H·W positions, stored the way
LiteRT's BATCH_MATMUL packs it fastest and without a reshape of the weights); dense [D, K].
Choices made for speed were measured with `perf` on the alpha-1.0 training step.
"""

from __future__ import annotations

import tensorflow as tf

Tensor = tf.Tensor


# --- pointwise 1×1 convolution (BatchNorm folded into kernel and bias) ---------------------


def matmul(a: Tensor, b: Tensor, *, adj_a: bool = False, adj_b: bool = False) -> Tensor:
    """a @ b (either side transposed) as a rank-3 BATCH_MATMUL, for the small dense head.

    The converter turns a rank-2 matmul whose weights are a variable into FULLY_CONNECTED,
    and LiteRT's FULLY_CONNECTED with non-constant weights is 3–4× slower than
    BATCH_MATMUL on the same shapes (measured, x86-64, 1024×1024 weights).
    """
    m = a.shape[1] if adj_a else a.shape[0]
    n = b.shape[0] if adj_b else b.shape[1]
    y = _bmm(tf.reshape(a, [1, *a.shape]), tf.reshape(b, [1, *b.shape]), adj_a, adj_b)
    return tf.reshape(y, [m, n])


def _bmm(a: Tensor, b: Tensor, adj_a: bool = False, adj_b: bool = False) -> Tensor:
    return tf.raw_ops.BatchMatMulV2(x=a, y=b, adj_x=adj_a, adj_y=adj_b)


def pointwise_forward(x: Tensor, kernel: Tensor, bias: Tensor) -> Tensor:
    """y = x · Wᵀ + b per position; kernel [1, Cout, Cin]."""
    b, h, w, cin = x.shape
    y = _bmm(tf.reshape(x, [1, b * h * w, cin]), kernel, adj_b=True) + bias
    return tf.reshape(y, [b, h, w, kernel.shape[1]])


def pointwise_backward(
    dy: Tensor, x: Tensor, kernel: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Return (dx, dkernel [1, Cout, Cin], dbias)."""
    b, h, w, cin = x.shape
    cout = kernel.shape[1]
    x3 = tf.reshape(x, [1, b * h * w, cin])
    dy3 = tf.reshape(dy, [1, b * h * w, cout])
    dkernel = _bmm(dy3, x3, adj_a=True)
    dbias = tf.reduce_sum(dy3, axis=[0, 1])
    dx = tf.reshape(_bmm(dy3, kernel), [b, h, w, cin])
    return dx, dkernel, dbias


# --- depthwise 3×3 convolution ------------------------------------------------------------
# Stride 1 is Keras's "same" (one zero row/column on each side). Stride 2 is Keras's
# ZeroPadding2D(((0, 1), (0, 1))) followed by a "valid" convolution.


def _padded(x: Tensor, stride: int) -> Tensor:
    if stride == 1:
        return tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    return tf.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]])


def _taps(xp: Tensor, kernel: Tensor, stride: int, ho: int, wo: int,
          flip: bool = False) -> Tensor:
    """A "valid" 3×3 depthwise convolution of `xp` as nine shifted windows times kernel taps.

    Not DEPTHWISE_CONV_2D: the XNNPACK of tflite-runtime 2.20 takes that op only with a
    constant filter, and TFLite's own kernel runs a trained filter ~10× slower than LiteRT;
    slices, multiplies and adds it takes. `flip`: the spatially flipped kernel. Stride 2
    splits rows, then columns, into (position, parity) pairs, so every window is a plain
    slice of at most 4 dimensions (TFLite's SLICE takes 5 at most).
    """
    n, hp, wp, c = xp.shape
    taps = tf.reshape(kernel, [9, c])
    if stride == 1:
        rows = [xp, xp, xp]
    else:
        xp = tf.pad(xp, [[0, 0], [0, 2 * ho + 2 - hp], [0, 2 * wo + 2 - wp], [0, 0]])
        pairs = tf.reshape(xp, [n, ho + 1, 2, (2 * wo + 2) * c])
        rows = [tf.reshape(tf.slice(pairs, [0, i // 2, i % 2, 0], [n, ho, 1, (2 * wo + 2) * c]),
                           [n * ho, wo + 1, 2, c]) for i in range(3)]
    acc = None
    for t in range(9):
        i, j = divmod(t, 3)
        if stride == 1:
            window = tf.slice(rows[i], [0, i, j, 0], [n, ho, wo, c])
        else:
            window = tf.reshape(tf.slice(rows[i], [0, j // 2, j % 2, 0], [n * ho, wo, 1, c]),
                                [n, ho, wo, c])
        tap = tf.reshape(tf.slice(taps, [8 - t if flip else t, 0], [1, c]), [c])
        acc = window * tap if acc is None else acc + window * tap
    return acc


def depthwise_forward(x: Tensor, kernel: Tensor, bias: Tensor, stride: int) -> Tensor:
    _, h, w, _ = x.shape
    ho, wo = (h, w) if stride == 1 else (h // 2, w // 2)
    return _taps(_padded(x, stride), kernel, stride, ho, wo) + bias


def _dilate(t: Tensor, axis: int) -> Tensor:
    """Insert one zero between neighbours along spatial `axis` (1 or 2): n → 2n − 1.

    A concatenation of 4-D views, not a stack: XNNPACK before LiteRT has no PACK.
    """
    n, h, w, c = t.shape.as_list()
    if axis == 1:
        view, out = [n, h, 1, w * c], [n, 2 * h, w, c]
    else:
        view, out = [n * h, w, 1, c], [n, h, 2 * w, c]
    t = tf.reshape(t, view)
    t = tf.reshape(tf.concat([t, tf.zeros_like(t)], axis=2), out)
    size = list(out)
    size[axis] -= 1
    return tf.slice(t, [0, 0, 0, 0], size)


def depthwise_backward(
    dy: Tensor, x: Tensor, kernel: Tensor, stride: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Return (dx, dkernel, dbias).

    dx: a depthwise convolution of the zero-dilated, padded output gradient with the
    spatially flipped kernel. dkernel: for each of the nine taps, the sum over batch and
    positions of the shifted input window times the output gradient. For stride 2 the
    windows are contiguous slices against the zero-dilated gradient (the same sum), since
    LiteRT runs a strided slice with its slow reference kernel.
    """
    _, h, w, _ = x.shape
    _, ho, wo, _ = dy.shape
    if stride == 1:
        g = dy
        g_padded = tf.pad(dy, [[0, 0], [1, 1], [1, 1], [0, 0]])
    else:
        g = _dilate(_dilate(dy, 1), 2)
        # Rows of the padded input that no window reached get no gradient; the padding
        # row/column Keras added (bottom/right) is cut off by sizing the result to h × w.
        g_padded = tf.pad(g, [[0, 0], [2, h - 2 * ho + 1], [2, w - 2 * wo + 1], [0, 0]])
    dx = _taps(g_padded, kernel, 1, h, w, flip=True)

    xp = _padded(x, stride)
    n, gh, gw, c = g.shape
    taps = [tf.reduce_sum(tf.slice(xp, [0, i, j, 0], [n, gh, gw, c]) * g, axis=[0, 1, 2])
            for i in range(3) for j in range(3)]
    dkernel = tf.reshape(tf.stack(taps, axis=0), kernel.shape)
    dbias = tf.reduce_sum(dy, axis=[0, 1, 2])
    return dx, dkernel, dbias


# --- the first layer: a full 3×3 stride-2 convolution of the image (Keras conv1) ----------
# Keras pads it "same": for an even size one zero row/column at the bottom/right only.
# Its input is the image, so no input gradient is needed: the filter gradient is the nine
# shifted strided windows of the input (as one [·, 27] patch matrix) times the output gradient.


def _same_pads(size: int) -> tuple[int, int]:
    out = -(-size // 2)
    total = max(2 * (out - 1) + 3 - size, 0)
    return total // 2, total - total // 2


def conv_patches(x: Tensor) -> Tensor:
    """[n, h, w, c] → [1, n·ho·wo, 9·c]: the 3×3 stride-2 windows, tap-major (Keras kernel order).

    Stride 2 splits rows, then columns, into (position, parity) pairs, so every window is a
    plain slice of at most 4 dimensions (as in _taps), joined by one CONCATENATION.
    """
    n, h, w, c = x.shape
    ho, wo = -(-h // 2), -(-w // 2)
    (t, _), (left, _) = _same_pads(h), _same_pads(w)
    wp = 2 * wo + 2
    xp = tf.pad(x, [[0, 0], [t, 2 * ho + 2 - h - t], [left, wp - w - left], [0, 0]])
    pairs = tf.reshape(xp, [n, ho + 1, 2, wp * c])
    windows = []
    for i in range(3):
        row = tf.reshape(tf.slice(pairs, [0, i // 2, i % 2, 0], [n, ho, 1, wp * c]),
                         [n * ho, wo + 1, 2, c])
        windows += [tf.slice(row, [0, j // 2, j % 2, 0], [n * ho, wo, 1, c]) for j in range(3)]
    return tf.reshape(tf.concat(windows, axis=3), [1, n * ho * wo, 9 * c])


def conv_forward(patches: Tensor, kernel: Tensor, bias: Tensor,
                 out_shape: list[int]) -> Tensor:
    """y = patches · W + b; kernel [3, 3, Cin, Cout] (as Keras), out_shape [n, ho, wo, Cout]."""
    k = tf.reshape(kernel, [1, -1, kernel.shape[3]])
    return tf.reshape(_bmm(patches, k) + bias, out_shape)


def conv_backward(dy: Tensor, patches: Tensor, kernel: Tensor) -> tuple[Tensor, Tensor]:
    """Return (dkernel [3, 3, Cin, Cout], dbias); the image needs no gradient."""
    dy3 = tf.reshape(dy, [1, -1, dy.shape[3]])
    dkernel = tf.reshape(_bmm(patches, dy3, adj_a=True), kernel.shape)
    return dkernel, tf.reduce_sum(dy3, axis=[0, 1])


def conv_out_shape(x_shape: tf.TensorShape, cout: int) -> list[int]:
    n, h, w, _ = x_shape
    return [n, -(-h // 2), -(-w // 2), cout]


# --- ReLU6 ----------------------------------------------------------------------------------


def relu6_forward(z: Tensor) -> Tensor:
    return tf.nn.relu6(z)


def relu6_backward(dy: Tensor, z: Tensor) -> Tensor:
    """The gradient passes where 0 < z < 6 (z is the pre-activation).

    With r = relu6(z), 0 < z < 6 exactly when r·(6 − r) > 0, so the mask is
    min(ceil(r·(6 − r)), 1): ops the XNNPACK of every runtime takes (comparisons and casts
    split its graph), where LiteRT's LOGICAL_AND alone once cost 4 % of a step.
    """
    r = tf.nn.relu6(z)
    return dy * tf.minimum(tf.math.ceil(r * (6.0 - r)), 1.0)


# --- global average pooling -----------------------------------------------------------------


def gap_forward(x: Tensor) -> Tensor:
    return tf.reduce_mean(x, axis=[1, 2])


def gap_backward(dy: Tensor, x_shape: tf.TensorShape) -> Tensor:
    _, h, w, _ = x_shape
    spread = tf.constant(1.0 / (h * w), shape=[1, h, w, 1], dtype=dy.dtype)
    return tf.reshape(dy, [dy.shape[0], 1, 1, dy.shape[1]]) * spread


# --- dense + weighted softmax cross-entropy -------------------------------------------------


def dense_forward(x: Tensor, kernel: Tensor, bias: Tensor) -> Tensor:
    return matmul(x, kernel) + bias


def dense_backward(dy: Tensor, x: Tensor, kernel: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Return (dx, dkernel, dbias)."""
    return (matmul(dy, kernel, adj_b=True), matmul(x, dy, adj_a=True),
            tf.reduce_sum(dy, axis=0))


LOSS_EPS = 1e-7


def weighted_ce(
    logits: Tensor, labels: Tensor, weights: Tensor
) -> tuple[Tensor, Tensor]:
    """Return (loss, dlogits) for loss = Σ w·ce / max(Σ w, eps).

    Padding rows of a short batch carry weight 0 and so add nothing to loss or gradient.
    """
    num_classes = logits.shape[1]
    onehot = tf.one_hot(labels, num_classes, dtype=logits.dtype)
    log_probs = tf.nn.log_softmax(logits)
    ce = -tf.reduce_sum(onehot * log_probs, axis=1)
    denom = tf.maximum(tf.reduce_sum(weights), LOSS_EPS)
    loss = tf.reduce_sum(weights * ce) / denom
    # SOFTMAX, not EXP(log_probs): the aarch64 XNNPACK EXP of tflite-runtime 2.20.0.dev20250409
    # returns 2^round(x·log2 e) (its rounding step compiled away), see README.
    dlogits = (tf.nn.softmax(logits) - onehot) * tf.reshape(weights / denom,
                                                            [weights.shape[0], 1])
    return loss, dlogits
