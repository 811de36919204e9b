"""kubectl video: status, events, regenerate, retry, pause, resume and open for Projects and Scenes.

Installed as `kubectl-video` (kubectl finds it on PATH: `kubectl video status`). It uses
the current kubeconfig context and its namespace unless told otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import sys
import threading
from typing import Any

from controller import __version__
from controller.api import vocabulary as v
from controller.plugin import links, report
from controller.plugin.client import PluginError, Target, new_token, parse_ref

FORMATS = ("table", "json", "yaml")
CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear screen: `status --watch` on a terminal


def cmd_status(args: argparse.Namespace, target: Target) -> str:
    if args.watch:
        return watch(args, target)
    return status_text(args, target)[1]


def watch(args: argparse.Namespace, target: Target) -> str:
    """Print the status again whenever it changes (a terminal is redrawn), until Ctrl-C.

    Ctrl-C also sets a flag the loop checks: a KeyboardInterrupt that lands in a
    finalizer (the API client's, run by the garbage collector) is printed and dropped by
    Python, and the watch would go on for ever."""
    stop = threading.Event()

    def interrupted(signum: int, frame: Any) -> None:
        stop.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        shown: Any = None
        while not stop.is_set():
            data, text = status_text(args, target)
            if data != shown:
                if sys.stdout.isatty():
                    sys.stdout.write(CLEAR)
                elif shown is not None:
                    print()
                print(report.printable(text), flush=True)
                shown = data
            stop.wait(args.interval)
    finally:
        signal.signal(signal.SIGINT, previous)
    raise KeyboardInterrupt  # the interrupt that was dropped: main() ends as for Ctrl-C


def status_text(args: argparse.Namespace, target: Target) -> tuple[Any, str]:
    """(the status as data, to tell a change; the status as text)."""
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
            return None, f"No projects found in {where}."
    for ref in args.refs:
        plural, name = parse_ref(ref)
        obj = target.get(plural, name)
        if plural == v.PROJECT_PLURAL:
            views.append(report.project_view(obj, target.list(v.SCENE_PLURAL), events, args.events))
        else:
            ns = obj["metadata"]["namespace"]
            own = report.events_of(events, ns, v.SCENE_KIND, {name}, args.events)
            views.append(report.scene_view(obj, own))
    data = report.as_data(views)
    if args.output != "table":
        return data, report.dump(data, args.output)
    return data, "\n\n".join(
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


def project_ref(ref: str) -> str:
    plural, name = parse_ref(ref)
    if plural != v.PROJECT_PLURAL:
        raise PluginError(f"this command takes a Project (project/NAME), got {ref!r}")
    return name


def cmd_pause(args: argparse.Namespace, target: Target) -> str:
    name = project_ref(args.ref)
    if args.command == "pause":
        target.annotate(v.PROJECT_PLURAL, name, v.ANNOTATION_PAUSED, "true")
        return (
            f"project/{name} paused ({v.ANNOTATION_PAUSED}=true): no new job starts, jobs "
            f"already running finish; `kubectl video resume project/{name}` resumes it"
        )
    project = target.annotate(v.PROJECT_PLURAL, name, v.ANNOTATION_PAUSED, None)
    if (project.get("spec") or {}).get("paused"):
        return f"project/{name}: annotation removed, but spec.paused is true: it stays paused"
    return f"project/{name} resumed"


def cmd_open(args: argparse.Namespace, target: Target) -> str:
    name = project_ref(args.ref)
    project = target.get(v.PROJECT_PLURAL, name)
    ns = project["metadata"]["namespace"]
    scenes = report.scenes_of(name, ns, target.list(v.SCENE_PLURAL))
    signed = links.presign(links.objects(project, scenes), args.expires, args.endpoint_url)
    return links.render(ns, name, signed, args.expires)


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
    p.add_argument("--version", action="version", version=f"kubectl-video {__version__}")
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
    status.add_argument(
        "-w", "--watch", action="store_true", help="print it again whenever it changes (Ctrl-C)"
    )
    status.add_argument(
        "--interval", type=float, default=2.0, help="seconds between looks with --watch"
    )
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
    for name, text in (
        ("pause", "start no new job for project/NAME (an annotation, as spec.paused)"),
        ("resume", "remove the pause annotation of project/NAME"),
    ):
        action = sub.add_parser(name, parents=[common], help=text)
        action.add_argument("ref", metavar="project/NAME")
        action.set_defaults(func=cmd_pause, all_namespaces=False)
    link = sub.add_parser(
        "open",
        parents=[common],
        help="presigned S3 URLs of the film and each clip of project/NAME (your AWS credentials)",
    )
    link.add_argument("ref", metavar="project/NAME")
    link.add_argument(
        "--expires", type=int, default=3600, help="seconds the URLs stay valid (default: 3600)"
    )
    link.add_argument(
        "--endpoint-url",
        help="S3 endpoint (default: boto3's, e.g. AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL)",
    )
    link.set_defaults(func=cmd_open, all_namespaces=False)
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
        print(report.printable(args.func(args, target)))
    except PluginError as exc:
        print(report.printable(f"error: {exc}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # the end of `status --watch`
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
