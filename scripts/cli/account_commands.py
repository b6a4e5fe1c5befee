"""`accounts ...`: the target-account registry, through the data-management-handler.

Each subcommand is one operation of the function; an operation this deployment does not
have yet (`test_target_account`, `discover_target_accounts`, `rotate_external_id` arrive
with the connection test and discovery) comes back as the function's UnknownOperationError,
shown as it is, exit 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click
from rich.console import Group, RenderableType
from rich.text import Text

from scripts.cli.context import Console, pass_console
from scripts.cli.output import Rows, cell, make_table, stderr_console
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
    items: list[dict[str, Any]] = []
    token = None
    while True:
        page = console.manage(
            "list_target_accounts", enabledOnly=True if enabled_only else None, nextToken=token
        )
        items += page.get("items") or []
        token = page.get("nextToken")
        if not token:
            break
    console.output.emit(items, table=_accounts_view, rows=_account_rows)


@accounts.command("get")
@click.argument("account_id")
@pass_console
def get_account(console: Console, account_id: str) -> None:
    """One registered account."""
    console.output.emit(console.manage("get_target_account", accountId=account_id), table=_one)


def _registry_options(command: Any) -> Any:
    for option in reversed(
        [
            click.option("--role-arn", help="the role the hub assumes in the account"),
            click.option("--external-id", help="sts:ExternalId (generated when not given)"),
            click.option("--name", "account_name", help="a name for people"),
            click.option(
                "--ec2-source-account-id",
                "ec2_sources",
                multiple=True,
                help="a registered account whose EC2 instances this account's DRS replicates",
            ),
        ]
    ):
        command = option(command)
    return command


@accounts.command("add")
@click.argument("account_id")
@_registry_options
@click.option("--disabled", is_flag=True, help="register it without syncing it yet")
@pass_console
def add_account(
    console: Console,
    account_id: str,
    role_arn: str | None,
    external_id: str | None,
    account_name: str | None,
    ec2_sources: tuple[str, ...],
    disabled: bool,
) -> None:
    """Register (onboard) a target account. The external id is shown in full only now."""
    answer = console.manage(
        "add_target_account",
        accountId=account_id,
        roleArn=role_arn,
        externalId=external_id,
        accountName=account_name,
        enabled=False if disabled else None,
        ec2SourceAccountIds=list(ec2_sources) or None,
    )
    console.output.emit(answer, table=_one)


@accounts.command("update")
@click.argument("account_id")
@_registry_options
@click.option("--enable/--disable", "enabled", default=None, help="sync it or not")
@pass_console
def update_account(
    console: Console,
    account_id: str,
    role_arn: str | None,
    external_id: str | None,
    account_name: str | None,
    ec2_sources: tuple[str, ...],
    enabled: bool | None,
) -> None:
    """Change a registered account's fields (only those given)."""
    answer = console.manage(
        "update_target_account",
        accountId=account_id,
        roleArn=role_arn,
        externalId=external_id,
        accountName=account_name,
        enabled=enabled,
        ec2SourceAccountIds=list(ec2_sources) or None,
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


@accounts.command("test")
@click.argument("account_id")
@pass_console
def test_account(console: Console, account_id: str) -> None:
    """Check the hub can assume the account's role and read DRS there (test_target_account)."""
    console.output.emit(console.manage("test_target_account", accountId=account_id), table=_one)


@accounts.command("discover")
@pass_console
def discover_accounts(console: Console) -> None:
    """Accounts the hub could register (discover_target_accounts)."""
    answer = console.manage("discover_target_accounts")

    def view(data: Any) -> RenderableType:
        if isinstance(data, Mapping) and isinstance(data.get("items"), list):
            return Group(_accounts_view(data["items"]))
        return _one(data)

    console.output.emit(answer, table=view)


@accounts.command("rotate-external-id")
@click.argument("account_id")
@pass_console
def rotate_external_id(console: Console, account_id: str) -> None:
    """A new external id for the account (shown in full once; update the role's trust)."""
    console.output.emit(console.manage("rotate_external_id", accountId=account_id), table=_one)


def register(group: click.Group) -> None:
    group.add_command(accounts)
