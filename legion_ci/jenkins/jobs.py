"""What Jenkins gets for a model, as data: job names, build parameters, credentials, stage commands.

The Jenkinsfile templates and the job config.xml templates both read these tables, so a parameter or a
credential id cannot differ between the two, and the stage lines come from the stage graph itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from legion_ci.core.settings import env_name
from legion_ci.core.spec import ModelSpec
from legion_ci.pipeline.graph import FLOWS, Stage, flow

TARGETS = ("local", "kubernetes")
PLATFORM_JOB = "legion-platform"
# LEGION_HOME of a build: a cache beside the workspace, in Jenkins' own <workspace>@tmp folder, so nothing
# legion-ci writes lands in the git work tree (lineage would read it as git.dirty).
BUILD_HOME_BESIDE_WORKSPACE = "@tmp/legion"


@dataclass(frozen=True)
class JobKind:
    """One kind of per-model job: which flow it runs, its name suffix, its template and trigger."""

    flow: str
    suffix: str
    template: str
    jenkinsfile: str  # file name beside legion.yaml in the model's repository
    trigger: Literal["push", "cron"]


JOB_KINDS: tuple[JobKind, ...] = (
    JobKind("push", "pipeline", "model.Jenkinsfile.j2", "Jenkinsfile", "push"),
    JobKind("retrain", "retrain", "retrain.Jenkinsfile.j2", "retrain.Jenkinsfile", "cron"),
    JobKind("rollout", "rollout", "rollout.Jenkinsfile.j2", "rollout.Jenkinsfile", "cron"),
)


def job_kind(suffix: str) -> JobKind:
    for kind in JOB_KINDS:
        if kind.suffix == suffix:
            return kind
    raise KeyError(suffix)


def kinds_for(spec: ModelSpec) -> tuple[JobKind, ...]:
    """A retrain job exists only when the spec schedules retraining; a rollout job when something leaves a
    candidate beside production for it to decide: a canary or shadow strategy, or a retrain."""
    return tuple(k for k in JOB_KINDS if cron_of(spec, k) is not None or k.trigger != "cron")


def cron_of(spec: ModelSpec, kind: JobKind) -> str | None:
    """The cron spec of a scheduled job (None: the model has no such job, or it is not scheduled)."""
    if kind.flow == "retrain":
        return spec.schedule.retrain
    if kind.flow == "rollout":
        wanted = spec.rollout.strategy != "immediate" or spec.schedule.retrain is not None
        return spec.rollout.schedule if wanted else None
    return None


def folder_name(model: str) -> str:
    return model


def job_name(model: str, kind: JobKind) -> str:
    return f"{model}-{kind.suffix}"


def full_name(model: str, kind: JobKind) -> str:
    """The job's full name in Jenkins; it also seeds `H` in its cron spec."""
    return f"{folder_name(model)}/{job_name(model, kind)}"


@dataclass(frozen=True)
class Param:
    """A build parameter: shown in the Jenkins UI, read by the stage commands as an environment variable."""

    name: str
    kind: Literal["choice", "string"]
    default: str
    description: str
    choices: tuple[str, ...] = ()


def parameters(spec: ModelSpec) -> tuple[Param, ...]:
    """The UI parameters of a model's jobs; empty or default values mean 'as the spec says'."""
    target = spec.deploy.target
    return (
        Param(
            "LEGION_TARGET",
            "choice",
            target,
            f"Where to deploy (the spec says {target}).",
            (target, *(t for t in TARGETS if t != target)),
        ),
        Param(
            "LEGION_TRAFFIC_WEIGHT",
            "string",
            str(spec.deploy.traffic_weight),
            "Percent of traffic the new version gets first (1-100).",
        ),
        Param(
            "LEGION_SKIP_PERF_REASON",
            "string",
            "",
            "Skip the performance test: say why (recorded with the run). Empty runs it.",
        ),
        Param(
            "LEGION_FORCE_REASON",
            "string",
            "",
            "Deploy even if the quality gate fails: say why (recorded with the run). Empty never forces.",
        ),
    )


def platform_parameters() -> tuple[Param, ...]:
    """The UI parameters of the platform job."""
    return (
        Param(
            "LEGION_TARGET",
            "choice",
            "kubernetes",
            "Install the platform on Kubernetes (Helm) or this agent.",
            ("kubernetes", "local"),
        ),
        Param("LEGION_NAMESPACE", "string", "legion", "Kubernetes namespace of the platform."),
    )


