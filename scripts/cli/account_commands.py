"""`accounts ...`: the target-account registry, through the data-management-handler.

Each subcommand is one operation of the function (add/get/list/update/delete_target_account,
test_target_account, rotate_external_id, discover_target_accounts); an operation an older
deployment does not have comes back as the function's UnknownOperationError, shown as it
is, exit 1.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import click
from rich.console import Group, RenderableType
from rich.text import Text

from scripts.cli.context import Console, pass_console
from scripts.cli.output import Rows, cell, make_table, stderr_console
from scripts.cli.paging import paged_items
from scripts.cli.render import key_value_view

ACCOUNT_COLUMNS = (
    "accountId",
    "accountName",
    "enabled",
    "roleArn",
    "externalIdSet",
    "externalIdLast4",
    "ec2SourceAccountIds",
    "updatedAt",
)


def _account_rows(items: Any) -> Rows:
    rows = [[cell(item.get(c)) for c in ACCOUNT_COLUMNS] for item in items or []]
    return list(ACCOUNT_COLUMNS), rows


def _accounts_view(items: Any) -> RenderableType:
    if not items:
        return Text("no target accounts registered (the hub account is always synced)")
    headers, rows = _account_rows(items)
    return make_table([h.upper() for h in headers], rows)


def _one(answer: Any) -> RenderableType:
    if isinstance(answer, Mapping) and isinstance(answer.get("account"), Mapping):
        return key_value_view(answer["account"])
    return key_value_view(answer) if isinstance(answer, Mapping) else cell(answer)


@click.group()
def accounts() -> None:
    """The registry of target accounts the sync reads."""


@accounts.command("list")
@click.option("--enabled-only", is_flag=True)
@pass_console
def list_accounts(console: Console, enabled_only: bool) -> None:
    """Every registered target account (all pages)."""
    items = list(
        paged_items(
            console.manage, "list_target_accounts", enabledOnly=True if enabled_only else None
        )
    )
    console.output.emit(items, table=_accounts_view, rows=_account_rows)


@accounts.command("get")
@click.argument("account_id")
@pass_console
def get_account(console: Console, account_id: str) -> None:
    """One registered account."""
    console.output.emit(console.manage("get_target_account", accountId=account_id), table=_one)


_REGISTRY_OPTIONS = (
    click.option("--role-arn", help="the role the hub assumes in the account"),
    click.option("--external-id", help="sts:ExternalId (generated when not given)"),
    click.option("--name", "account_name", help="a name for people"),
    click.option(
        "--ec2-source-account-id",
        "ec2_sources",
        multiple=True,
        help="a registered account whose EC2 instances this account's DRS replicates",
    ),
    click.option(
        "--skip-connection-test",
        is_flag=True,
        help="write without testing the role first (the test runs by default)",
    ),
)


def _registry_fields(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options `accounts add` and `accounts update` share, handed to `command` as one
    `fields` argument: the registry fields given, named as the function takes them (a field
    not given is None, which the payload leaves out)."""

    @functools.wraps(command)
    def with_fields(
        *args: Any,
        role_arn: str | None,
        external_id: str | None,
        account_name: str | None,
        ec2_sources: tuple[str, ...],
        skip_connection_test: bool,
        **kwargs: Any,
    ) -> Any:
        fields = {
            "roleArn": role_arn,
            "externalId": external_id,
            "accountName": account_name,
            "ec2SourceAccountIds": list(ec2_sources) or None,
            "skipConnectionTest": skip_connection_test or None,
        }
        return command(*args, fields=fields, **kwargs)

    for option in reversed(_REGISTRY_OPTIONS):
        with_fields = option(with_fields)
    return with_fields


@accounts.command("add")
@click.argument("account_id")
@_registry_fields
@click.option("--disabled", is_flag=True, help="register it without syncing it yet")
@pass_console
def add_account(console: Console, account_id: str, fields: dict[str, Any], disabled: bool) -> None:
    """Register (onboard) a target account. The external id is shown in full only now."""
    answer = console.manage(
        "add_target_account",
        accountId=account_id,
        enabled=False if disabled else None,
        **fields,
    )
    console.output.emit(answer, table=_one)


@accounts.command("update")
@click.argument("account_id")
@_registry_fields
@click.option("--enable/--disable", "enabled", default=None, help="sync it or not")
@pass_console
def update_account(
    console: Console, account_id: str, fields: dict[str, Any], enabled: bool | None
) -> None:
    """Change a registered account's fields (only those given)."""
    answer = console.manage(
        "update_target_account", accountId=account_id, enabled=enabled, **fields
    )
    console.output.emit(answer, table=_one)


@accounts.command("disable")
@click.argument("account_id")
@pass_console
def disable_account(console: Console, account_id: str) -> None:
    """Stop syncing an account but keep its servers in the inventory (as they were)."""
    answer = console.manage("update_target_account", accountId=account_id, enabled=False)
    console.output.emit(answer, table=_one)


def live_servers_of(console: Console, account_id: str) -> int:
    """Live inventory servers of the account, from the query-handler's summary."""
    summary = console.query("get_inventory_summary", accountId=account_id)
    return int(summary.get("totalServers") or 0)


@accounts.command("delete")
@click.argument("account_id")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@pass_console
def delete_account(console: Console, account_id: str, yes: bool) -> None:
    """Deregister an account. Its servers are soft-deleted by the next full sync: the
    impact is shown first and confirmation asked (unless --yes). To keep them, disable it."""
    console.manage("get_target_account", accountId=account_id)  # refuses an unknown account
    servers = live_servers_of(console, account_id)
    err = stderr_console()
    err.print(
        f"Deleting {account_id} from the registry: the next full sync will soft-delete its "
        f"{servers} live inventory servers (TTL removes them later).\n"
        f"To stop syncing it but keep its servers: drs-inventory accounts disable {account_id}"
    )
    if not yes and not click.confirm("Delete it?", default=False, err=True):
        raise click.Abort()
    answer = console.manage("delete_target_account", accountId=account_id)
    if isinstance(answer, dict):
        answer = {**answer, "serversToSoftDelete": servers}
    console.output.emit(answer, table=_one)


