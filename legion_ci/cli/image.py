"""`legion-ci image build ARTIFACT`: the package stage's build for any artifact (a store URI or a folder),
outside a run. The artifact is taken as the stages take it: through the store and this host's cache, every
file checked by sha256 against the artifact's checksums, never a folder used as it lies."""

from __future__ import annotations

import argparse
import sys

from legion_ci.cli.common import add_state_args, open_state, print_json
from legion_ci.core.errors import NotFoundError
from legion_ci.core.store import open_artifact
from legion_ci.package.build import package
from legion_ci.package.options import PackageOptions


def build_image(image: argparse.ArgumentParser, name: str) -> None:
    image.description = "Build an artifact's image the way the package stage does."
    actions = image.add_subparsers(dest="image_action", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build",
        help="build an artifact's image; push it with --push",
        description="Render the Dockerfile, build it with the Docker engine, tag it "
        "REGISTRY/legion/NAME:VERSION and :VERSION-ARTIFACTID8; with --push, "
        "push both and record the digest when the artifact is registered.",
    )
    build.add_argument(
        "artifact",
        metavar="ARTIFACT",
        help="an artifact's store URI (s3://..., as the registry records it) or a folder with manifest.json; "
        "a URI is fetched into $LEGION_HOME/cache, and every file is checked by sha256 before the build",
    )
    build.add_argument("--tag", action="append", default=[], metavar="TAG", help="another tag (repeatable)")
    build.add_argument("--push", action="store_true", help="push to the image registry ($LEGION_IMAGE_REGISTRY)")
    build.add_argument(
        "--registry", metavar="HOST[:PORT][/PATH]", help="image registry (default $LEGION_IMAGE_REGISTRY)"
    )
    build.add_argument(
        "--base-image", metavar="IMAGE", help="base image (default $LEGION_BASE_IMAGE or python:3.11-slim)"
    )
    build.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    add_state_args(build, store=True)
    build.set_defaults(handler=cmd_build)


def cmd_build(args: argparse.Namespace) -> int:
    settings, registry = open_state(args)
    # from the store via this host's cache, every file checked; the manifest too, when the registry knows it
    art = open_artifact(settings, args.artifact, registry.registered_digest(args.artifact))
    options = PackageOptions.from_settings(
        settings, registry=args.registry, base_image=args.base_image, push=args.push, extra_tags=tuple(args.tag)
    )
    workdir = settings.home / "images" / f"{art.name}-{art.id}"
    built = package(art, options, workdir, settings.home / "cache", lambda line: print(line, file=sys.stderr))
    if built.digest:
        try:
            registry.set_image(registry.version_by_artifact(art.name, art.id).id, built.image, built.digest)
        except NotFoundError:
            pass  # an artifact folder the registry does not know: nothing to record
    result = {
        "image": built.image,
        "references": built.references,
        "digest": built.digest,
        "pinned": built.pinned,
        "image_id": built.image_id,
        "size_bytes": built.size_bytes,
        "dockerfile": str(workdir / "Dockerfile"),
    }
    if args.json:
        print_json(result)
    else:
        print(built.pinned or built.image)
    return 0
