"""`legion-ci render`, `legion-ci jenkins sync|build|status` and `legion-ci schedule`."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from legion_ci.cli.common import settings_of
from legion_ci.core import cron
from legion_ci.core.errors import ConfigError
from legion_ci.core.spec import SPEC_FILE, load_spec
from legion_ci.jenkins import builds, jobs, render, schedule, sync
from legion_ci.jenkins.client import JenkinsClient
from legion_ci.jenkins.credentials import load_credentials


def _render_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where the jobs read their Jenkinsfiles (git)")
    g.add_argument(
        "--scm-url",
        help="git URL of the model repository (default: $LEGION_SCM_URL, else the "
        "repository's 'origin' remote, else a file:// URL of it)",
    )
    g.add_argument("--scm-branch", help="branch the jobs build (default: $LEGION_SCM_BRANCH or main)")
    g.add_argument("--scm-credentials-id", help=f"Jenkins credentials id for git (default: {jobs.SCM_CREDENTIALS_ID})")
    g.add_argument(
        "--repo-root",
        type=Path,
        help="root of the git work tree holding the models (default: found upward from each MODEL_DIR)",
    )
    g.add_argument("--platform", action="store_true", help="also render the legion-platform job")
    g.add_argument(
        "--store-endpoint",
        action="store_true",
        default=None,
        help="the artifact store is S3-compatible but not AWS S3: bind AWS_ENDPOINT_URL from the Jenkins "
        "credential legion-store-endpoint-url too",
    )


def _creds_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Jenkins server (login from the environment or a file, never the command line)")
    g.add_argument("--url", help="Jenkins URL (default: $JENKINS_URL or url= in the credentials file)")
    g.add_argument(
        "--credentials-file",
        metavar="FILE",
        help="INI ([jenkins] url/user/token) or YAML file; $JENKINS_USER/$JENKINS_TOKEN override it",
    )


def build_render(p: argparse.ArgumentParser, name: str) -> None:
    p.description = (
        "Render each model's Jenkinsfiles and Jenkins job config.xml into --out "
        "(same input, same bytes). Commit DIR/<model>/*Jenkinsfile beside legion.yaml."
    )
    p.add_argument("model_dirs", nargs="*", metavar="MODEL_DIR", help="folders holding legion.yaml")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    _render_args(p)
    p.set_defaults(handler=cmd_render)


def build_schedule(p: argparse.ArgumentParser, name: str) -> None:
    p.description = (
        "The next run times of the retrain job, with Jenkins' hash for H seeded "
        "by the job's full name <model>/<model>-retrain."
    )
    p.add_argument("model_dir", metavar="MODEL_DIR", help="folder holding legion.yaml (its schedule.retrain)")
    p.add_argument("-n", "--count", type=int, default=5, help="how many times to print (default: 5)")
    p.add_argument("--after", help="start from this ISO time (default: now)")
    p.add_argument(
        "--tz",
        help="the Jenkins controller's time zone, e.g. Europe/Berlin (default: UTC; a TZ= line in the spec wins)",
    )
    p.set_defaults(handler=cmd_schedule)


def build_jenkins(jp: argparse.ArgumentParser, name: str) -> None:
    jsub = jp.add_subparsers(dest="jenkins_command", metavar="ACTION", required=True)

    p = jsub.add_parser(
        "sync",
        help="create or update each model's folder and jobs",
        description="Print a plan, then create or update the folder and jobs of each model. "
        "Stale jobs of models not given are deleted only with --prune.",
    )
    p.add_argument("model_dirs", nargs="*", metavar="MODEL_DIR", help="folders holding legion.yaml")
    p.add_argument("--dry-run", action="store_true", help="print the plan only")
    p.add_argument("--prune", action="store_true", help="delete managed jobs of models that are gone")
    _render_args(p)
    _creds_args(p)
    p.set_defaults(handler=cmd_sync)

    p = jsub.add_parser("build", help="start a model's job and follow it to the end")
    p.add_argument("model", metavar="MODEL", help="model name, or a folder holding legion.yaml")
    p.add_argument("--job", default="pipeline", help="pipeline (default), retrain or rollout")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"a build parameter ({', '.join(jobs.PARAM_NAMES)}); repeatable",
    )
    p.add_argument("--poll", type=float, default=2.0, metavar="SECONDS", help="how often to poll (default: 2)")
    _creds_args(p)
    p.set_defaults(handler=cmd_build)

    p = jsub.add_parser("status", help="show the last builds of a model's job")
    p.add_argument("model", metavar="MODEL", help="model name, or a folder holding legion.yaml")
    p.add_argument("--job", default="pipeline", help="pipeline (default), retrain or rollout")
    p.add_argument("-n", "--count", type=int, default=5, help="how many builds (default: 5)")
    p.add_argument("--json", action="store_true", help="print the builds as JSON on stdout")
    _creds_args(p)
    p.set_defaults(handler=cmd_status)


def _options(args: argparse.Namespace) -> render.RenderOptions:
    return render.RenderOptions.from_settings(
        settings_of(args),
        scm_url=args.scm_url,
        scm_branch=args.scm_branch,
        scm_credentials_id=args.scm_credentials_id,
        repo_root=args.repo_root,
        store_endpoint=args.store_endpoint,
    )


def _render(args: argparse.Namespace) -> render.Rendered:
    if not args.model_dirs and not args.platform:
        raise ConfigError("give at least one MODEL_DIR (or --platform)")
    specs = [load_spec(d) for d in args.model_dirs]
    return render.render_all(specs, _options(args), platform=args.platform)


def cmd_render(args: argparse.Namespace) -> int:
    written = render.write_tree(_render(args), args.out)
    for path in written:
        print(path)
    print(f"wrote {len(written)} file(s) under {args.out}")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    rendered = _render(args)
    client = JenkinsClient(load_credentials(args.credentials_file, args.url))
    version = client.version()
    the_plan = sync.plan(client, rendered.items, prune=args.prune)
    print(f"Jenkins {version}")
    print(the_plan.render(client.url))
    if args.dry_run:
        print("dry run: nothing changed")
        return 0
    if the_plan.empty:
        print("nothing to do")
        return 0
    done = sync.apply(client, the_plan)
    print(f"applied {len(done)} change(s)")
    return 0


def _model_name(value: str) -> str:
    if (Path(value) / SPEC_FILE).is_file():
        return load_spec(value).spec.name
    return value


def cmd_build(args: argparse.Namespace) -> int:
    job = builds.job_for(_model_name(args.model), args.job)
    params = builds.parse_params(args.param, jobs.PARAM_NAMES)
    client = JenkinsClient(load_credentials(args.credentials_file, args.url))
    client.job_info(job)  # a clear error when the job is missing

    def out(line: str) -> None:
        print(line, flush=True)

    builds.follow(client, job, params, out, poll=args.poll)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    job = builds.job_for(_model_name(args.model), args.job)
    client = JenkinsClient(load_credentials(args.credentials_file, args.url))
    rows = builds.last_builds(client, job, args.count)
    if args.json:
        json.dump({"job": job, "builds": rows}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"{job} at {client.url}")
    if not rows:
        print("  no builds yet")
    for r in rows:
        print(f"  #{r['number']:<5} {r['result']:<9} {r['started']}  {r['duration_s']:>8}s  {r['url']}")
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    tz = None
    if args.tz:
        try:
            tz = ZoneInfo(args.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"--tz {args.tz!r} is not a time zone (expected an IANA name like Europe/Berlin)"
            ) from None
    zone = tz or ZoneInfo("UTC")
    if args.after:
        try:
            after = datetime.fromisoformat(args.after)
        except ValueError:
            raise ConfigError(f"--after {args.after!r} is not an ISO time (expected e.g. 2025-01-31T12:00)") from None
        if after.tzinfo is None:
            after = after.replace(tzinfo=zone)
    else:
        after = datetime.now(UTC)
    if args.count < 1:
        raise ConfigError(f"--count {args.count} must be at least 1")
    sched = schedule.next_runs(load_spec(args.model_dir), after, args.count, tz=zone)
    print(f"retrain schedule {sched.expression.strip()!r}")
    print(f"H is hashed from the job's full name {sched.job!r}, as Jenkins does")
    print(
        f"times in {sched.timezone or 'UTC'}"
        + ("" if args.tz or "TZ=" in sched.expression else " (the Jenkins controller's zone; pass --tz if not UTC)")
    )
    if not sched.times:
        print(f"  never fires in the next {cron.SEARCH_YEARS} years")
    for t in sched.times:
        print(f"  {t.strftime('%a %Y-%m-%d %H:%M %Z').strip()}")
    return 0
