"""kubectl video: status, events, regenerate and retry for Projects and Scenes.

Installed as `kubectl-video` (kubectl finds it on PATH: `kubectl video status`). It uses
the current kubeconfig context and its namespace unless told otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from controller.api import vocabulary as v
from controller.plugin import report
from controller.plugin.client import PluginError, Target, new_token, parse_ref

FORMATS = ("table", "json", "yaml")


def cmd_status(args: argparse.Namespace, target: Target) -> str:
    now = dt.datetime.now(dt.UTC)
    events = target.events()
    views: list[report.ProjectView | report.SceneView] = []
    if not args.refs:
        scenes = target.list(v.SCENE_PLURAL)
        for project in sorted(
            target.list(v.PROJECT_PLURAL),
            key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]),
        ):
            views.append(report.project_view(project, scenes, events, args.events))
        if not views and args.output == "table":
            where = f"namespace {target.namespace}" if target.namespace else "any namespace"
            return f"No projects found in {where}."
    for ref in args.refs:
        plural, name = parse_ref(ref)
        obj = target.get(plural, name)
        if plural == v.PROJECT_PLURAL:
            views.append(report.project_view(obj, target.list(v.SCENE_PLURAL), events, args.events))
        else:
            ns = obj["metadata"]["namespace"]
            own = report.events_of(events, ns, v.SCENE_KIND, {name}, args.events)
            views.append(report.scene_view(obj, own))
    if args.output != "table":
        return report.dump(report.as_data(views), args.output)
    return "\n\n".join(
        report.render_project(x, now)
        if isinstance(x, report.ProjectView)
        else report.render_scene(x, now)
        for x in views
    )


def cmd_events(args: argparse.Namespace, target: Target) -> str:
    now = dt.datetime.now(dt.UTC)
    events = target.events()
    if args.ref:
        plural, name = parse_ref(args.ref)
        obj = target.get(plural, name)  # a clear "not found" rather than an empty list
        if plural == v.PROJECT_PLURAL:
            views = report.project_view(obj, target.list(v.SCENE_PLURAL), events, None).events
        else:
            ns = obj["metadata"]["namespace"]
            views = report.events_of(events, ns, v.SCENE_KIND, {name})
    else:
        views = sorted((report.event_view(e) for e in events), key=report.chronological)
    if args.output != "table":
        return report.dump(report.as_data(views), args.output)
    return "\n".join(report.events_table(views, now, indent=""))


def cmd_annotate(args: argparse.Namespace, target: Target) -> str:
    plural, name = parse_ref(args.ref)
    key = v.ANNOTATION_REGENERATE if args.command == "regenerate" else v.ANNOTATION_RETRY
    token = new_token()
    target.annotate(plural, name, key, token)
    return f"{plural[:-1]}/{name} annotated {key}={token}"


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--kubeconfig", help="kubeconfig file (default: KUBECONFIG or ~/.kube/config)"
    )
    common.add_argument("--context", help="kubeconfig context (default: the current one)")
    common.add_argument("-n", "--namespace", help="namespace (default: the context's namespace)")
    listing = argparse.ArgumentParser(add_help=False)
    listing.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    listing.add_argument("-o", "--output", choices=FORMATS, default="table")

    p = argparse.ArgumentParser(prog="kubectl video", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    status = sub.add_parser(
        "status",
        parents=[common, listing],
        help="phase, attempts, condition message, clip and latest Events of Projects and Scenes",
    )
    status.add_argument(
        "refs",
        nargs="*",
        metavar="REF",
        help="project/NAME, scene/NAME or NAME (default: every Project)",
    )
    status.add_argument("--events", type=int, default=10, help="latest Events shown per object")
    status.set_defaults(func=cmd_status)
    events = sub.add_parser(
        "events", parents=[common, listing], help="Events of a Project and its Scenes, oldest first"
    )
    events.add_argument("ref", nargs="?", metavar="REF", help="project/NAME or scene/NAME")
    events.set_defaults(func=cmd_events)
    for name, text in (
        ("regenerate", "a new take of scene/NAME, or of every Scene of project/NAME"),
        ("retry", "retry failed scene/NAME, or every failed Scene of project/NAME"),
    ):
        action = sub.add_parser(name, parents=[common], help=text)
        action.add_argument("ref", metavar="REF")
        action.set_defaults(func=cmd_annotate, all_namespaces=False)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        target = Target.resolve(
            kubeconfig=args.kubeconfig,
            context=args.context,
            namespace=args.namespace,
            all_namespaces=args.all_namespaces,
        )
        print(args.func(args, target))
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
