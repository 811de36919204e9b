"""`kubectl video open`: presigned S3 URLs for a Project's film and clips.

The URLs are signed with the user's own AWS credentials, region and endpoint (boto3's
usual environment: AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL_S3, ...), never the
operator's: a URL only opens what its signer may read. Signing is local (no request).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controller.plugin.client import PluginError

MAX_EXPIRES = 7 * 24 * 3600  # SigV4's limit: a week


@dataclass(frozen=True)
class Link:
    label: str  # "film", or the Scene's name
    bucket: str
    key: str
    url: str = ""


def objects(project: dict[str, Any], scenes: list[dict[str, Any]]) -> list[Link]:
    """The Project's film (when assembled) and each Scene's working clip (the clip as the
    film uses it: the original when there is no edit), in sequence order."""
    found = []
    final = (project.get("status") or {}).get("finalVideo") or {}
    if final.get("bucket") and final.get("s3Key"):
        found.append(Link("film", final["bucket"], final["s3Key"]))
    for scene in scenes:
        st = scene.get("status") or {}
        clip = st.get("workingClip") or st.get("clip") or {}
        if clip.get("bucket") and clip.get("key"):
            found.append(Link(scene["metadata"]["name"], clip["bucket"], clip["key"]))
    return found


def presign(links: list[Link], expires: int, endpoint_url: str | None = None) -> list[Link]:
    if not 1 <= expires <= MAX_EXPIRES:
        raise PluginError(f"--expires must be between 1 and {MAX_EXPIRES} seconds")
    import boto3
    import botocore.config
    import botocore.exceptions

    try:
        session = boto3.session.Session()
        if session.get_credentials() is None:
            raise PluginError(
                "no AWS credentials to sign with: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL_S3 for a server other than AWS)"
            )
        sigv4 = botocore.config.Config(signature_version="s3v4")  # what every region accepts
        s3 = session.client("s3", endpoint_url=endpoint_url, config=sigv4)
        return [
            Link(
                link.label,
                link.bucket,
                link.key,
                s3.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": link.bucket, "Key": link.key},
                    ExpiresIn=expires,
                ),
            )
            for link in links
        ]
    except botocore.exceptions.BotoCoreError as exc:
        raise PluginError(f"cannot sign S3 URLs: {exc}") from None


def render(namespace: str, name: str, links: list[Link], expires: int) -> str:
    if not links:
        return f"project {namespace}/{name} has no film or clip in S3 yet"
    width = max(len(link.label) for link in links)
    lines = [f"Project {namespace}/{name} (links valid for {expires} s)"]
    for link in links:
        lines.append(f"  {link.label.ljust(width)}  s3://{link.bucket}/{link.key}")
        lines.append(f"  {' ' * width}  {link.url}")
    return "\n".join(lines)
