"""scene-operator: run the operator, write its CRDs, or run the demo.

Installed as `scene-operator` (also `python -m controller`). Looking at Projects and
Scenes and acting on them is the kubectl plugin's job: `kubectl video --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cmd_crds(args: argparse.Namespace) -> int:
    from controller.api.crd import crd_files, write_crds

    if args.output == "-":  # scene-operator crds --output - | kubectl apply -f -
        print("---\n".join(crd_files().values()), end="")
        return 0
    for path in write_crds(Path(args.output)):
        print(path)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from controller import webhooks
    from controller.app import Runtime
    from controller.informer import handlers
    from controller.kube.client import KubeApi
    from controller.leaderelection import leadership
    from controller.leaderelection.elector import AlwaysLeader, LeaderElector
    from controller.leaderelection.guard import LeaderGatedQueue, guarded_edges
    from controller.observability import fleet_metrics, logs, metrics
    from controller.settings import Settings
    from controller.storage.clips import ClipStore

    settings = Settings()
    logs.setup(settings.log_format, settings.log_level)
    log = logging.getLogger("scene_operator")
    metrics.serve(settings.metrics_port)
    clips = ClipStore.from_env(max_pool_connections=settings.io_threads * 2)
    if settings.create_bucket:
        clips.ensure_bucket(settings.bucket)

    elect = leadership.election_enabled(args.leader_elect, settings)

    async def main() -> None:
        api = KubeApi.from_environment()
        lease_api = KubeApi.from_environment() if elect else None
        elector: LeaderElector | AlwaysLeader = AlwaysLeader()
        if lease_api is not None:
            config = leadership.election_config(settings, args.namespace or [])
            elector = leadership.elector(lease_api, config)
            log.info(
                "leader election on",
                extra={"lease": f"{config.namespace}/{config.name}", "identity": config.identity},
            )
        # Every provider call, S3 call and API write of the work checks leadership first.
        api.write_guard = elector.is_leader
        runtime = Runtime(
            settings=settings,
            api=api,
            **guarded_edges(settings, elector, clips),  # behind the guard and the fence
            queue=LeaderGatedQueue(elector.wait_leading),
        )
        fleet_metrics.register(runtime.store)  # gauges counted from the cache at each scrape
        # Replicate webhooks (None unless SCENE_OPERATOR_WEBHOOK_URL): a standby answers 503.
        receiver = await webhooks.start(settings, runtime, is_leader=elector.is_leader)
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
        election = None
        if isinstance(elector, LeaderElector):
            election = asyncio.create_task(elector.run())
            election.add_done_callback(_election_ended)
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
            if receiver is not None:
                await receiver.stop()
            if election is not None and isinstance(elector, LeaderElector):
                election.remove_done_callback(_election_ended)
                election.cancel()
                await elector.release()  # the workers are stopped: hand over at once
            await api.close()
            if lease_api is not None:
                await lease_api.close()

    asyncio.run(main())
    return 0


def _election_ended(task: asyncio.Task[None]) -> None:
    """The elector returns only through its exits (and is cancelled only after this
    callback is removed): anything else, e.g. a bug, or kopf cancelling a task of ours
    while it restarts, stops the process at once rather than run on without renewing."""
    from controller.leaderelection import leadership

    error = "cancelled" if task.cancelled() else repr(task.exception())
    leadership.exit_now(leadership.EXIT_LOST_LEADERSHIP, "leader election stopped", error=error)


def cmd_demo(args: argparse.Namespace) -> int:
    import os

    from controller.demo.run import DemoOptions
    from controller.demo.run import main as demo

    options = DemoOptions(
        output=Path(args.output),
        timeout=args.timeout,
        kubeconfig=args.kubeconfig,
        namespace=args.namespace,
        real_providers=args.real_providers,
        max_generations=args.max_generations,
    )
    try:
        return demo(options, os.environ)
    except KeyboardInterrupt:  # everything it started is stopped on the way out
        print("demo interrupted", file=sys.stderr)
        return 130
    except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
        # kubectl failed (its stderr says why), no kubeconfig, no moto, no binaries, ...
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    from controller.demo.run import DEMO_BUDGET  # a light module: the demo's parts load lazily

    parser = argparse.ArgumentParser(prog="scene-operator", description=__doc__)
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
    run.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="leader election on a Lease: run several replicas, one works "
        "(default: SCENE_OPERATOR_LEADER_ELECT, else on in a cluster)",
    )
    run.set_defaults(func=cmd_run)

    crds = sub.add_parser("crds", help="write the CRDs generated from the pydantic models")
    crds.add_argument(
        "--output",
        default=str(REPO / "crds") if (REPO / "pyproject.toml").exists() else "-",
        help="folder, or - for stdout (default: crds/ of a source checkout, else stdout)",
    )
    crds.set_defaults(func=cmd_crds)

    demo = sub.add_parser(
        "demo", help="the operator, an S3 server and an example Project (local providers)"
    )
    demo.add_argument("--output", default="demo-output", help="folder for the clips (MP4)")
    demo.add_argument("--timeout", type=float, default=600.0)
    demo.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="use this cluster (kind, minikube, ...) instead of starting a local control plane",
    )
    demo.add_argument("--namespace", "-n", default="default", help="namespace of the Project")
    demo.add_argument(
        "--real-providers",
        action="store_true",
        help="use Gemini/Replicate where their keys are set (this costs money); by default "
        "the local planner and renderer run and no provider key reaches the operator",
    )
    demo.add_argument(
        "--max-generations",
        type=int,
        default=DEMO_BUDGET,
        help="budget.maxGenerations with --real-providers (default: %(default)s)",
    )
    demo.set_defaults(func=cmd_demo)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
