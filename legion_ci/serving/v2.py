"""The Open Inference Protocol (KServe v2): request tensors to rows, predictions to output tensors.

Accepted inputs: one tensor of shape [N, F] (data flat in row-major order, or nested), or one tensor per
feature named after it, each of shape [N] or [N, 1]. `data` may be nested no deeper than its shape has
dimensions, and is flattened without recursion. The request's fields are id, parameters, inputs and
outputs; any other is refused (422). Outputs: "predict" and, when asked for in
`outputs` or by the parameter `return_probabilities`, "predict_proba" of shape [N, classes].
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from legion_ci.core.errors import preview
from legion_ci.serving.validation import InputError, Rows, Validator, json_type

if TYPE_CHECKING:
    from legion_ci.core.manifest import Feature

DATATYPES = {
    "FP64",
    "FP32",
    "FP16",
    "INT64",
    "INT32",
    "INT16",
    "INT8",
    "UINT64",
    "UINT32",
    "UINT16",
    "UINT8",
    "BOOL",
    "BYTES",
}
OUTPUTS = ("predict", "predict_proba")
REQUEST_FIELDS = ("id", "parameters", "inputs", "outputs")


def _flat(data: Any, where: str, dims: int) -> list[Any]:
    """The values of a tensor's `data`, flat or nested up to `dims` levels (its shape's length); no
    recursion, so a deeply nested body costs one 422, never the stack."""
    if not isinstance(data, list):
        raise InputError(f"{where}.data: expected an array, got {json_type(data)}")
    out = data
    for _ in range(dims - 1):
        if not out or not isinstance(out[0], list):
            return out
        flat: list[Any] = []
        for item in out:
            if not isinstance(item, list):
                raise InputError(f"{where}.data: mixes nested arrays and values")
            flat.extend(item)
        out = flat
    if out and isinstance(out[0], list):
        raise InputError(f"{where}.data: nested deeper than its {dims}-dimensional shape")
    return out


def _shape(tensor: dict[str, Any], where: str) -> list[int]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not shape or not all(type(d) is int and d >= 0 for d in shape):
        raise InputError(f"{where}.shape: expected an array of non-negative integers, got {preview(shape)}")
    return shape


def _tensor(item: Any, i: int) -> dict[str, Any]:
    where = f"inputs[{i}]"
    if not isinstance(item, dict):
        raise InputError(f"{where}: expected an object with name, shape, datatype and data")
    for key in ("name", "shape", "datatype", "data"):
        if key not in item:
            raise InputError(f"{where}: missing field {key!r}")
    if not isinstance(item["name"], str):
        raise InputError(f"{where}.name: expected a string, got {json_type(item['name'])}")
    if not isinstance(item["datatype"], str) or item["datatype"] not in DATATYPES:
        raise InputError(
            f"{where}.datatype: {preview(item['datatype'])} is not a v2 datatype "
            f"(expected one of {', '.join(sorted(DATATYPES))})"
        )
    return item


def wants_proba(body: dict[str, Any]) -> bool:
    params = body.get("parameters")
    if isinstance(params, dict) and params.get("return_probabilities") is True:
        return True
    outputs = body.get("outputs")
    if outputs is None:
        return False
    if not isinstance(outputs, list):
        raise InputError(f'outputs: expected an array of {{"name": ...}}, got {json_type(outputs)}')
    for k, out in enumerate(outputs):
        name = out.get("name") if isinstance(out, dict) else None
        if name not in OUTPUTS:
            raise InputError(f"outputs[{k}].name: expected one of {', '.join(OUTPUTS)}, got {preview(name)}")
    return any(o["name"] == "predict_proba" for o in outputs)


def to_rows(body: Any, validator: Validator) -> Rows:
    """The rows of an inference request, checked against the schema."""
    if not isinstance(body, dict):
        raise InputError(f"body is a JSON {json_type(body)}; expected an inference request object with 'inputs'")
    unknown = [k for k in body if k not in REQUEST_FIELDS]
    if unknown:
        raise InputError(f"body: unknown field {preview(unknown[0])} (expected {', '.join(REQUEST_FIELDS)})")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InputError("inputs: expected a non-empty array of tensors")
    tensors = [_tensor(t, i) for i, t in enumerate(inputs)]
    proba = wants_proba(body)
    names = validator.names
    if len(tensors) == 1 and tensors[0]["name"] not in validator.index:
        t = tensors[0]
        shape = _shape(t, "inputs[0]")
        if len(shape) == 1:
            shape = [1, shape[0]]
        if len(shape) != 2 or shape[1] != validator.width:
            raise InputError(
                f"inputs[0].shape: {t['shape']} does not fit [N, {validator.width}] (features: {', '.join(names)})"
            )
        data = _flat(t["data"], "inputs[0]", len(t["shape"]))
        n = shape[0]
        if len(data) != n * shape[1]:
            raise InputError(f"inputs[0].data: {len(data)} values for shape {t['shape']} (expected {n * shape[1]})")
        if n > validator.max_rows:
            raise InputError(f"inputs[0]: {n} rows, over the limit of {validator.max_rows} rows per request", 413)
        w = shape[1]
        return validator.check([data[r * w : (r + 1) * w] for r in range(n)], "inputs[0]", proba)
    by_name: dict[str, list[Any]] = {}
    for i, t in enumerate(tensors):
        if t["name"] not in validator.index:
            raise InputError(
                f"inputs[{i}].name: unknown feature {preview(t['name'])} (expected one tensor of shape "
                f"[N, {validator.width}], or one per feature: {', '.join(names)})"
            )
        if t["name"] in by_name:
            raise InputError(f"inputs[{i}].name: feature {preview(t['name'])} appears twice")
        shape = _shape(t, f"inputs[{i}]")
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise InputError(f"inputs[{i}].shape: {shape} is not [N] or [N, 1]")
        column = _flat(t["data"], f"inputs[{i}]", max(len(shape), 1))
        if len(column) != shape[0]:
            raise InputError(f"inputs[{i}].data: {len(column)} values for shape {shape}")
        by_name[t["name"]] = column
    missing = [n for n in names if n not in by_name]
    if missing:
        raise InputError(f"inputs: missing feature {missing[0]!r} (give one tensor per feature, or one [N, F])")
    lengths = {len(c) for c in by_name.values()}
    if len(lengths) != 1:
        raise InputError(f"inputs: feature tensors have different lengths {sorted(lengths)}")
    columns = [by_name[n] for n in names]
    return validator.check([list(r) for r in zip(*columns, strict=True)], "inputs", proba)


def datatype(values: np.ndarray) -> str:
    kind = np.asarray(values).dtype.kind
    return {"f": "FP64", "i": "INT64", "u": "UINT64", "b": "BOOL"}.get(kind, "BYTES")


def output(name: str, values: np.ndarray) -> dict[str, Any]:
    arr = np.asarray(values)
    data = arr.ravel().tolist() if arr.dtype.kind in "OSU" else np.ascontiguousarray(arr).ravel()
    return {"name": name, "shape": list(arr.shape), "datatype": datatype(arr), "data": data}


def input_metadata(features: list[Feature]) -> list[dict[str, Any]]:
    kinds = {"float64": "FP64", "float32": "FP32", "int64": "INT64", "int32": "INT32", "bool": "BOOL"}
    dtypes = {kinds.get(f.dtype, "BYTES") for f in features}
    if len(dtypes) == 1:
        return [{"name": "input-0", "datatype": dtypes.pop(), "shape": [-1, len(features)]}]
    return [{"name": f.name, "datatype": kinds.get(f.dtype, "BYTES"), "shape": [-1]} for f in features]
