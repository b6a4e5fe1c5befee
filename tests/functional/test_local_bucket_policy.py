"""The local AWS enforces what it can of a bucket policy: statements without a condition.

moto takes every condition as met; the local server leaves conditional statements out
(scripts/local/moto_s3_policy.py), so the deployment bucket's policy does not lock the
deployer and the local runner out, while an unconditional Deny still denies.
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from scripts.bucket_policy import wanted_policy

BUCKET = "local-policy-bucket"
DEPLOYER = "arn:aws:sts::123456789012:user/moto"  # moto's caller identity


@pytest.fixture
def s3(moto_endpoint: str):
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def test_the_deployment_bucket_policy_leaves_objects_reachable(s3) -> None:
    policy = wanted_policy(BUCKET, DEPLOYER)
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))

    s3.put_object(Bucket=BUCKET, Key="lambda/fn/0.zip", Body=b"package")
    body = s3.get_object(Bucket=BUCKET, Key="lambda/fn/0.zip")["Body"].read()
    s3.head_object(Bucket=BUCKET, Key="lambda/fn/0.zip")
    s3.delete_object(Bucket=BUCKET, Key="lambda/fn/0.zip")

    assert body == b"package"
    # Stored as put: what AWS would enforce is what a test reads back.
    assert json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"]) == policy


def test_an_unconditional_deny_is_still_enforced(s3) -> None:
    deny_writes = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": f"arn:aws:s3:::{BUCKET}/*",
            }
        ],
    }
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(deny_writes))

    with pytest.raises(ClientError) as denied:
        s3.put_object(Bucket=BUCKET, Key="lambda/fn/0.zip", Body=b"package")

    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
