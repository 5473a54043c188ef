"""/openapi.json: every endpoint of one model server, with the model's real input schema."""

from __future__ import annotations

from typing import Any

from legion_ci import __version__
from legion_ci.core.artifact import Artifact
from legion_ci.core.manifest import Feature
from legion_ci.feedback.labels import Target
from legion_ci.serving.options import ServeOptions
from legion_ci.serving.v2 import DATATYPES
from legion_ci.serving.validation import NUMERIC

KIND_SCHEMA = {"f": {"type": "number"}, "i": {"type": "integer"}, "b": {"type": "boolean"}, "s": {"type": "string"}}
ERROR = {"$ref": "#/components/schemas/Error"}


def _value(feature: Feature, allow_nan: bool) -> dict[str, Any]:
    schema: dict[str, Any] = dict(KIND_SCHEMA[NUMERIC.get(feature.dtype, "s")])
    if allow_nan and schema["type"] == "number":
        schema["nullable"] = True
    return schema


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(codes: list[int], auth: bool) -> dict[str, Any]:
    text = {
        400: "Malformed body (empty, not JSON, NaN/Infinity)",
        401: "Missing or invalid token",
        403: "Token does not cover this model",
        413: "Body or row count over the limit",
        422: "Body does not fit the model's input schema",
        503: "Not ready",
    }
    if auth:
        codes = [*codes, 401, 403]
    return {str(c): _json(ERROR, text[c]) for c in sorted(set(codes))}


