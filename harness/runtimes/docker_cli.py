"""Commands for the docker runtime's images and leftovers:

    .venv/bin/python -m harness.runtimes.docker_cli build [--base offline|registry|IMAGE] [--force] [-v]
    .venv/bin/python -m harness.runtimes.docker_cli clean [--all]
    .venv/bin/python -m harness.runtimes.docker_cli render-compose

``build`` builds every image that is missing or stale (docs/docker.md); ``clean`` removes
the containers, networks and volumes of runs whose harness is gone (``--all``: of every
chaosgate run, also live ones); ``render-compose`` rewrites the compose stack's Envoy and
Toxiproxy configs from scenarios/replica-reset.yaml. Exit 0 on success, 2 on an error.
"""

from __future__ import annotations

import argparse
import sys
import time

from harness.errors import ChaosgateError


def _log(message: str) -> None:
    print(f"docker: {message}", file=sys.stderr, flush=True)


def _build(args: argparse.Namespace) -> None:
    from harness.runtimes.docker_engine import connect
    from harness.runtimes.docker_images import ensure_images

    started = time.monotonic()
    built = ensure_images(connect(), _log, force=args.force, verbose=args.verbose, base=args.base)
    _log(f"{'built ' + ', '.join(built) if built else 'all images up to date'} ({time.monotonic() - started:.1f}s)")


def _clean(args: argparse.Namespace) -> None:
    from harness.runtimes.docker_engine import connect, leftover_runs, reap_orphans, remove_run

    client = connect()
    if args.all:
        removed = list(leftover_runs(client))
        for run_id in removed:
            for problem in remove_run(client, run_id):
                _log(f"could not remove {problem}")
    else:
        removed = reap_orphans(client)
    _log(f"removed {len(removed)} run(s){': ' + ', '.join(removed) if removed else ''}")


def _render(args: argparse.Namespace) -> None:
    from harness.runtimes.docker_compose import write_compose_configs

    for path in write_compose_configs():
        _log(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.runtimes.docker_cli",
                                     description="Images and leftovers of chaosgate's docker runtime.")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build every image that is missing or stale (no registry needed)")
    build.add_argument("--base", default=None,
                       help="offline (default: a debootstrap base, no registry), registry (the Dockerfiles' public "
                            "bases), or an image to use as the base; default from CHAOSGATE_IMAGE_BASE")
    build.add_argument("--force", action="store_true", help="rebuild even when nothing changed")
    build.add_argument("-v", "--verbose", action="store_true", help="print the engine's build output")
    build.set_defaults(run=_build)
    clean = commands.add_parser("clean", help="remove what runs whose harness is gone left in the engine")
    clean.add_argument("--all", action="store_true", help="remove every chaosgate run, also those still running")
    clean.set_defaults(run=_clean)
    render = commands.add_parser("render-compose", help="rewrite the compose stack's Envoy and Toxiproxy configs")
    render.set_defaults(run=_render)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except ChaosgateError as exc:
        _log(f"error: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
