"""Names of MobileNet V1 split points, and the paper's aliases for them (no TensorFlow here).

`finetune_from: L` means layer L and everything above it train; the frozen trunk ends just
before L. The paper's MobileNet table (Fig. 2) labels two of its rows:
  - "A": the first row, `conv1` (Conv / s2, 3×3×3×32 at alpha 1, on the 224×224×3 input):
    the bottom of the network. Fine-tuning from A trains every layer and freezes none; the
    frozen trunk is then the input scaling only, no delegate has anything to run, and the
    feature cache holds the scaled images themselves (S×S×3 floats per image);
  - "B": `conv_pw_11`, the 1×1×512×512 pointwise row of the 5× block, read as its last
    repetition (the paper's method 2 fine-tunes from B to the output).
"""

from __future__ import annotations

NUM_BLOCKS = 13

ALPHAS = (0.25, 0.5, 0.75, 1.0)  # the width multipliers MobileNet V1 comes in
ALPHA_CHOICES = "0.25, 0.5, 0.75 or 1.0"

FIRST_LAYER = "conv1"  # the full 3×3 stride-2 convolution on the image

LAYER_ALIASES: dict[str, str] = {"A": FIRST_LAYER, "B": "conv_pw_11"}

# Split points in network order: the first convolution, then every depthwise and pointwise
# convolution of blocks 1–13.
SPLIT_LAYERS: tuple[str, ...] = (FIRST_LAYER, *(
    name for i in range(1, NUM_BLOCKS + 1) for name in (f"conv_dw_{i}", f"conv_pw_{i}")
))

LAYER_CHOICES = "conv1, conv_dw_1 … conv_dw_13 / conv_pw_1 … conv_pw_13"

HEAD_ONLY_WORDS = {None, "none", "null", "head", ""}


def resolve_split(name: str | None) -> str | None:
    """Return the Keras layer name for a split (alias or name), None for head-only.

    Raises ValueError naming what is accepted when the name is unknown.
    """
    if isinstance(name, str):
        name = name.strip()
    if name in HEAD_ONLY_WORDS or (isinstance(name, str) and name.lower() in HEAD_ONLY_WORDS):
        return None
    assert isinstance(name, str)
    if name in LAYER_ALIASES:
        return LAYER_ALIASES[name]
    if name in SPLIT_LAYERS:
        return name
    raise ValueError(
        f"unknown layer {name!r}; expected A (conv1), B (conv_pw_11), null (head only), or a "
        f"MobileNet V1 layer {LAYER_CHOICES}"
    )
