"""`report --html FILE`: the estate at a glance, in one self-contained HTML file."""

from __future__ import annotations

from pathlib import Path

import click

from scripts.cli.context import Console, pass_console
from scripts.cli.output import stderr_console
from scripts.cli.server_commands import list_servers
from scripts.cli.status_commands import account_names, region_status

DEFAULT_LAG_THRESHOLD = "1h"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """'90s', '15m', '1h', '2d' or plain seconds -> seconds."""
    text = text.strip().lower()
    try:
        if text and text[-1] in _UNITS:
            return float(text[:-1]) * _UNITS[text[-1]]
        return float(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not a duration like 90s, 15m, 1h") from exc


@click.command()
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="write the report to this file",
)
@click.option(
    "--lag-threshold",
    default=DEFAULT_LAG_THRESHOLD,
    show_default=True,
    help="replication lag beyond which a server needs attention (90s, 15m, 1h, 2d)",
)
@click.option("--account", help="one account's part of the estate")
@pass_console
def report(console: Console, html_file: Path, lag_threshold: str, account: str | None) -> None:
    """Write one self-contained HTML file (no network): the accounts x regions heatmap
    coloured by status and age, replication health per account, failing scopes with their
    codes, and the servers that need attention. Prints the file's path."""
    threshold = parse_duration(lag_threshold)
    page, scopes, servers = gather_report(console, lag_threshold_seconds=threshold, account=account)
    html_file.parent.mkdir(parents=True, exist_ok=True)
    html_file.write_text(page, encoding="utf-8")
    stderr_console().print(f"report: {scopes} scopes, {servers} servers")
    click.echo(str(html_file.resolve()))


def gather_report(
    console: Console, *, lag_threshold_seconds: float, account: str | None = None
) -> tuple[str, int, int]:
    """Read region status and every live server through the query-handler and build the
    page. Returns (html, scopes, servers)."""
    from scripts.cli.html_report import build_report

    status = region_status(console, account)
    items = list(list_servers(console, account=account, progress="reading the inventory"))
    target = console.target
    page = build_report(
        status=status,
        items=items,
        lag_threshold_seconds=lag_threshold_seconds,
        title=f"DRS inventory: {target.project} {target.env}"
        + (" (local AWS)" if target.local else ""),
        names=account_names(console),
    )
    return page, len(status.get("scopes") or []), len(items)


def register(group: click.Group) -> None:
    group.add_command(report)
