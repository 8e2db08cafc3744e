"""Names of MobileNet V1 split points, and the paper's aliases for them (no TensorFlow here).

`finetune_from: L` means layer L and everything above it train; the frozen trunk ends just
before L. The paper names two split points in MobileNet V1:
  - "A": `conv_pw_7`, the first 1×1×512×512 pointwise convolution of the 5× block;
  - "B": `conv_pw_11`, the last 1×1×512×512 pointwise convolution of the 5× block
    (the paper's method 2 fine-tunes from B to the output).
"""

from __future__ import annotations

NUM_BLOCKS = 13

LAYER_ALIASES: dict[str, str] = {"A": "conv_pw_7", "B": "conv_pw_11"}

# Split points in network order: every depthwise and pointwise convolution of blocks 1–13.
SPLIT_LAYERS: tuple[str, ...] = tuple(
    name for i in range(1, NUM_BLOCKS + 1) for name in (f"conv_dw_{i}", f"conv_pw_{i}")
)

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
        f"unknown layer {name!r}; expected A, B, null (head only), or a MobileNet V1 layer "
        f"conv_dw_1 … conv_dw_13 / conv_pw_1 … conv_pw_13"
    )
