"""The deployment bucket's policy: TLS only, and package writes by the deploying identity only.

scripts/deploy.sh runs this on every deploy with the bucket's current policy on stdin (empty
when it has none) and the identity `sts get-caller-identity` reports. It prints the policy
to put, or nothing when the current one already holds both statements as they should be.
Statements of the current policy with other Sids are kept as they are, so an operator's own
bucket (DEPLOY_BUCKET) keeps what it already grants or denies.

The two statements, identified by their Sid:
- DenyInsecureTransport: every request over plain HTTP is refused (aws:SecureTransport false).
- DenyPackageWritesByOthers: s3:PutObject and s3:DeleteObject* on the bucket's objects are
  refused to every principal but the deploying one (aws:PrincipalArn). PutBucketPolicy is
  not denied: the next deploy, by whichever identity runs it, rewrites the statement for
  itself before it uploads.

Usage: python scripts/bucket_policy.py --bucket BUCKET --deployer-arn ARN < CURRENT_POLICY
exits 1 with a one-line reason for an ARN or a current policy it cannot read.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from typing import Any

TLS_ONLY_SID = "DenyInsecureTransport"
WRITES_SID = "DenyPackageWritesByOthers"
OWN_SIDS = frozenset({TLS_ONLY_SID, WRITES_SID})
POLICY_VERSION = "2012-10-17"

# arn:PARTITION:SERVICE::ACCOUNT:RESOURCE, as sts get-caller-identity reports callers.
_CALLER_ARN = re.compile(r"arn:(aws[a-z-]*):(iam|sts)::(\d{12}):(\S+)")
# An assumed-role session: assumed-role/ROLE_NAME/SESSION_NAME.
_ASSUMED_ROLE = re.compile(r"assumed-role/([\w+=,.@-]+)/[\w+=,.@-]+")


class PolicyError(ValueError):
    """The deployer's ARN or the bucket's current policy cannot be used."""


def partition_of(caller_arn: str) -> str:
    """The partition (aws, aws-cn, aws-us-gov, ...) of `caller_arn`. Raises PolicyError."""
    match = _CALLER_ARN.fullmatch(caller_arn)
    if match is None:
        raise PolicyError(f"{caller_arn!r} is not the ARN of an IAM or STS caller")
    return match[1]


def deployer_principal_arns(caller_arn: str) -> list[str]:
    """The aws:PrincipalArn values (ArnLike patterns) of the caller `caller_arn` names.

    A role session (`arn:P:sts::A:assumed-role/NAME/SESSION`) is its role, whose ARN may
    carry a path the session ARN leaves out: `role/NAME` and `role/*/NAME` (role names are
    unique in an account, whatever the path). Any other caller (a user, root, a federated
    user) is its own ARN. Raises PolicyError for an ARN that is not a caller's.
    """
    match = _CALLER_ARN.fullmatch(caller_arn)
    if match is None:
        raise PolicyError(f"{caller_arn!r} is not the ARN of an IAM or STS caller")
    partition, service, account, resource = match.groups()
    if service == "sts" and resource.startswith("assumed-role/"):
        role = _ASSUMED_ROLE.fullmatch(resource)
        if role is None:
            raise PolicyError(f"{caller_arn!r} is not a role session ARN")
        role_arn = f"arn:{partition}:iam::{account}:role"
        return [f"{role_arn}/{role[1]}", f"{role_arn}/*/{role[1]}"]
    return [caller_arn]


def own_statements(bucket: str, caller_arn: str) -> list[dict[str, Any]]:
    """The two statements deploy.sh keeps in the policy of `bucket` for `caller_arn`."""
    bucket_arn = f"arn:{partition_of(caller_arn)}:s3:::{bucket}"
    tls_only = {
        "Sid": TLS_ONLY_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    writes_by_deployer_only = {
        "Sid": WRITES_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": ["s3:PutObject", "s3:DeleteObject*"],
        "Resource": f"{bucket_arn}/*",
        "Condition": {"ArnNotLike": {"aws:PrincipalArn": deployer_principal_arns(caller_arn)}},
    }
    return [tls_only, writes_by_deployer_only]


def _statements(current: str) -> list[dict[str, Any]]:
    """The statements of the policy document `current` ("" = no policy)."""
    if not current.strip():
        return []
    try:
        document = json.loads(current)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"the bucket's current policy is not JSON: {exc}") from exc
    statements = document.get("Statement", []) if isinstance(document, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not all(isinstance(s, dict) for s in statements):
        raise PolicyError("the bucket's current policy has no list of statements")
    return statements


def wanted_policy(bucket: str, caller_arn: str, current: str = "") -> dict[str, Any] | None:
    """The policy `bucket` should have, or None when `current` already is that policy.

    `current` is the bucket's policy document as S3 returns it ("" when it has none).
    Statements with Sids other than deploy.sh's come first, unchanged. Raises PolicyError.
    """
    statements = _statements(current)
    others = [s for s in statements if s.get("Sid") not in OWN_SIDS]
    wanted = [*others, *own_statements(bucket, caller_arn)]
    if statements == wanted and json.loads(current).get("Version") == POLICY_VERSION:
        return None
    return {"Version": POLICY_VERSION, "Statement": wanted}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--deployer-arn", required=True, help="sts get-caller-identity's Arn")
    args = parser.parse_args(argv)
    try:
        policy = wanted_policy(args.bucket, args.deployer_arn, sys.stdin.read())
    except PolicyError as exc:
        print(f"bucket_policy: {exc}", file=sys.stderr)
        return 1
    if policy is not None:
        print(json.dumps(policy, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
