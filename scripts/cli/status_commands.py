"""`status` (the scope matrix) and `summary`, from the query-handler."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click
from rich.console import Group, RenderableType
from rich.text import Text

from scripts.cli.context import Console, pass_console
from scripts.cli.errors import EXIT_FAILED, ConsoleError
from scripts.cli.output import Rows, cell, make_table
from scripts.cli.paging import paged_items
from scripts.cli.render import HEALTH_STYLES, filter_scopes, matrix_view, scope_health, scope_rows


def region_status(console: Console, account: str | None = None) -> dict[str, Any]:
    answer = console.query("get_region_status", accountId=account)
    if not isinstance(answer, dict) or not isinstance(answer.get("scopes"), list):
        raise ConsoleError(f"get_region_status answered {answer!r}, not {{'scopes': [...]}}")
    return answer


def account_names(console: Console) -> dict[str, str]:
    """accountId -> accountName of the registered target accounts (best effort: the
    matrix is still right without names)."""
    names: dict[str, str] = {}
    try:
        for item in paged_items(console.manage, "list_target_accounts"):
            if item.get("accountName"):
                names[str(item["accountId"])] = str(item["accountName"])
    except ConsoleError:
        pass  # the names of the pages read are still right
    return names


@click.command()
@click.option("--account", help="one account's scopes")
@click.option("--region", "region_filter", help="one region's scopes")
@click.option("--status", "status_filter", help="only scopes with this status (e.g. ERROR)")
@click.option(
    "--stale",
    type=click.FloatRange(min=0),
    metavar="MINUTES",
    help="only scopes whose data is older than MINUTES (or never synced)",
)
@pass_console
def status(
    console: Console,
    account: str | None,
    region_filter: str | None,
    status_filter: str | None,
    stale: float | None,
) -> None:
    """The scope matrix: accounts as rows, regions as columns; each cell the scope's status,
    server count and the age of its data (since its last successful sync).

    --output json/csv list the scopes (as get_region_status answers them), filtered.
    """
    answer = region_status(console, account)
    scopes = answer["scopes"]
    if region_filter and scopes and region_filter not in {s["region"] for s in scopes}:
        synced = ", ".join(sorted({s["region"] for s in scopes}))
        raise ConsoleError(f"no scope in region {region_filter}; regions synced: {synced}")
    chosen = filter_scopes(scopes, region=region_filter, status=status_filter, stale_minutes=stale)
    names = account_names(console) if console.output.format == "table" else {}

    def table(_: Any) -> RenderableType:
        header = Text(
            f"as of {answer.get('asOf')}; fresh = latest sync healthy and data at most "
            f"{answer.get('freshnessSeconds')} s old",
            style="dim",
        )
        return Group(header, matrix_view(chosen, names))

    console.output.emit(list(chosen), table=table, rows=scope_rows)


def summary_view(answer: Mapping[str, Any]) -> RenderableType:
    totals = make_table(
        ["", ""],
        [
            ["servers (live)", answer.get("totalServers")],
            ["soft-deleted", answer.get("softDeletedServers")],
            [
                "scopes",
                f"{answer.get('scopeCount')}: "
                + ", ".join(f"{k} {v}" for k, v in (answer.get("scopesByStatus") or {}).items()),
            ],
            ["fresh scopes", answer.get("freshScopes")],
            [
                "oldest last success",
                f"{answer.get('oldestLastSuccessTime')} "
                f"{cell(answer.get('oldestLastSuccessScope'))}",
            ],
        ],
    )

    def counts(title: str, key: str) -> Any:
        rows = [[k, v] for k, v in (answer.get(key) or {}).items()]
        return make_table([title, "SERVERS"], rows)

    stale = answer.get("staleScopes") or []
    parts: list[RenderableType] = [
        totals,
        Text(""),
        counts("ACCOUNT", "byAccount"),
        Text(""),
        counts("REGION", "byRegion"),
        Text(""),
        counts("REPLICATION STATE", "byReplicationState"),
    ]
    if stale:
        rows = [
            [
                s["accountId"],
                s["region"],
                Text(str(s.get("status")), style=HEALTH_STYLES[scope_health(s)]),
                s.get("errorCode"),
                s.get("errorMessage"),
            ]
            for s in stale
        ]
        parts += [
            Text(f"\nscopes not fresh ({len(stale)}):", style="bold"),
            make_table(["ACCOUNT", "REGION", "STATUS", "ERROR CODE", "MESSAGE"], rows),
        ]
    return Group(*parts)


def summary_rows(answer: Mapping[str, Any]) -> Rows:
    rows: list[list[Any]] = []
    for group in ("byAccount", "byRegion", "byReplicationState"):
        rows += [[group, key, value] for key, value in (answer.get(group) or {}).items()]
    rows.append(["total", "live", answer.get("totalServers")])
    rows.append(["total", "softDeleted", answer.get("softDeletedServers")])
    return ["group", "key", "servers"], rows


@click.command()
@click.option("--account", help="one account's part of the inventory")
@pass_console
def summary(console: Console, account: str | None) -> None:
    """Totals of the inventory: servers by account, region and replication state, and the
    scopes that are not fresh."""
    answer = console.query("get_inventory_summary", accountId=account)
    if not isinstance(answer, dict):
        raise ConsoleError(f"get_inventory_summary answered {answer!r}", EXIT_FAILED)
    console.output.emit(answer, table=summary_view, rows=summary_rows)


def register(group: click.Group) -> None:
    group.add_command(status)
    group.add_command(summary)
