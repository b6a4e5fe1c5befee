"""`servers list` and `servers get`: the inventory's servers, through the query-handler.

A search covers every scope (account x region) unless narrowed: `list_source_servers`
answers organisation-wide, paged through nextToken. Every server listed carries its scope's
freshness (`scopeFresh`, `scopeAgeSeconds`): a server in a
stale or failed scope is what DRS said when that scope last synced, not now.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import click

from scripts.cli.context import Console, pass_console
from scripts.cli.errors import EXIT_USAGE, ConsoleError
from scripts.cli.paging import paged_items
from scripts.cli.render import key_value_view, server_rows, servers_view
from scripts.cli.status_commands import region_status

PAGE_LIMIT = 1000  # the query-handler's largest page


def parse_tags(values: Sequence[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for value in values:
        key, sep, tag_value = value.partition("=")
        if not sep or not key:
            raise ConsoleError(f"--tag takes KEY=VALUE, got {value!r}", EXIT_USAGE)
        tags[key] = tag_value
    return tags


def _freshness(scopes: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {(str(s["accountId"]), str(s["region"])): s for s in scopes}


def _mark(item: dict[str, Any], scope: Mapping[str, Any] | None) -> dict[str, Any]:
    item["scopeFresh"] = bool(scope.get("fresh")) if scope else False
    item["scopeAgeSeconds"] = scope.get("ageSeconds") if scope else None
    return item


def effective_tags(item: Mapping[str, Any]) -> dict[str, str]:
    """The server's EC2 instance tags overlaid by its DRS tags (the query-handler's rule:
    on the same key the DRS tag wins)."""
    return {**((item.get("ec2") or {}).get("tags") or {}), **(item.get("tags") or {})}


def list_servers(
    console: Console,
    *,
    account: str | None = None,
    region: str | None = None,
    tags: Mapping[str, str] | None = None,
    replication_state: str | None = None,
    hostname: str | None = None,
    include_deleted: bool = False,
    full: bool = True,
    progress: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Every server matching the filters, across all scopes (or the account/region given),
    each marked with its scope's freshness.

    One `list_source_servers` listing, paged through nextToken: the first tag is matched by
    the query-handler, any further tags here, with the same precedence. With `progress`,
    "PROGRESS: page N, M servers" on stderr while it reads (terminal only)."""
    scopes = region_status(console, account)["scopes"]
    freshness = _freshness(scopes)
    wanted = list((tags or {}).items())
    first_key, first_value = wanted[0] if wanted else (None, None)
    listed = paged_items(
        console.query,
        "list_source_servers",
        progress=progress,
        unit="servers",
        accountId=account,
        region=region,
        replicationState=replication_state,
        hostname=hostname,
        tagKey=first_key,
        tagValue=first_value,
        includeDeleted=True if include_deleted else None,
        limit=PAGE_LIMIT,
    )
    for item in listed:
        if wanted[1:]:
            have = effective_tags(item)
            if any(have.get(key) != value for key, value in wanted[1:]):
                continue
        if not full:
            item.pop("drs", None)
        yield _mark(item, freshness.get((str(item.get("accountId")), str(item.get("region")))))


@click.group()
def servers() -> None:
    """Find source servers in the inventory (org-wide)."""


@servers.command("list")
@click.option("--account", help="only this account's servers")
@click.option("--region", help="only this region's servers")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY=VALUE",
    help="effective tag (EC2 tags overlaid by DRS tags); repeatable, all must match",
)
@click.option("--replication-state", help="e.g. CONTINUOUS, STALLED, DISCONNECTED")
@click.option("--hostname", help="case-insensitive substring of the hostname")
@click.option("--include-deleted", is_flag=True, help="also soft-deleted servers")
@click.option("--full", is_flag=True, help="JSON: keep each server's raw DRS record (`drs`)")
@pass_console
def list_command(
    console: Console,
    account: str | None,
    region: str | None,
    tags: tuple[str, ...],
    replication_state: str | None,
    hostname: str | None,
    include_deleted: bool,
    full: bool,
) -> None:
    """List servers matching every filter given, across all scopes. Each carries its
    scope's freshness (`scopeFresh`, `scopeAgeSeconds`)."""
    items = list(
        list_servers(
            console,
            account=account,
            region=region,
            tags=parse_tags(tags),
            replication_state=replication_state,
            hostname=hostname,
            include_deleted=include_deleted,
            full=full or console.output.format != "json",
            progress="listing servers",
        )
    )
    console.output.emit(items, table=servers_view, rows=server_rows)


@servers.command("get")
@click.argument("server")
@click.option("--account", help="narrow a source server ID to this account")
@click.option("--region", help="narrow a source server ID to this region")
@click.option("--include-deleted", is_flag=True, help="also a soft-deleted server")
@pass_console
def get_command(
    console: Console, server: str, account: str | None, region: str | None, include_deleted: bool
) -> None:
    """One server by its ARN or its source server ID (s-...)."""
    key = "sourceServerArn" if server.startswith("arn:") else "sourceServerID"
    answer = console.query(
        "get_source_server",
        **{key: server},
        accountId=account,
        region=region,
        includeDeleted=True if include_deleted else None,
    )
    item = answer.get("item") if isinstance(answer, dict) else None
    if not isinstance(item, dict):
        raise ConsoleError(f"get_source_server answered {answer!r}")
    console.output.emit(item, table=key_value_view)


def register(group: click.Group) -> None:
    group.add_command(servers)
