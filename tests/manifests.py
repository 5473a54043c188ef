"""Valid manifests for tests that need a registry record but no model file behind it."""

from __future__ import annotations

from typing import Any

from legion_ci.core.manifest import ExportedModel, Feature, InputSchema, Manifest


def stub_manifest(name: str, version: str, artifact_id: str, **fields: Any) -> Manifest:
    """A current-version manifest naming a model file nobody will load (its sha256 is zeros)."""
    model = ExportedModel(
        format="skops",
        file="model.skops",
        sha256="0" * 64,
        input_schema=InputSchema(features=[Feature(name="x")], example=[[1.0]], example_predictions=[0]),
    )
    return Manifest(name=name, version=version, artifact_id=artifact_id, model=model, **fields)
