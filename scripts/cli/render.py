"""Pure rendering of the functions' answers: sync results, plans, the scope matrix, servers.

No AWS here: the unit tests feed these functions JSON answers and read the text back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from scripts.cli.output import Rows, cell, make_table

# Scope statuses the sync writes, and what they mean to someone reading the matrix.
HEALTHY_STATUSES = ("ACTIVE", "NOT_INITIALIZED", "REGION_NOT_ENABLED")
FAILED_STATUSES = ("ACCESS_DENIED", "THROTTLED", "ERROR")
STATUS_STYLES = {
    "ACTIVE": "green",
    "NOT_INITIALIZED": "dim",
    "REGION_NOT_ENABLED": "dim",
    "SKIPPED": "yellow",
    "ACCESS_DENIED": "red",
    "THROTTLED": "red",
    "ERROR": "red",
}
PLAN_KINDS = (
    # (key in the plan, symbol, words, rich style), in the order a scope lists them
    ("added", "+", "to add", "green"),
    ("changed", "~", "to change", "yellow"),
    ("softDeleted", "-", "to soft-delete", "red"),
    ("revived", "^", "to revive", "cyan"),
    ("held", "!", "held by the mass-deletion guard", "magenta"),
)
_ISO_DURATION = re.compile(
    r"P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?"
)


def format_age(seconds: Any) -> str:
    """A data age the way a person says it: 45s, 12m, 3h, 2d; "never" for None."""
    if seconds is None:
        return "never"
    seconds = max(0, int(float(seconds)))
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def server_id(arn: str) -> str:
    """The source server ID at the end of its ARN (…:source-server/s-…)."""
    return arn.rsplit("/", 1)[-1]


def duration_seconds(value: Any) -> float | None:
    """Seconds of an ISO-8601 duration as DRS writes them (PT3S, P1DT2H), else None."""
    match = _ISO_DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None or value in ("P", "PT"):
        return None
    days, hours, minutes = (int(match[k] or 0) for k in ("d", "h", "m"))
    return days * 86_400 + hours * 3_600 + minutes * 60 + float(match["s"] or 0)


def replication_lag_seconds(item: Mapping[str, Any]) -> float | None:
    """The server's replication lag from its raw DRS record (`drs.dataReplicationInfo`)."""
    info = (item.get("drs") or {}).get("dataReplicationInfo") or {}
    return duration_seconds(info.get("lagDuration"))


# ---- sync ----------------------------------------------------------------------------------


def sync_view(result: Mapping[str, Any]) -> RenderableType:
    """A sync result: one status line, the counts, and the failed scopes with why."""
    counts = result.get("counts") or {}
    status = str(result.get("status"))
    style = {"SUCCEEDED": "green", "PARTIAL": "yellow", "SKIPPED": "yellow"}.get(status, "red")
    headline = Text()
    headline.append(status, style=f"bold {style}")
    if result.get("dryRun"):
        headline.append(" (dry run: nothing written)")
    seconds = (result.get("durationMs") or 0) / 1000
    headline.append(
        f"  run {result.get('runId')}  started {result.get('startedAt')}  {seconds:.1f} s"
    )
    parts: list[RenderableType] = [headline]
    if result.get("skippedBecause"):
        parts.append(Text(f"skipped: {result['skippedBecause']}", style="yellow"))
    if counts:
        by_status = ", ".join(f"{k} {v}" for k, v in (counts.get("scopesByStatus") or {}).items())
        rows = [
            [
                "scopes",
                f"{counts.get('scopes', 0)} ({counts.get('accounts', 0)} accounts x "
                f"{counts.get('regions', 0)} regions): {by_status or 'none'}",
            ],
            ["scopes failed", counts.get("scopesFailed", 0)],
            ["servers seen", counts.get("serversSeen", 0)],
            [
                "  written / unchanged",
                f"{counts.get('serversWritten', 0)} / {counts.get('serversUnchanged', 0)}",
            ],
            [
                "  new / revived",
                f"{counts.get('serversNew', 0)} / {counts.get('serversRevived', 0)}",
            ],
            [
                "  soft-deleted / held",
                f"{counts.get('serversSoftDeleted', 0)} / {counts.get('serversHeld', 0)}",
            ],
            ["  write failures", counts.get("serversWriteFailed", 0)],
            ["records rejected", counts.get("recordsRejected", 0)],
            [
                "EC2 enriched / not found",
                f"{counts.get('ec2Enriched', 0)} / {counts.get('ec2NotFound', 0)}",
            ],
        ]
        swept = counts.get("unregisteredAccountsSwept") or []
        if swept:
            rows.append(["unregistered accounts swept", ", ".join(swept)])
        parts.append(make_table(["COUNT", "VALUE"], rows))
    failures = result.get("failures") or []
    if failures:
        parts.append(Text(f"\nfailed scopes ({len(failures)}):", style="bold"))
        parts.append(make_table(*failure_rows(failures)))
    return Group(*parts)


