"""`legion-ci retrain`, what the cron job runs: feedback in, the same gate, a weighted candidate out."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path

import httpx
import yaml

from legion_ci.core.artifact import Artifact
from legion_ci.core.locking import model_lock
from legion_ci.core.registry import Registry
from legion_ci.core.settings import load_settings
from legion_ci.quality.smoke import auth_headers
from tests.e2e.test_local_pipeline import cli, home, run_json, short_perf

_ = home


def set_params(model_dir: Path, **params: float) -> None:
    spec = yaml.safe_load((model_dir / "legion.yaml").read_text())
    spec["train"]["params"].update(params)
    spec["gate"]["thresholds"] = {}
    (model_dir / "legion.yaml").write_text(yaml.safe_dump(spec))


def send_feedback(home: Path, rows: int) -> None:
    """Call the production deployment like an application would, then post the ground truth back."""
    settings = load_settings(str(home))
    registry = Registry(settings.registry_url)
    prod = registry.alias("iris", "production")
    assert prod is not None
    art = Artifact.open(prod.path)
    url = next(d for d in registry.deployments("iris") if d.version_id == prod.id).endpoints[0]["url"]
    headers = auth_headers(settings, art, True)
    base = f"{url}/api/model/iris/{art.version}"
    for i in range(rows):
        rid = f"fb-{uuid.uuid4().hex[:12]}"
        row = art.schema.example[i % len(art.schema.example)]
        answer = httpx.post(f"{base}/invoke", json={"instances": [row]}, headers={**headers, "X-Request-ID": rid})
        assert answer.status_code == 200, answer.text
        truth = art.schema.example_predictions[i % len(art.schema.example)]
        posted = httpx.post(f"{base}/feedback", json={"request_id": rid, "ground_truth": truth}, headers=headers)
        assert posted.status_code < 300, posted.text
    time.sleep(1.0)  # the capture writer flushes off the hot path


def test_retrain_with_nothing_new_deploys_nothing(home: Path, iris_dir: Path) -> None:
    assert run_json(home, iris_dir)[0] == 0
    done = cli(home, "retrain", str(iris_dir), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    stages = {s["stage"]: s for s in summary["stages"]}
    assert "nothing to retrain" in stages["train"]["summary"] or "no better" in json.dumps(summary)
    assert stages["deploy"]["status"] == "skipped"
    assert len(Registry(load_settings(str(home)).registry_url).deployments("iris")) == 1


def test_retrain_trains_on_feedback_and_deploys_a_better_candidate_at_its_weight(home: Path, iris_dir: Path) -> None:
    set_params(iris_dir, C=0.001)  # a weak production model
    assert run_json(home, iris_dir)[0] == 0
    send_feedback(home, 12)
    set_params(iris_dir, C=1.0)  # the data scientist's fix lands; the nightly retrain picks it up
    short_perf(iris_dir)
    done = cli(home, "retrain", str(iris_dir), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    registry = Registry(load_settings(str(home)).registry_url)
    versions = registry.versions("iris")
    assert len(versions) == 2
    candidate = versions[-1]
    assert any(p.endswith("feedback.csv") for p in candidate.manifest.data.extra)
    production = registry.alias("iris", "production")
    assert production is not None and production.id == versions[0].id  # retrain never promotes by itself
    weights = {d.version_id: d.weight for d in registry.deployments("iris")}
    assert weights[candidate.id] == 20


def test_a_second_pipeline_on_the_same_model_is_refused_then_waits(home: Path, iris_dir: Path) -> None:
    assert run_json(home, iris_dir)[0] == 0
    registry = Registry(load_settings(str(home)).registry_url)
    with model_lock(registry, "iris", owner="nightly-retrain-41"):
        refused = cli(home, "retrain", str(iris_dir))
    assert refused.returncode == 3
    assert "locked by run 'nightly-retrain-41'" in refused.stderr and "--wait" in refused.stderr

    def hold_then_release() -> None:
        with model_lock(registry, "iris", owner="push-pipeline-7"):
            time.sleep(3)

    holder = threading.Thread(target=hold_then_release)
    holder.start()
    time.sleep(0.5)
    waited = cli(home, "retrain", str(iris_dir), "--wait", "60")
    holder.join()
    assert waited.returncode == 0, waited.stderr
    assert os.environ.get("LEGION_HOME") != str(home)  # the test never touched the user's own state