def build_openapi(
    artifact: Artifact, features: list[Feature], auth: bool, options: ServeOptions, target: Target
) -> dict[str, Any]:
    """An OpenAPI 3.0 document for the server of `artifact`."""
    name, version = artifact.name, artifact.version
    allow_nan = artifact.schema.allow_nan
    values = [_value(f, allow_nan) for f in features]
    names = [f.name for f in features]
    distinct = {tuple(sorted(v.items())) for v in values}
    item = values[0] if len(distinct) == 1 else {"anyOf": [dict(d) for d in distinct]}
    row_array = {
        "type": "array",
        "items": item,
        "minItems": len(names),
        "maxItems": len(names),
        "description": f"values in this order: {', '.join(names)}",
    }
    row_object = {
        "type": "object",
        "properties": dict(zip(names, values, strict=True)),
        "required": names,
        "additionalProperties": False,
    }
    rows = {
        "type": "array",
        "minItems": 1,
        "maxItems": options.max_rows,
        "items": {"anyOf": [{"$ref": "#/components/schemas/RowArray"}, {"$ref": "#/components/schemas/RowObject"}]},
    }
    example = (artifact.schema.example or [[]])[:2]
    invoke_request = {
        "anyOf": [
            {
                "type": "object",
                "required": ["instances"],
                "additionalProperties": False,
                "properties": {"instances": rows, "return_probabilities": {"type": "boolean"}},
            },
            {
                "type": "object",
                "required": ["columns", "data"],
                "additionalProperties": False,
                "properties": {
                    "columns": {
                        "type": "array",
                        "items": {"type": "string", "enum": names},
                        "minItems": len(names),
                        "maxItems": len(names),
                        "uniqueItems": True,
                    },
                    "data": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": options.max_rows,
                        "items": {"$ref": "#/components/schemas/RowArray"},
                    },
                    "return_probabilities": {"type": "boolean"},
                },
            },
            {
                "type": "array",
                "minItems": 1,
                "maxItems": options.max_rows,
                "items": {"$ref": "#/components/schemas/RowObject"},
            },
        ]
    }
    prediction = {"nullable": True, "oneOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}]}
    invoke_response = {
        "type": "object",
        "required": ["model", "version", "predictions"],
        "properties": {
            "model": {"type": "string", "enum": [name]},
            "version": {"type": "string", "enum": [version]},
            "predictions": {"type": "array", "items": prediction},
            "probabilities": {
                "type": "array",
                "items": {"type": "array", "items": {"type": "number", "nullable": True}},
            },
            "classes": {"type": "array", "nullable": True, "items": prediction},
        },
    }
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string", "enum": sorted(DATATYPES)},
            "data": {"type": "array"},
            "parameters": {"type": "object"},
        },
    }
    infer_request = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "minItems": 1, "items": tensor},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string", "enum": ["predict", "predict_proba"]}},
                },
            },
        },
    }
    infer_response = {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": tensor},
        },
    }
    feedback_item = {
        "type": "object",
        "required": ["request_id", "ground_truth"],
        "additionalProperties": False,
        "properties": {
            "request_id": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
            "ground_truth": target.json_schema(),
            "payload": {},
        },
    }
    status = {"type": "object", "properties": {"status": {"type": "string"}}}
    security: list[dict[str, list[str]]] = [{"bearer": []}] if auth else []
    proba = {
        "name": "proba",
        "in": "query",
        "required": False,
        "schema": {"type": "boolean"},
        "description": "also answer class probabilities (classifiers)",
    }

    def op(
        summary: str,
        responses: dict[str, Any],
        body: dict[str, Any] | None = None,
        protected: bool = False,
        params: list[Any] | None = None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"summary": summary, "responses": responses}
        if body is not None:
            out["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        if protected:
            out["security"] = security
        if params:
            out["parameters"] = params
        return out

    api = f"/api/model/{name}/{version}"
    v2_meta = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array"},
            "outputs": {"type": "array"},
        },
    }
    paths: dict[str, Any] = {
        f"{api}/invoke": {
            "post": op(
                f"Predict with {name} {version}",
                {
                    "200": _json({"$ref": "#/components/schemas/InvokeResponse"}, "Predictions"),
                    **_errors([400, 413, 422], auth),
                },
                {"$ref": "#/components/schemas/InvokeRequest"},
                True,
                [proba],
            )
        },
        f"{api}/feedback": {
            "post": op(
                "Ground truth for earlier request ids (unknown ids are kept, flagged)",
                {"200": _json({"type": "object"}, "Accepted"), **_errors([400, 413, 422, 503], auth)},
                {"anyOf": [feedback_item, {"type": "array", "minItems": 1, "items": feedback_item}]},
                True,
            )
        },
        f"{api}/info": {
            "get": op(
                "Input schema, example and lineage",
                {
                    "200": _json({"type": "object", "required": ["model", "version", "input_schema"]}, "Model info"),
                    **_errors([], auth),
                },
                protected=True,
            )
        },
        "/health/live": {"get": op("Liveness", {"200": _json(status, "Live")})},
        "/health/ready": {
            "get": op(
                "Readiness: the model is loaded", {"200": _json(status, "Ready"), "503": _json(status, "Not ready")}
            )
        },
        "/metrics": {
            "get": op(
                "Prometheus metrics",
                {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            )
        },
        "/openapi.json": {"get": op("This document", {"200": _json({"type": "object"}, "OpenAPI")})},
        "/v2": {"get": op("Open Inference Protocol: server metadata", {"200": _json({"type": "object"}, "Server")})},
        "/v2/health/live": {"get": op("Open Inference Protocol: liveness", {"200": _json(status, "Live")})},
        "/v2/health/ready": {
            "get": op(
                "Open Inference Protocol: readiness", {"200": _json(status, "Ready"), "503": _json(status, "Not ready")}
            )
        },
    }
    for base in (f"/v2/models/{name}", f"/v2/models/{name}/versions/{version}"):
        paths[base] = {
            "get": op(
                "Open Inference Protocol: model metadata",
                {"200": _json(v2_meta, "Metadata"), **_errors([], auth)},
                protected=True,
            )
        }
        paths[f"{base}/ready"] = {
            "get": op(
                "Open Inference Protocol: model readiness",
                {"200": _json(status, "Ready"), "503": _json(status, "Not ready")},
            )
        }
        paths[f"{base}/infer"] = {
            "post": op(
                "Open Inference Protocol: inference",
                {"200": _json(infer_response, "Outputs"), **_errors([400, 413, 422], auth)},
                infer_request,
                True,
            )
        }
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": f"{name} {version}",
            "version": version,
            "description": f"legion-ci {__version__} model server for {name} {version} "
            f"(artifact {artifact.id}, {artifact.task}).",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "RowArray": row_array,
                "RowObject": row_object,
                "InvokeRequest": invoke_request,
                "InvokeResponse": invoke_response,
                "Error": {
                    "type": "object",
                    "required": ["error", "status"],
                    "properties": {
                        "error": {"type": "string"},
                        "status": {"type": "integer"},
                        "request_id": {"type": "string"},
                    },
                },
            }
        },
    }
    if example and example[0]:
        doc["components"]["schemas"]["InvokeRequest"]["example"] = {"instances": example}
    if auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
    return doc
