"""Parameters of sync_source_server_inventory (placeholder until the strict checks land)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.exceptions import InvalidParameterError
from shared.operations import Field, check_params

OPERATION = "sync_source_server_inventory"
PARAMS = {
    "accountIds": Field((list,), items=str),
    "regions": Field((list,), items=str),
    "dryRun": Field((bool,)),
    "confirmDeletions": Field((list,), items=dict),
}


@dataclass(frozen=True)
class SyncRequest:
    account_ids: tuple[str, ...] | None
    regions: tuple[str, ...] | None
    dry_run: bool
    confirm_deletions: frozenset[tuple[str, str]]


def parse_sync_params(params: Mapping[str, Any]) -> SyncRequest:
    check_params(OPERATION, params, PARAMS)
    confirm = set()
    for entry in params.get("confirmDeletions") or ():
        if set(entry) != {"accountId", "region"}:
            raise InvalidParameterError(
                f"{OPERATION}: every confirmDeletions entry must be {{accountId, region}}"
            )
        confirm.add((str(entry["accountId"]), str(entry["region"])))
    accounts = params.get("accountIds")
    regions = params.get("regions")
    return SyncRequest(
        tuple(sorted(set(accounts))) if accounts else None,
        tuple(sorted(set(regions))) if regions else None,
        bool(params.get("dryRun", False)),
        frozenset(confirm),
    )
