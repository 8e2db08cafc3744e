"""Read a .tflite flatbuffer: op kinds, builtin-only verdict, signatures. No TensorFlow."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ai_edge_litert import schema_py_generated as schema

_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def _op_name(code: Any) -> str:
    # Codes above 127 live in BuiltinCode; older ones in DeprecatedBuiltinCode.
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == schema.BuiltinOperator.CUSTOM:
        custom = code.CustomCode()
        return f"CUSTOM:{custom.decode() if custom else '?'}"
    return _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")


def describe(path: Path) -> dict[str, Any]:
    """Size, op kinds with counts over all subgraphs, builtin verdict, signature shapes."""
    buf = Path(path).read_bytes()
    model = schema.Model.GetRootAs(buf, 0)
    names = [_op_name(model.OperatorCodes(i)) for i in range(model.OperatorCodesLength())]
    ops: Counter[str] = Counter()
    for s in range(model.SubgraphsLength()):
        sub = model.Subgraphs(s)
        for o in range(sub.OperatorsLength()):
            ops[names[sub.Operators(o).OpcodeIndex()]] += 1
    custom = sorted(n for n in ops if n.startswith("CUSTOM:"))
    return {
        "bytes": len(buf),
        "ops": dict(sorted(ops.items())),
        "builtin_only": not custom,
        "non_builtin_ops": custom,
        "signatures": _signatures(model),
    }


def _signatures(model: Any) -> dict[str, dict[str, dict[str, list[int]]]]:
    out = {}
    for i in range(model.SignatureDefsLength()):
        sig = model.SignatureDefs(i)
        sub = model.Subgraphs(sig.SubgraphIndex())

        def shapes(n: int, get: Any, sub: Any = sub) -> dict[str, list[int]]:
            maps = [get(j) for j in range(n)]
            return {m.Name().decode(): sub.Tensors(m.TensorIndex()).ShapeAsNumpy().tolist()
                    if sub.Tensors(m.TensorIndex()).ShapeLength() else [] for m in maps}

        out[sig.SignatureKey().decode()] = {
            "inputs": shapes(sig.InputsLength(), sig.Inputs),
            "outputs": shapes(sig.OutputsLength(), sig.Outputs),
        }
    return out
