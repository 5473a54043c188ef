"""The slim-plan cache: a model's verified plain-numpy LinearPlan, kept between model-server starts.

A server that finds its artifact's plan here starts without importing scikit-learn, scipy or pandas
(seconds of a cold start). A plan is written only after it gave the estimator's own answers on the probe
rows (serving/predictor.py), and it is keyed by the artifact id and the model file's sha256, so it stands
for exactly that model file. In a pipeline the perf test's server makes it, and the deploy's replicas start
slim. (`warm` would let the train stage make it while the model is loaded, but the layer rule keeps the
pipeline from importing serving/; left for a core-level home of the plan.)
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from legion_ci.core.artifact import Artifact
from legion_ci.core.settings import Settings

if TYPE_CHECKING:
    from legion_ci.serving.fastpath import LinearPlan

log = logging.getLogger(__name__)


def stamp(art: Artifact) -> str:
    return hashlib.sha256(f"{art.id}:{art.manifest.model.sha256}".encode()).hexdigest()[:16]


def cache_file(art: Artifact, settings: Settings) -> Path:
    """Where the verified plan of this artifact's model is kept."""
    return settings.home / "cache" / "plans" / f"plan-{stamp(art)}.npz"


def save(plan: LinearPlan, art: Artifact, settings: Settings) -> Path | None:
    """Write the plan beside its place, then rename it there (replicas starting together never read half a
    file); None, with a warning, when the folder cannot be written."""
    cached = cache_file(art, settings)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=cached.parent, prefix=f"{cached.stem}-", suffix=".tmp")
        os.close(fd)
        plan.save(Path(name))
        os.replace(name, cached)
    except OSError as exc:
        log.warning("cannot save the slim plan in %s (%s); serving with scikit-learn loaded", cached.parent, exc)
        return None
    return cached


def warm(art: Artifact, settings: Settings) -> Path | None:
    """Check the artifact's model the way a starting server does and cache its plan when it has one (a
    linear model); returns the cached file, or None. Costs little where the model is loaded already."""
    if not settings.serve_slim:
        return None
    cached = cache_file(art, settings)
    if cached.is_file():
        return cached
    from legion_ci.serving.predictor import Predictor
    from legion_ci.serving.validation import Validator

    schema = art.schema  # read as ModelApp reads it, so the check is the one a server makes
    features = list(schema.features)
    numeric = Validator(features, 1, schema.allow_nan).numeric
    plan = Predictor.for_model(art.model, features, list(schema.example), numeric).plan
    return None if plan is None else save(plan, art, settings)
