"""The fault-injecting proxy itself, against the S3 server with boto3 (no retries), so
the resilience tests can trust what each fault does."""

from __future__ import annotations

import boto3
import botocore.exceptions as bce
import pytest
from botocore.config import Config

from tests.support.faults import FaultProxy

pytestmark = pytest.mark.resilience


@pytest.fixture
def proxy(s3):
    with FaultProxy(s3.endpoint_url, seed=1, delay_seconds=0.2) as p:
        yield p


@pytest.fixture
def client(s3, proxy):
    env = s3.env()
    return boto3.session.Session().client(
        "s3",
        endpoint_url=proxy.endpoint_url,
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def exists(s3, key: str) -> bool:
    try:
        s3.client.head_object(Bucket=s3.bucket, Key=key)
    except bce.ClientError:
        return False
    return True


def test_passes_requests_through(s3, proxy, client) -> None:
    client.put_object(Bucket=s3.bucket, Key="proxy/pass", Body=b"x" * 70_000)
    assert client.get_object(Bucket=s3.bucket, Key="proxy/pass")["Body"].read() == b"x" * 70_000
    assert client.head_object(Bucket=s3.bucket, Key="proxy/pass")["ContentLength"] == 70_000
    assert proxy.injected() == 0 and proxy.counts[("PUT", "pass")] == 1


def test_slowdown_is_an_s3_error_and_stores_nothing(s3, proxy, client) -> None:
    proxy.force("slowdown", method="PUT")
    with pytest.raises(bce.ClientError) as e:
        client.put_object(Bucket=s3.bucket, Key="proxy/slow", Body=b"y" * 1000)
    assert e.value.response["Error"]["Code"] == "SlowDown"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert not exists(s3, "proxy/slow")
    proxy.force("slowdown", method="HEAD")
    with pytest.raises(bce.ClientError) as e:
        client.head_object(Bucket=s3.bucket, Key="proxy/slow")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503


def test_reset_mid_upload_stores_nothing(s3, proxy, client) -> None:
    proxy.force("reset_request", method="PUT")
    with pytest.raises((bce.ConnectionError, bce.HTTPClientError)):
        client.put_object(Bucket=s3.bucket, Key="proxy/cut", Body=b"z" * 200_000)
    assert not exists(s3, "proxy/cut")


def test_reset_after_the_upload_stores_it_but_answers_nothing(s3, proxy, client) -> None:
    proxy.force("reset_response", method="PUT")
    with pytest.raises((bce.ConnectionError, bce.HTTPClientError)):
        client.put_object(Bucket=s3.bucket, Key="proxy/lost", Body=b"w" * 5000)
    assert exists(s3, "proxy/lost")


def test_seeded_schedule_is_reproducible(s3) -> None:
    rules = {"*": {"slowdown": 0.3, "delay": 0.1}}
    a, b = (
        FaultProxy(s3.endpoint_url, seed=42, rules=rules),
        FaultProxy(s3.endpoint_url, seed=42, rules=rules),
    )
    assert [a.choose("GET") for _ in range(50)] == [b.choose("GET") for _ in range(50)]
    assert {a.choose("PUT") for _ in range(200)} == {"pass", "slowdown", "delay"}
