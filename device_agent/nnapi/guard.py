"""The correctness guard: NNAPI's features must match LiteRT CPU's before NNAPI is trusted.

Rule: max |nnapi − cpu| ≤ atol + rtol · max |cpu| over the probe batch. The bound scales
with the largest reference magnitude rather than each element's, because the features are
ReLU6 outputs (0…6) or their averages: many are exactly 0, where a per-element relative
tolerance would demand bit equality. fp32: atol = rtol = 1e-4 (bound ≤ 7e-4 for features up
to 6); fp16 relaxation: atol = rtol = 1e-2 (half precision keeps ~3 significant digits).
"""

from __future__ import annotations

import numpy as np

FP32_TOLERANCE = (1e-4, 1e-4)  # (atol, rtol)
FP16_TOLERANCE = (1e-2, 1e-2)


def compare(got: np.ndarray, want: np.ndarray, *, fp16: bool) -> dict:
    """{ok, max_abs_diff, bound, atol, rtol}; not ok on a shape mismatch or a non-finite value."""
    atol, rtol = FP16_TOLERANCE if fp16 else FP32_TOLERANCE
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    result = {"ok": False, "max_abs_diff": None, "bound": None, "atol": atol, "rtol": rtol}
    if got.shape != want.shape:
        result["shape"] = {"nnapi": list(got.shape), "cpu": list(want.shape)}
        return result
    if got.size == 0:
        return result
    bound = atol + rtol * float(np.max(np.abs(want)))
    if not np.all(np.isfinite(got)):
        result.update(bound=bound, finite=False)  # no "inf" in the JSON records
        return result
    diff = float(np.max(np.abs(got - want)))
    result.update(ok=diff <= bound, max_abs_diff=diff, bound=bound)
    return result