def failure_rows(failures: Sequence[Mapping[str, Any]]) -> Rows:
    headers = ["ACCOUNT", "REGION", "STATUS", "ERROR CODE", "MESSAGE"]
    rows = [
        [
            f.get("accountId"),
            f.get("region"),
            Text(str(f.get("status")), style=STATUS_STYLES.get(str(f.get("status")), "red")),
            f.get("errorCode"),
            f.get("message"),
        ]
        for f in failures
    ]
    return headers, rows


def sync_rows(result: Mapping[str, Any]) -> Rows:
    """CSV of a sync: one row per failed scope, after a row with the run's status."""
    headers = ["runId", "status", "accountId", "region", "scopeStatus", "errorCode", "message"]
    rows: list[list[Any]] = [[result.get("runId"), result.get("status"), "", "", "", "", ""]]
    for f in result.get("failures") or []:
        rows.append(
            [
                result.get("runId"),
                result.get("status"),
                f.get("accountId"),
                f.get("region"),
                f.get("status"),
                f.get("errorCode"),
                f.get("message"),
            ]
        )
    return headers, rows


# ---- plan ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanEntry:
    """One server of a plan: what happens to it, and (for a change) which fields."""

    kind: str
    arn: str
    hostname: str | None = None
    fields: tuple[str, ...] = ()

    @property
    def server_id(self) -> str:
        return server_id(self.arn)


def _entries(kind: str, block: Any) -> tuple[list[PlanEntry], int, int]:
    """(entries, count, more) of one kind in a scope, in either shape the sync has answered:
    `{"count", "arns": [ARN], "more"}` or `{"count", "servers": [{sourceServerArn, hostname,
    fields}], "more"}`."""
    if not isinstance(block, Mapping):
        return [], 0, 0
    entries: list[PlanEntry] = []
    for server in block.get("servers") or []:
        if isinstance(server, Mapping) and server.get("sourceServerArn"):
            entries.append(
                PlanEntry(
                    kind,
                    str(server["sourceServerArn"]),
                    server.get("hostname"),
                    tuple(str(f) for f in server.get("fields") or ()),
                )
            )
    for arn in block.get("arns") or []:
        entries.append(PlanEntry(kind, str(arn)))
    count = int(block.get("count", len(entries)))
    more = int(block.get("more", max(0, count - len(entries))))
    return entries, count, more


def normalise_plan(result: Mapping[str, Any]) -> dict[str, Any]:
    """The dry run's plan in one shape (servers as objects), with totals: what `plan
    --output json` prints, whichever shape the deployed sync answers."""
    plan = result.get("plan") or {}
    scopes = []
    totals = {key: 0 for key, *_ in PLAN_KINDS}
    for scope in plan.get("scopes") or []:
        out: dict[str, Any] = {"accountId": scope.get("accountId"), "region": scope.get("region")}
        for key, *_ in PLAN_KINDS:
            entries, count, more = _entries(key, scope.get(key))
            out[key] = {
                "count": count,
                "servers": [
                    {
                        "sourceServerArn": e.arn,
                        "sourceServerID": e.server_id,
                        **({"hostname": e.hostname} if e.hostname else {}),
                        **({"fields": list(e.fields)} if key == "changed" else {}),
                    }
                    for e in entries
                ],
                "more": more,
            }
            totals[key] += count
        scopes.append(out)
    unregistered = list(plan.get("unregistered") or [])
    totals["softDeleted"] += sum(int(u.get("softDeleted", 0)) for u in unregistered)
    given = plan.get("totals")
    if isinstance(given, Mapping):
        totals.update({k: int(v) for k, v in given.items() if k in totals})
    return {
        "status": result.get("status"),
        "runId": result.get("runId"),
        "dryRun": result.get("dryRun"),
        "totals": totals,
        "scopes": scopes,
        "moreScopes": int(plan.get("moreScopes") or 0),
        "unregistered": unregistered,
        "failures": list(result.get("failures") or []),
    }


