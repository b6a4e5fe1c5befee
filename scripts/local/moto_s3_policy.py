"""Bucket policies in the local AWS: conditional statements are not enforced.

moto checks every object request (GET, PUT, HEAD, DELETE) against the bucket's policy, but
without a request context: it knows neither the caller nor the transport, evaluates only
StringEquals conditions and takes every other condition as met. A Deny conditioned on
`aws:SecureTransport` or `aws:PrincipalArn`, as in the deployment bucket's policy
(scripts/bucket_policy.py), therefore denies every caller in moto: the deployer's uploads
and the local runner's package downloads included.

`install()` makes moto leave statements with a Condition out when it checks a bucket policy;
statements without one are enforced as moto does. The policy is stored and returned as put,
so tests read what AWS would enforce. Installed by the local moto server in every mode.
"""

from __future__ import annotations

import json
from typing import Any

from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.s3.models import FakeBucket

_original_get_permission = FakeBucket.get_permission


def _unconditional_permission(self: FakeBucket, action: str, resource: str) -> Any:
    """moto's FakeBucket.get_permission over the policy's statements without a Condition."""
    if self.policy is None:
        return PermissionResult.NEUTRAL
    document = json.loads(self.policy)
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    enforced = [statement for statement in statements if "Condition" not in statement]
    if not enforced:
        return PermissionResult.NEUTRAL
    return IAMPolicy(json.dumps({**document, "Statement": enforced})).is_action_permitted(
        action, resource
    )


def install() -> None:
    """Patch moto's S3 model in this process (idempotent)."""
    FakeBucket.get_permission = _unconditional_permission  # type: ignore[method-assign]


def uninstall() -> None:
    """Restore moto's own bucket-policy check."""
    FakeBucket.get_permission = _original_get_permission  # type: ignore[method-assign]
