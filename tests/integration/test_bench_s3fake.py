"""The benchmark's S3 fake (moto in a child process, its service lookup taken once)
answers like S3: what was put is headed and listed by prefix, a missing key is a 404, and
a bucket lists only its own objects."""

from __future__ import annotations

import botocore.exceptions
import pytest

from benchmarks.s3fake import S3Process


def test_the_benchmark_s3_fake_answers_like_s3() -> None:
    with S3Process() as s3:
        c = s3.client()
        for bucket in ("bench-a", "bench-b"):
            c.create_bucket(Bucket=bucket)
            c.head_bucket(Bucket=bucket)
        c.put_object(Bucket="bench-a", Key="p/ns/uid-1/scenes/001/clip.mp4", Body=b"one")
        c.put_object(Bucket="bench-a", Key="p/ns/uid-2/scenes/001/clip.mp4", Body=b"two!")
        c.put_object(Bucket="bench-b", Key="p/ns/uid-1/scenes/002/clip.mp4", Body=b"three")
        head = c.head_object(Bucket="bench-a", Key="p/ns/uid-2/scenes/001/clip.mp4")
        assert head["ContentLength"] == 4
        with pytest.raises(botocore.exceptions.ClientError) as missing:
            c.head_object(Bucket="bench-a", Key="p/ns/uid-1/scenes/002/clip.mp4")
        assert missing.value.response["Error"]["Code"] == "404"
        listed = c.list_objects_v2(Bucket="bench-a", Prefix="p/ns/uid-1/")
        assert [o["Key"] for o in listed["Contents"]] == ["p/ns/uid-1/scenes/001/clip.mp4"]
        other = c.list_objects_v2(Bucket="bench-b", Prefix="p/ns/")
        assert [o["Key"] for o in other["Contents"]] == ["p/ns/uid-1/scenes/002/clip.mp4"]
