"""`sync` and `plan`: the inventory sync as the schedule runs it, and its dry run as a plan."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from scripts.cli.context import Console, pass_console
from scripts.cli.errors import EXIT_FAILED, EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE, ConsoleError
from scripts.cli.output import stderr_console
from scripts.cli.render import normalise_plan, plan_rows, plan_view, sync_rows, sync_view

SYNC_OPERATION = "sync_source_server_inventory"
RUN_EXIT = {"SUCCEEDED": EXIT_OK, "PARTIAL": EXIT_INCOMPLETE, "SKIPPED": EXIT_INCOMPLETE}


def split_list(values: Sequence[str]) -> list[str] | None:
    """Repeated and comma-separated values as one list (None when none were given)."""
    items = [part.strip() for value in values for part in value.split(",") if part.strip()]
    return items or None


def parse_confirmations(values: Sequence[str]) -> list[dict[str, str]] | None:
    """ACCOUNT:REGION pairs as the sync's `confirmDeletions` objects."""
    confirmations = []
    for value in split_list(values) or []:
        account, sep, region = value.partition(":")
        if not sep or not account or not region:
            raise ConsoleError(
                f"--confirm-deletions takes ACCOUNT:REGION (e.g. 111122223333:us-east-1), "
                f"got {value!r}",
                EXIT_USAGE,
            )
        confirmations.append({"accountId": account, "region": region})
    return confirmations or None


@contextmanager
def running(title: str) -> Iterator[Callable[[str], None]]:
    """Elapsed time (and, where the log is visible, scopes finished) on stderr while the
    sync runs. Yields a log sink for the function's log lines. Stdout stays for the result."""
    console = stderr_console()
    done = failed = 0
    began = time.monotonic()

    if not console.is_terminal:
        console.print(f"{title} ...")

        def quiet(line: str) -> None:
            pass

        yield quiet
        console.print(f"{title}: answered in {time.monotonic() - began:.1f} s")
        return

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(title, total=None)

        def on_line(line: str) -> None:
            nonlocal done, failed
            record = _log_record(line)
            if record is None or record.get("message") != "scope synced":
                return
            done += 1
            failed += bool(record.get("errorCode"))
            progress.update(
                task,
                description=f"{title}: {done} scopes finished ({failed} failed), last "
                f"{record.get('accountId')} {record.get('region')} {record.get('status')}",
            )

        yield on_line
    console.print(f"{title}: answered in {time.monotonic() - began:.1f} s")


def _log_record(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def invoke_sync(console: Console, title: str, **params: Any) -> dict[str, Any]:
    with running(title) as on_line:
        result = console.manage(SYNC_OPERATION, log_sink=on_line, **params)
    if not isinstance(result, dict):
        raise ConsoleError(f"{SYNC_OPERATION} answered {result!r}, not a result object")
    return result


_account_ids = click.option(
    "--account-ids", multiple=True, metavar="ID[,ID...]", help="only these accounts (repeatable)"
)
_regions = click.option(
    "--regions", multiple=True, metavar="REGION[,REGION...]", help="only these regions"
)


@click.command()
@_account_ids
@_regions
@click.option(
    "--confirm-deletions",
    multiple=True,
    metavar="ACCOUNT:REGION",
    help="release the soft-deletes the mass-deletion guard holds in this scope (repeatable)",
)
@click.option("--dry-run", is_flag=True, help="compute and report, write nothing (see `plan`)")
@pass_console
def sync(
    console: Console,
    account_ids: tuple[str, ...],
    regions: tuple[str, ...],
    confirm_deletions: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Run sync_source_server_inventory now, as the schedule would.

    Shows the elapsed time while it runs (on stderr), then the counts and every failed
    scope with its status, error code and why. Exit 0 SUCCEEDED, 4 PARTIAL or SKIPPED,
    1 FAILED or refused.
    """
    result = invoke_sync(
        console,
        "sync",
        accountIds=split_list(account_ids),
        regions=split_list(regions),
        confirmDeletions=parse_confirmations(confirm_deletions),
        dryRun=True if dry_run else None,
    )
    console.output.emit(result, table=sync_view, rows=sync_rows)
    sys.exit(RUN_EXIT.get(str(result.get("status")), EXIT_FAILED))


@click.command()
@_account_ids
@_regions
@pass_console
def plan(console: Console, account_ids: tuple[str, ...], regions: tuple[str, ...]) -> None:
    """What a sync would change now, per scope, like `terraform plan`.

    \b
      + added       a server DRS lists that the inventory lacks
      ~ changed     a stored server whose content changed (the fields named)
      - soft-deleted  a live server DRS no longer lists
      ^ revived     a soft-deleted server DRS lists again
      ! held        a soft-delete the mass-deletion guard holds (release: sync
                    --confirm-deletions ACCOUNT:REGION)

    A dry run: nothing is written. `--output json` prints the plan in one shape (servers as
    objects, totals). Exit 0 when every scope could be planned, 4 when some could not.
    """
    result = invoke_sync(
        console,
        "plan",
        accountIds=split_list(account_ids),
        regions=split_list(regions),
        dryRun=True,
    )
    normalised = normalise_plan(result)
    console.output.emit(normalised, table=lambda _: plan_view(result), rows=plan_rows)
    sys.exit(RUN_EXIT.get(str(result.get("status")), EXIT_FAILED))


def register(group: click.Group) -> None:
    group.add_command(sync)
    group.add_command(plan)
