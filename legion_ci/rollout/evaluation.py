"""One evaluation of a model's rollout: which deployments are compared, their evidence, and the record of
the decision (the summary the reports, the registry event and `legion-ci ab report` share).

The candidate is the newest active deployment of a version that is not `production`; production is the
deployment of the `production` alias. Both are measured over the same time: since the candidate was
deployed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from legion_ci.core.registry import DeploymentRecord, Registry, VersionRecord
from legion_ci.rollout import sequential
from legion_ci.rollout.decision import Decision, Policy, Variant
from legion_ci.rollout.evidence import Scores, collect, errors_from_metrics

EVENT_KIND = "rollout"


@dataclass(frozen=True)
class Pair:
    """The two deployments a rollout compares."""

    candidate: DeploymentRecord
    candidate_version: VersionRecord
    production: DeploymentRecord
    production_version: VersionRecord

    @property
    def since(self) -> float:
        """Unix time the candidate was deployed: the start of both variants' evidence."""
        return datetime.fromisoformat(self.candidate.created_at).timestamp()


def find_pair(registry: Registry, model: str) -> tuple[Pair | None, str]:
    """The candidate and production deployments, or None with the reason there is nothing to evaluate."""
    production = registry.alias(model, "production")
    active = registry.deployments(model)
    if production is None:
        return None, f"model {model!r} has no production version to compare a candidate with"
    prod = [d for d in active if d.version_id == production.id]
    others = [d for d in active if d.version_id != production.id]
    if not others:
        return None, f"no candidate beside production ({production.label}): nothing to evaluate"
    if not prod:
        return None, f"production {production.label} has no active deployment to compare the candidate with"
    candidate = others[-1]
    return Pair(candidate, registry.version_by_id(candidate.version_id), prod[-1], production), ""


def scrape(deployment: DeploymentRecord, timeout: float = 5.0) -> tuple[int | None, int | None]:
    """(invokes, 5xx) summed over the deployment's replicas' /metrics; (None, None) when any cannot be read
    (a Kubernetes service is not reachable from an agent). With the error count unknown the decision never
    advances or promotes the candidate (it keeps testing, saying the error guard has no data); the p99 guard,
    read from the capture, still applies."""
    import httpx

    requests = errors = 0
    for endpoint in deployment.endpoints or []:
        try:
            answer = httpx.get(f"{str(endpoint['url']).rstrip('/')}/metrics", timeout=timeout)
            answer.raise_for_status()
        except (httpx.HTTPError, KeyError):
            return None, None
        r, e = errors_from_metrics(answer.text)
        requests, errors = requests + r, errors + e
    return requests, errors


def variant(deployment: DeploymentRecord, version: VersionRecord, scores: Scores, scraped: bool = True) -> Variant:
    mean, var = scores.mean_var()
    requests, errors = scrape(deployment) if scraped else (None, None)
    return Variant(
        version.version,
        int(deployment.weight),
        labelled=scores.labelled,
        mean=mean,
        var=var,
        requests=requests,
        errors=errors,
        p99_ms=scores.p99_ms(),
    )


def gather(segments: list[Path], pair: Pair, metric: str) -> tuple[Variant, Variant, dict[str, Scores]]:
    """The evidence of both variants since the candidate was deployed, from these capture segments."""
    names = (pair.candidate_version.version, pair.production_version.version)
    scores = collect(segments, metric, names, pair.since)
    cand = variant(pair.candidate, pair.candidate_version, scores[names[0]])
    prod = variant(pair.production, pair.production_version, scores[names[1]])
    return cand, prod, scores


def _interval(policy: Policy, v: Variant) -> list[float] | None:
    """A variant's own mean with its confidence sequence (the same mixture, on one mean)."""
    if not v.labelled or v.mean is None:
        return None
    sd = math.sqrt(v.var or 0.0)
    radius = float(
        sequential.mixture_radius(
            max(v.var or 0.0, 1e-12) / v.labelled, sequential.mixing_scale(policy.margin, sd), policy.alpha
        )
    )
    return [v.mean - radius, v.mean + radius]


def summary(
    policy: Policy,
    pair: Pair,
    candidate: Variant,
    production: Variant,
    scores: dict[str, Scores],
    decision: Decision,
    elapsed_s: float,
    run_id: str,
) -> dict[str, Any]:
    """Everything one evaluation saw and decided: the registry event's detail and the A/B report's data."""

    def one(role: str, v: Variant, version: VersionRecord, deployment: DeploymentRecord) -> dict[str, Any]:
        s = scores[v.version]
        return {
            "role": role,
            **asdict(v),
            "error_rate": v.error_rate,
            "interval": _interval(policy, v),
            "version_id": version.id,
            "artifact_id": version.artifact_id,
            "deployment_id": deployment.id,
            "ambiguous": s.ambiguous,
            "mismatched": s.mismatched,
            "hourly": {str(h): [len(x), sum(x) / len(x)] for h, x in sorted(s.hourly.items()) if x},
        }

    return {
        "model": pair.candidate.model,
        "run_id": run_id,
        "metric": policy.metric,
        "higher_is_better": policy.higher_is_better,
        "policy": asdict(policy),
        "since": pair.since,
        "elapsed_s": elapsed_s,
        "decision": decision.to_json(),
        "variants": [
            one("candidate", candidate, pair.candidate_version, pair.candidate),
            one("production", production, pair.production_version, pair.production),
        ],
    }