def plan_lines(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The plan as (line, rich style) pairs, in the manner of `terraform plan`."""
    plan = normalise_plan(result)
    lines: list[tuple[str, str]] = []
    symbols = {key: (symbol, style) for key, symbol, _, style in PLAN_KINDS}
    for scope in plan["scopes"]:
        lines.append((f"# {scope['accountId']} {scope['region']}", "bold"))
        for key, *_ in PLAN_KINDS:
            block = scope[key]
            symbol, style = symbols[key]
            for server in block["servers"]:
                text = f"  {symbol} {server['sourceServerID']}"
                if server.get("hostname"):
                    text += f"  {server['hostname']}"
                if key == "changed" and server.get("fields"):
                    text += f"  ({', '.join(server['fields'])})"
                lines.append((text, style))
            if block["more"]:
                lines.append((f"  {symbol} ... and {block['more']} more", style))
        lines.append(("", ""))
    if plan["moreScopes"]:
        lines.append((f"# ... and {plan['moreScopes']} more scopes with changes", "bold"))
    for entry in plan["unregistered"]:
        lines.append(
            (
                f"- {entry.get('softDeleted', 0)} servers of unregistered account "
                f"{entry.get('accountId')} in {entry.get('region')}",
                "red",
            )
        )
    if not plan["scopes"] and not plan["unregistered"]:
        lines.append(("No changes. The inventory matches what DRS lists.", "green"))
    for failure in plan["failures"]:
        lines.append(
            (
                f"warning: {failure.get('accountId')} {failure.get('region')} "
                f"{failure.get('status')} {failure.get('errorCode')}: {failure.get('message')}",
                "yellow",
            )
        )
    totals = plan["totals"]
    lines.append(
        (
            "Plan: " + ", ".join(f"{totals[key]} {words}" for key, _, words, _ in PLAN_KINDS) + ".",
            "bold",
        )
    )
    return lines


def plan_view(result: Mapping[str, Any]) -> RenderableType:
    text = Text()
    for line, style in plan_lines(result):
        text.append(line + "\n", style=style or None)
    text.rstrip()
    return text


def plan_rows(plan: Mapping[str, Any]) -> Rows:
    """CSV of a normalised plan: one row per listed server."""
    headers = ["accountId", "region", "action", "sourceServerID", "hostname", "fields", "arn"]
    rows: list[list[Any]] = []
    for scope in plan.get("scopes") or []:
        for key, *_ in PLAN_KINDS:
            for server in scope[key]["servers"]:
                rows.append(
                    [
                        scope["accountId"],
                        scope["region"],
                        key,
                        server["sourceServerID"],
                        server.get("hostname", ""),
                        ";".join(server.get("fields") or []),
                        server["sourceServerArn"],
                    ]
                )
    return headers, rows


# ---- the scope matrix ----------------------------------------------------------------------


def is_stale(scope: Mapping[str, Any], minutes: float) -> bool:
    """Whether the scope's data is older than `minutes` (or never succeeded)."""
    age = scope.get("ageSeconds")
    return age is None or float(age) > minutes * 60


def filter_scopes(
    scopes: Iterable[Mapping[str, Any]],
    *,
    account: str | None = None,
    region: str | None = None,
    status: str | None = None,
    stale_minutes: float | None = None,
) -> list[Mapping[str, Any]]:
    return [
        s
        for s in scopes
        if (account is None or s.get("accountId") == account)
        and (region is None or s.get("region") == region)
        and (status is None or str(s.get("status")).upper() == status.upper())
        and (stale_minutes is None or is_stale(s, stale_minutes))
    ]


def scope_health(scope: Mapping[str, Any]) -> str:
    """healthy | stale | failed | skipped | none: what the matrix colours a scope by."""
    status = str(scope.get("status") or "")
    if not status:
        return "none"
    if status in FAILED_STATUSES:
        return "failed"
    if status == "SKIPPED":
        return "skipped"
    return "healthy" if scope.get("fresh") else "stale"


HEALTH_STYLES = {
    "healthy": "green",
    "stale": "yellow",
    "failed": "bold red",
    "skipped": "yellow",
    "none": "dim",
}


def matrix(
    scopes: Sequence[Mapping[str, Any]],
) -> tuple[list[str], list[str], dict[tuple[str, str], Mapping[str, Any]]]:
    """Accounts (rows), regions (columns) and the scope of each (account, region)."""
    cells = {(str(s["accountId"]), str(s["region"])): s for s in scopes}
    accounts = sorted({a for a, _ in cells})
    regions = sorted({r for _, r in cells})
    return accounts, regions, cells


def cell_text(scope: Mapping[str, Any] | None) -> str:
    if scope is None:
        return "-"
    count = scope.get("serverCount")
    parts = [str(scope.get("status"))]
    if count is not None:
        parts.append(str(count))
    parts.append(format_age(scope.get("ageSeconds")))
    text = " ".join(parts)
    if scope.get("errorCode"):
        text += f" ({scope['errorCode']})"
    return text


def matrix_view(
    scopes: Sequence[Mapping[str, Any]], names: Mapping[str, str] | None = None
) -> RenderableType:
    """Accounts x regions; each cell "STATUS SERVERS AGE", coloured by health."""
    accounts, regions, cells = matrix(scopes)
    if not accounts:
        return Text("no scopes match", style="yellow")
    rows = []
    for account in accounts:
        label = account + (f" {names[account]}" if names and names.get(account) else "")
        row: list[Any] = [label]
        for region in regions:
            scope = cells.get((account, region))
            style = HEALTH_STYLES[scope_health(scope) if scope else "none"]
            row.append(Text(cell_text(scope), style=style))
        rows.append(row)
    stale = sum(1 for s in scopes if not s.get("fresh"))
    table = make_table(["ACCOUNT", *regions], rows)
    legend = Text(
        f"{len(scopes)} scopes, {stale} not fresh.  cell: STATUS SERVERS AGE-OF-DATA; "
        "green fresh, yellow stale or skipped, red failed",
        style="dim",
    )
    return Group(table, legend)


def scope_rows(scopes: Sequence[Mapping[str, Any]]) -> Rows:
    headers = [
        "accountId",
        "region",
        "status",
        "serverCount",
        "ageSeconds",
        "fresh",
        "lastSuccessTime",
        "errorCode",
    ]
    return headers, [[cell(s.get(h)) for h in headers] for s in scopes]


# ---- servers -------------------------------------------------------------------------------

SERVER_COLUMNS = (
    "sourceServerID",
    "hostname",
    "accountId",
    "region",
    "replicationState",
    "lifeCycleState",
    "lag",
    "scopeFresh",
)


def server_row(item: Mapping[str, Any]) -> list[Any]:
    lag = replication_lag_seconds(item)
    fresh = item.get("scopeFresh")
    return [
        item.get("sourceServerID"),
        item.get("hostname"),
        item.get("accountId"),
        item.get("region"),
        item.get("replicationState"),
        item.get("lifeCycleState"),
        "" if lag is None else format_age(lag),
        Text("fresh", style="green")
        if fresh
        else Text("STALE", style="yellow")
        if fresh is False
        else "",
    ]


def servers_view(items: Sequence[Mapping[str, Any]]) -> RenderableType:
    if not items:
        return Text("no servers match", style="yellow")
    table = make_table([c.upper() for c in SERVER_COLUMNS], [server_row(i) for i in items])
    return Group(table, Text(f"{len(items)} servers", style="dim"))


def server_rows(items: Sequence[Mapping[str, Any]]) -> Rows:
    headers = [*SERVER_COLUMNS, "sourceServerArn"]
    rows = []
    for item in items:
        row = [cell(v) if not isinstance(v, Text) else v.plain for v in server_row(item)]
        rows.append([*row, item.get("sourceServerArn")])
    return headers, rows


def key_value_view(item: Mapping[str, Any], skip: Sequence[str] = ("drs",)) -> RenderableType:
    rows = [[key, cell(value)] for key, value in item.items() if key not in skip]
    return make_table(["FIELD", "VALUE"], rows)
