"""scene-operator: run the operator, write its CRDs, or run the demo.

Installed as `scene-operator` (also `python -m controller`). Looking at Projects and
Scenes and acting on them is the kubectl plugin's job: `kubectl video --help`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

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
    from controller.app import RunOptions, run  # the composition root

    options = RunOptions(
        namespaces=args.namespace or [], peering=args.peering, leader_elect=args.leader_elect
    )
    return run(options)


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
