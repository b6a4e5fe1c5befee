"""The connection test: can the hub reach a target account the way the sync does?

`run_connection_test` assumes the account's role exactly as the sync does (its roleArn, its
external id, DurationSeconds 900, the sync's SourceIdentity), then asks DRS for one source
server in every tested region (concurrently, bounded) and EC2 for a handful of instances in
one region. The hub account is tested with the function's own credentials.

The answer (plain JSON):

    {"accountId", "ok": bool, "hubAccount": bool, "roleArn": str|None,
     "externalIdLast4": str|None,
     "checks": [{"check": "roleAssumable"|"externalIdAccepted"|"drsReadable"|"ec2Readable",
                 "ok": true|false|null, "message": str}],
     "regions": {"us-east-1": "INITIALIZED"|"NOT_INITIALIZED"|"ACCESS_DENIED"|
                              "REGION_NOT_ENABLED"|"THROTTLED"|"ERROR"}}

A check's `ok` is null when it was not run or cannot be told apart (STS answers AccessDenied
alike for a role that does not exist, one that does not trust the hub and a wrong external
id). `ok` of the whole test is true when no check failed and the role was assumed. DRS not
initialised in a region, or a region the account has not enabled, is information, not a
failure: the sync records such a scope as NOT_INITIALIZED / REGION_NOT_ENABLED.

Messages are chosen by error CODE, never by AWS's message text; AWS's text goes to the log
(with accountId, region and call), never into the answer. The external id is never logged
or returned; only its last four characters, as reads show them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inventory_sync.listing import status_for_error_code
from inventory_sync.models import ScopeStatus, SyncSettings
from shared.aws import (
    AccountAccess,
    ClientFactory,
    deployment_name,
    error_code,
    error_message,
    hub_source_identity,
    make_config,
)
from shared.config import drs_regions, hub_role_arn
from shared.exceptions import AssumeRoleError, ExternalIdMissingError
from shared.observability import get_logger
from shared.validation import EXTERNAL_ID_MIN_LENGTH

ROLE_ASSUMABLE = "roleAssumable"
EXTERNAL_ID_ACCEPTED = "externalIdAccepted"
DRS_READABLE = "drsReadable"
EC2_READABLE = "ec2Readable"

INITIALIZED = "INITIALIZED"
NOT_INITIALIZED = "NOT_INITIALIZED"
ACCESS_DENIED = "ACCESS_DENIED"
REGION_NOT_ENABLED = "REGION_NOT_ENABLED"
THROTTLED = "THROTTLED"
ERROR = "ERROR"
# Region answers that say something about the account, not about the role: not failures.
_INFORMATION = frozenset({INITIALIZED, NOT_INITIALIZED, REGION_NOT_ENABLED})
_REGION_STATUS = {
    ScopeStatus.NOT_INITIALIZED: NOT_INITIALIZED,
    ScopeStatus.ACCESS_DENIED: ACCESS_DENIED,
    ScopeStatus.REGION_NOT_ENABLED: REGION_NOT_ENABLED,
    ScopeStatus.THROTTLED: THROTTLED,
}
MAX_REGION_WORKERS = 8
EC2_SAMPLE = 5  # DescribeInstances' smallest MaxResults
ROLE_TEMPLATE = "cfn/target-account-role.yaml"
_SEE_LOG = "the function's log has the details"

logger = get_logger("data-management-handler")
FactoryMaker = Callable[[], ClientFactory]


def last4(external_id: object) -> str | None:
    """The last four characters of an external id as reads show them; None when there is
    none, or when it is shorter than the registry's minimum (four characters of a short,
    hand-made id give too much of it away)."""
    if not isinstance(external_id, str) or len(external_id) < EXTERNAL_ID_MIN_LENGTH:
        return None
    return external_id[-4:]


@dataclass(frozen=True)
class _RegionAnswer:
    region: str
    status: str
    code: str | None = None


def _new_factory() -> ClientFactory:
    # Few retries: an operator waits for the answer, and a throttled test is simply re-run.
    return ClientFactory(
        config=make_config(max_pool_connections=MAX_REGION_WORKERS + 2, max_attempts=2)
    )


def run_connection_test(
    account_id: str,
    role_arn: str | None,
    external_id: str | None,
    regions: list[str] | None = None,
    *,
    factory: ClientFactory | None = None,
) -> dict[str, Any]:
    """Test how the hub reaches `account_id` (see the module docstring for the answer).

    `regions` default to the function's DRS regions (DRS_REGIONS). `factory` defaults to a
    new ClientFactory on the execution environment's pool (a fresh AssumeRole every test).
    Raises ConfigurationError when DRS_REGIONS is unset; AWS failures become failed checks.
    """
    factory = factory or _new_factory()
    tested_regions = sorted(set(regions or drs_regions()))
    hub = account_id == factory.hub_account_id()
    test = _Test(factory, account_id, None if hub else role_arn, external_id, hub)
    return test.run(tested_regions)


class _Test:
    def __init__(
        self,
        factory: ClientFactory,
        account_id: str,
        role_arn: str | None,
        external_id: str | None,
        hub: bool,
    ) -> None:
        self.factory = factory
        self.account_id = account_id
        self.role_arn = role_arn
        self.external_id = external_id
        self.hub = hub
        self.checks: list[dict[str, Any]] = []

    def _check(self, name: str, ok: bool | None, message: str) -> None:
        self.checks.append({"check": name, "ok": ok, "message": message})

    def _aws_text(self, call: str, code: str, text: str, region: str | None = None) -> None:
        logger.warning(
            "connection test: AWS error",
            extra={
                "accountId": self.account_id,
                "region": region,
                "call": call,
                "errorCode": code,
                "error": text,
            },
        )

    def run(self, regions: list[str]) -> dict[str, Any]:
        answers: dict[str, str] = {}
        if self._connect():
            by_region = self._drs(regions)
            answers = {a.region: a.status for a in by_region}
            self._drs_check(by_region)
            self._ec2_check(by_region)
        else:
            for name in (DRS_READABLE, EC2_READABLE):
                self._check(name, None, "not run: the role could not be assumed")
        ok = self.checks[0]["ok"] is True and all(c["ok"] is not False for c in self.checks)
        result = {
            "accountId": self.account_id,
            "ok": ok,
            "hubAccount": self.hub,
            "roleArn": self.role_arn,
            "externalIdLast4": None if self.hub else last4(self.external_id),
            "checks": self.checks,
            "regions": answers,
        }
        logger.info(
            "connection test",
            extra={
                "accountId": self.account_id,
                "ok": ok,
                "failedChecks": [c["check"] for c in self.checks if c["ok"] is False],
                "regions": answers,
            },
        )
        return result

    # --- the role ------------------------------------------------------------------------------
    def _connect(self) -> bool:
        """Assume the role as the sync does; record roleAssumable and externalIdAccepted."""
        if self.hub:
            self.factory.register(AccountAccess(self.account_id))
            self._check(
                ROLE_ASSUMABLE, True, "the hub account is read with the function's own credentials"
            )
            self._check(EXTERNAL_ID_ACCEPTED, None, "not applicable: the hub assumes no role")
            return True
        if self.role_arn is None:
            self._check(ROLE_ASSUMABLE, False, "no roleArn is registered for the account")
            self._check(EXTERNAL_ID_ACCEPTED, None, "not run: no role to assume")
            return False
        self.factory.register(AccountAccess(self.account_id, self.role_arn, self.external_id))
        settings = SyncSettings.from_env()
        self.factory.identify(
            f"drs-account-test-{deployment_name()}-{uuid.uuid4().hex[:16]}",
            hub_source_identity() if settings.set_source_identity else None,
        )
        try:
            self.factory.connect(self.account_id)
        except ExternalIdMissingError:
            self._check(
                ROLE_ASSUMABLE, None, "not run: the hub assumes no role without an external id"
            )
            self._check(
                EXTERNAL_ID_ACCEPTED,
                False,
                "no external id is registered for the account: give it one (rotate_external_id, "
                "or update_target_account with externalId) and put it in the role's trust policy",
            )
            return False
        except AssumeRoleError as exc:
            self._aws_text("AssumeRole", exc.aws_error_code, str(exc))
            self._check(ROLE_ASSUMABLE, False, self._assume_role_message(exc.aws_error_code))
            self._check(
                EXTERNAL_ID_ACCEPTED,
                None,
                "unknown: STS refuses a wrong external id with the same answer as a role that "
                "does not exist or does not trust the hub",
            )
            return False
        self._check(ROLE_ASSUMABLE, True, f"the hub assumed {self.role_arn}")
        self._check(EXTERNAL_ID_ACCEPTED, True, "the role accepted the registered external id")
        return True

    def _assume_role_message(self, code: str) -> str:
        if code in ("AccessDenied", "AccessDeniedException"):
            ending = last4(self.external_id)
            registered = f"the registered one ends ...{ending}" if ending else "the registered one"
            return (
                f"the hub's role {self._hub_principal()} cannot assume {self.role_arn}: the role "
                "does not exist, does not trust the hub's role, or expects another external id "
                f"({registered}); AWS answers all three alike. Deploy {ROLE_TEMPLATE} in account "
                f"{self.account_id} with the hub's role ARN and this external id"
            )
        if code == "RegionDisabledException":
            return (
                f"STS is not activated in the hub's region {self.factory.home_region}; "
                "activate it in the hub account's IAM account settings"
            )
        if code in ("ExpiredToken", "InvalidClientTokenId", "UnrecognizedClientException"):
            return f"STS refused the hub's own credentials ({code}); {_SEE_LOG}"
        return f"AssumeRole of {self.role_arn} failed: STS answered {code}; {_SEE_LOG}"

    def _hub_principal(self) -> str:
        """The hub's role ARN as the target role's trust policy must name it (aws:PrincipalArn):
        HUB_ROLE_ARN (path included) where the stack sets it, else the assumed-role ARN STS
        reports, turned back into its role's ARN (STS does not show the path)."""
        configured = hub_role_arn()
        if configured is not None:
            return configured
        try:
            sts = self.factory.client("sts", self.factory.home_region)
            arn = str(sts.get_caller_identity()["Arn"])
        except (ClientError, BotoCoreError):
            return "(the function's role)"
        parts = arn.split(":", 5)
        if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
            role_name = parts[5].split("/")[1]
            return f"arn:{parts[1]}:iam::{parts[4]}:role/{role_name}"
        return arn

    # --- DRS -----------------------------------------------------------------------------------
    def _drs(self, regions: list[str]) -> list[_RegionAnswer]:
        workers = max(1, min(MAX_REGION_WORKERS, len(regions)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="account-test") as pool:
            return list(pool.map(self._drs_region, regions))

    def _drs_region(self, region: str) -> _RegionAnswer:
        try:
            client = self.factory.client("drs", region, self.account_id)
            client.describe_source_servers(maxResults=1)
        except ClientError as exc:
            code = error_code(exc)
            self._aws_text("DescribeSourceServers", code, error_message(exc), region)
            status = _REGION_STATUS.get(status_for_error_code(code), ERROR)
            return _RegionAnswer(region, status, code)
        except BotoCoreError as exc:
            code = type(exc).__name__
            self._aws_text("DescribeSourceServers", code, str(exc), region)
            return _RegionAnswer(region, ERROR, code)
        finally:
            self.factory.release("drs", region, self.account_id)
        return _RegionAnswer(region, INITIALIZED)

    def _drs_check(self, answers: list[_RegionAnswer]) -> None:
        policy = "the function's role's policy" if self.hub else "the role's policy"
        problems = []
        for answer in answers:
            if answer.status == ACCESS_DENIED:
                problems.append(
                    f"DRS access denied in {answer.region}: {policy} must allow "
                    "drs:DescribeSourceServers"
                )
            elif answer.status == THROTTLED:
                problems.append(f"DRS throttled the test in {answer.region}; test again later")
            elif answer.status == ERROR:
                problems.append(f"DRS answered {answer.code} in {answer.region}; {_SEE_LOG}")
        if problems:
            self._check(DRS_READABLE, False, "; ".join(problems))
            return
        initialised = [a.region for a in answers if a.status == INITIALIZED]
        notes = [f"DRS answered in {len(answers)} region(s)"]
        if initialised:
            notes.append(f"initialised in {', '.join(initialised)}")
        uninitialised = [a.region for a in answers if a.status == NOT_INITIALIZED]
        if uninitialised:
            notes.append(
                f"not initialised in {', '.join(uninitialised)} (the sync finds no servers there)"
            )
        disabled = [a.region for a in answers if a.status == REGION_NOT_ENABLED]
        if disabled:
            notes.append(f"region not enabled for the account: {', '.join(disabled)}")
        if not initialised:
            notes.append("DRS is initialised in none of the tested regions")
        self._check(DRS_READABLE, True, "; ".join(notes))

    # --- EC2 -----------------------------------------------------------------------------------
    def _ec2_check(self, answers: list[_RegionAnswer]) -> None:
        # One region: the first the account has enabled (EC2 answers there like DRS does).
        enabled = [a.region for a in answers if a.status != REGION_NOT_ENABLED]
        if not enabled:
            self._check(EC2_READABLE, None, "not run: no tested region is enabled for the account")
            return
        region = enabled[0]
        try:
            client = self.factory.client("ec2", region, self.account_id)
            client.describe_instances(MaxResults=EC2_SAMPLE)
        except ClientError as exc:
            code = error_code(exc)
            self._aws_text("DescribeInstances", code, error_message(exc), region)
            self._check(EC2_READABLE, False, self._ec2_message(code, region))
            return
        except BotoCoreError as exc:
            self._aws_text("DescribeInstances", type(exc).__name__, str(exc), region)
            self._check(
                EC2_READABLE,
                False,
                f"EC2 could not be reached in {region}, or did not answer in time",
            )
            return
        self._check(EC2_READABLE, True, f"DescribeInstances answered in {region}")

    def _ec2_message(self, code: str, region: str) -> str:
        status = status_for_error_code(code)
        if status is ScopeStatus.ACCESS_DENIED:
            policy = "the function's role's policy" if self.hub else "the role's policy"
            return (
                f"EC2 access denied in {region}: {policy} must allow ec2:DescribeInstances "
                "(the sync reads the details of replicated EC2 instances)"
            )
        if status is ScopeStatus.THROTTLED:
            return f"EC2 throttled the test in {region}; test again later"
        return f"EC2 answered {code} in {region}; {_SEE_LOG}"
