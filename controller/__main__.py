"""Command line: run the operator, generate CRDs, the demo, and operator helpers."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cmd_crds(args: argparse.Namespace) -> int:
    from controller.api.crd import write_crds

    for path in write_crds(Path(args.output)):
        print(path)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from controller import fleet_metrics, handlers, logs, metrics
    from controller.kube import KubeApi
    from controller.providers.registry import Providers
    from controller.runtime import Runtime
    from controller.settings import Settings
    from controller.storage.clips import ClipStore

    settings = Settings()
    logs.setup(settings.log_format, settings.log_level)
    log = logging.getLogger("scene_operator")
    metrics.serve(settings.metrics_port)
    clips = ClipStore.from_env(max_pool_connections=settings.io_threads * 2)
    if settings.create_bucket:
        clips.ensure_bucket(settings.bucket)

    async def main() -> None:
        api = KubeApi.from_environment()
        runtime = Runtime(settings=settings, api=api, clips=clips, providers=Providers(settings))
        fleet_metrics.register(runtime.store)  # gauges counted from the cache at each scrape
        liveness = (
            f"http://0.0.0.0:{settings.liveness_port}/healthz" if settings.liveness_port else None
        )
        log.info(
            "starting",
            extra={
                "namespaces": args.namespace or "*",
                "bucket": settings.bucket,
                "prefix": settings.s3_prefix,
            },
        )
        try:
            await handlers.run(
                runtime,
                namespaces=args.namespace or [],
                clusterwide=not args.namespace,
                standalone=not args.peering,
                peering_name=args.peering,
                liveness_endpoint=liveness,
            )
        finally:
            await api.close()

    asyncio.run(main())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from controller.demo import main as demo

    return demo(Path(args.output), timeout=args.timeout)


def cmd_annotate(args: argparse.Namespace) -> int:
    from controller.cli import annotate

    print(annotate(args.ref, args.namespace, args.command))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from controller.cli import status_table

    print(status_table(args.ref, args.namespace))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator against KUBECONFIG (or in-cluster)")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace", "-n", action="append", help="watch this namespace (repeatable)"
    )
    scope.add_argument(
        "--all-namespaces", "-A", action="store_true", help="watch every namespace (default)"
    )
    run.add_argument(
        "--peering",
        metavar="NAME",
        help="kopf peering object for multi-replica safety (default: standalone)",
    )
    run.set_defaults(func=cmd_run)

    crds = sub.add_parser("crds", help="write crds/*.yaml from the pydantic models")
    crds.add_argument("--output", default=str(REPO / "crds"))
    crds.set_defaults(func=cmd_crds)

    demo = sub.add_parser("demo", help="local control plane + S3 + operator + an example Project")
    demo.add_argument("--output", default="demo-output", help="folder for the clips (MP4)")
    demo.add_argument("--timeout", type=float, default=600.0)
    demo.set_defaults(func=cmd_demo)

    for name, text in (
        ("regenerate", "new take for scene/NAME, or for every scene of project/NAME"),
        ("retry", "retry failed scene/NAME, or every failed scene of project/NAME"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("ref", metavar="KIND/NAME")
        p.add_argument("--namespace", "-n", default="default")
        p.set_defaults(func=cmd_annotate)
    status = sub.add_parser("status", help="per-scene table of project/NAME")
    status.add_argument("ref", metavar="project/NAME")
    status.add_argument("--namespace", "-n", default="default")
    status.set_defaults(func=cmd_status)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