def connection_test_view(answer: Any) -> RenderableType:
    """test_target_account's answer: one row per check, then each region's DRS answer."""
    if not isinstance(answer, Mapping) or not isinstance(answer.get("checks"), list):
        return _one(answer)
    marks = {True: "ok", False: "FAILED", None: "-"}
    verdict = "passed" if answer.get("ok") else "FAILED"
    rows = [
        [check.get("check"), marks.get(check.get("ok"), "-"), check.get("message", "")]
        for check in answer["checks"]
    ]
    checks = make_table(
        ["CHECK", "RESULT", "MESSAGE"],
        rows,
        title=f"connection test of {answer.get('accountId')}: {verdict}",
    )
    regions = answer.get("regions") or {}
    if not regions:
        return checks
    return Group(checks, make_table(["REGION", "DRS"], sorted(regions.items())))


@accounts.command("test")
@click.argument("account_id")
@click.option("--region", "regions", multiple=True, help="test only this region (repeatable)")
@click.option("--role-arn", help="try this role instead of the registered one (not saved)")
@click.option("--external-id", help="try this external id instead of the registered one")
@pass_console
def test_account(
    console: Console,
    account_id: str,
    regions: tuple[str, ...],
    role_arn: str | None,
    external_id: str | None,
) -> None:
    """Check the hub can assume the account's role and read DRS there (test_target_account).
    Exit 1 when a check failed."""
    answer = console.manage(
        "test_target_account",
        accountId=account_id,
        regions=list(regions) or None,
        roleArn=role_arn,
        externalId=external_id,
    )
    console.output.emit(answer, table=connection_test_view)
    if isinstance(answer, Mapping) and answer.get("ok") is False:
        raise click.exceptions.Exit(1)


def discovery_rows(answer: Any) -> Rows:
    """discover_target_accounts' plan (and outcomes, when applied): one row per account."""
    headers = ["action", "accountId", "name", "state", "roleArn", "result"]
    plan = answer.get("plan", {}) if isinstance(answer, Mapping) else {}
    outcomes = {
        o.get("accountId"): o
        for o in (answer.get("results") or [] if isinstance(answer, Mapping) else [])
    }
    rows: list[list[Any]] = []
    groups = (
        ("register", "toRegister"),
        ("disable", "toDisable"),
        ("none (registered)", "alreadyRegistered"),
        ("none (not in the organization)", "notInOrganization"),
        ("skip", "skipped"),
    )
    for action, key in groups:
        for entry in plan.get(key) or []:
            outcome = outcomes.get(entry.get("accountId"))
            result = ""
            if outcome is not None:
                error = outcome.get("error") or {}
                result = "ok" if outcome.get("ok") else f"FAILED {error.get('code', '')}"
            rows.append(
                [
                    action,
                    entry.get("accountId"),
                    entry.get("accountName", ""),
                    entry.get("state") or entry.get("reason", ""),
                    entry.get("roleArn", ""),
                    result,
                ]
            )
    return headers, [[cell(v) for v in row] for row in rows]


def _discovery_view(answer: Any) -> RenderableType:
    headers, rows = discovery_rows(answer)
    applied = isinstance(answer, Mapping) and answer.get("applied")
    title = "discovery (applied)" if applied else "discovery plan (nothing written; --apply)"
    parts: list[RenderableType] = [make_table([h.upper() for h in headers], rows, title=title)]
    if isinstance(answer, Mapping) and answer.get("externalIdGenerated"):
        parts.append(
            Text(
                f"external id of the accounts registered (shown only now): {answer['externalId']}",
                style="bold",
            )
        )
    return Group(*parts)


@accounts.command("discover")
@click.option("--apply", is_flag=True, help="carry the plan out (default: show it only)")
@click.option("--role-name", help="the role name in every account (drs-orchestration-...)")
@click.option(
    "--organizations-role-arn",
    help="a role in the management account that may list its accounts",
)
@click.option("--external-id", help="one external id for every account registered (StackSet's)")
@click.option("--skip-connection-test", is_flag=True, help="register without testing roles")
@pass_console
def discover_accounts(
    console: Console,
    apply: bool,
    role_name: str | None,
    organizations_role_arn: str | None,
    external_id: str | None,
    skip_connection_test: bool,
) -> None:
    """The organization's accounts compared with the registry (discover_target_accounts):
    what to register, to disable, and what is already there. Exit 1 when an applied
    change failed."""
    answer = console.manage(
        "discover_target_accounts",
        apply=apply or None,
        roleName=role_name,
        organizationsRoleArn=organizations_role_arn,
        externalId=external_id,
        skipConnectionTest=skip_connection_test or None,
    )
    console.output.emit(answer, table=_discovery_view, rows=discovery_rows)
    results = answer.get("results") or [] if isinstance(answer, Mapping) else []
    if any(not result.get("ok") for result in results):
        raise click.exceptions.Exit(1)


@accounts.command("rotate-external-id")
@click.argument("account_id")
@pass_console
def rotate_external_id(console: Console, account_id: str) -> None:
    """A new external id for the account (shown in full once; update the role's trust)."""
    console.output.emit(console.manage("rotate_external_id", accountId=account_id), table=_one)


def register(group: click.Group) -> None:
    group.add_command(accounts)