@dataclass(frozen=True)
class Credential:
    """A Jenkins credential the pipelines bind; only its id is ever written, never a value."""

    id: str
    env: str
    kind: Literal["string", "usernamePassword", "file"]
    description: str


REGISTRY_URL = Credential(
    "legion-registry-url",
    "LEGION_REGISTRY_URL",
    "string",
    "SQLAlchemy URL of the shared model registry (push and retrain jobs must see the same one)",
)
JWT_SECRET = Credential(
    "legion-jwt-secret", "LEGION_JWT_SECRET", "string", "HMAC secret the model servers check request tokens with"
)
# The artifact store every stage, agent and model pod shares (`$LEGION_HOME` is only a cache): an
# s3:// URL and the standard AWS variables, which s3fs reads with no legion-specific setting.
STORE_URL = Credential(
    "legion-store-url", "LEGION_STORE_URL", "string", "artifact store URL, s3://BUCKET/PREFIX (shared by every job)"
)
STORE_ACCESS_KEY = Credential(
    "legion-store-access-key-id", "AWS_ACCESS_KEY_ID", "string", "access key id of the artifact store"
)
STORE_SECRET_KEY = Credential(
    "legion-store-secret-access-key", "AWS_SECRET_ACCESS_KEY", "string", "secret access key of the artifact store"
)
STORE_ENDPOINT = Credential(
    "legion-store-endpoint-url",
    "AWS_ENDPOINT_URL",
    "string",
    "endpoint of an S3-compatible store that is not AWS S3 (bound when rendered with --store-endpoint)",
)
KUBECONFIG = Credential(
    "legion-kubeconfig",
    "KUBECONFIG",
    "file",
    "kubeconfig of the cluster the platform (and kubernetes-target models) are installed in",
)


@dataclass(frozen=True)
class Login:
    """A username/password credential bound around one stage's step (withCredentials), into exactly the
    variables the code reads: Jenkins' declarative `credentials()` would name them <VAR>_USR / <VAR>_PSW."""

    id: str
    user_env: str
    password_env: str
    stage: str
    description: str


IMAGE_REGISTRY = Login(
    "legion-image-registry",
    env_name("registry_user"),
    env_name("registry_password"),
    "package",
    "login to the Docker image registry the package stage pushes to",
)

# Every credential a model's jobs may bind (which ones a model binds: credentials_for, login_for).
CREDENTIALS: tuple[Credential, ...] = (
    REGISTRY_URL,
    STORE_URL,
    STORE_ACCESS_KEY,
    STORE_SECRET_KEY,
    STORE_ENDPOINT,
    JWT_SECRET,
)
PLATFORM_CREDENTIALS: tuple[Credential, ...] = (KUBECONFIG, JWT_SECRET)


def credentials_for(spec: ModelSpec, store_endpoint: bool = False) -> tuple[Credential, ...]:
    """What a model's jobs bind in `environment {}`: only what its spec needs. Every model: the shared
    registry and the store (a stage may run on any agent). The endpoint when the store is not AWS S3;
    the JWT secret when the model's endpoints check tokens."""
    wanted = [REGISTRY_URL, STORE_URL, STORE_ACCESS_KEY, STORE_SECRET_KEY]
    if store_endpoint:
        wanted.append(STORE_ENDPOINT)
    if spec.deploy.auth:
        wanted.append(JWT_SECRET)
    return tuple(wanted)


def login_for(spec: ModelSpec, stage: str) -> Login | None:
    """The login bound around a stage's step: the image registry's for `package` of a kubernetes-target
    model (a local-target model pushes no image, so it needs no registry credential)."""
    if spec.deploy.target == "kubernetes" and stage == IMAGE_REGISTRY.stage:
        return IMAGE_REGISTRY
    return None


SCM_CREDENTIALS_ID = "legion-git"
JENKINS_API_CREDENTIALS_ID = "legion-jenkins-api"


def stage_command(st: Stage, flow_name: str) -> str:
    """The one shell line a Jenkins stage runs: the same `legion-ci <stage>` a person runs by hand."""
    return f'legion-ci {st.name} "$LEGION_MODEL_DIR" --run-id "$LEGION_RUN_ID" --flow {flow_name}'


def flow_stages(flow_name: str) -> tuple[Stage, ...]:
    if flow_name not in FLOWS:
        raise KeyError(f"no flow {flow_name!r} (flows: {', '.join(FLOWS)})")
    return flow(flow_name)


PARAM_NAMES = ("LEGION_TARGET", "LEGION_TRAFFIC_WEIGHT", "LEGION_SKIP_PERF_REASON", "LEGION_FORCE_REASON")
