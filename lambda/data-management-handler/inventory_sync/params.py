"""The parameters of `sync_source_server_inventory`, parsed once into a SyncRequest.

All are optional: `{"operation": "sync_source_server_inventory"}` (the schedule's event) is a
full run. Input is strict (DESIGN, "Input is matched strictly"):

  accountIds        non-empty list of account ids, 12 ASCII digits each, matched in full
  regions           non-empty list of region names (syntax only: whether the function syncs
                    them is checked against DRS_REGIONS by the run, which knows the list)
  dryRun            a JSON boolean: compute and report, write nothing
  confirmDeletions  non-empty list of objects, each exactly {"accountId": ..., "region": ...}:
                    release soft-deletes held by the mass-deletion guard in those scopes
  shard             a name (1-32 of a-z, 0-9, -) for one of several runs that together
                    cover an estate too large for one invocation (README, "Where one
                    invocation ends"): needs accountIds, holds a lease of its own
                    ("inventory-sync#NAME"), so shards of one fan-out run side by side
  sweepOnly         a JSON boolean: list nothing, only sweep what no registered account
                    accounts for (the fan-out's last step); nothing else may be given

A parameter given as null is refused, not read as absent (omit it for the default), so a
caller's `"accountIds": null` can never widen a narrowed run to every account. Duplicates
collapse; lists are returned sorted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.exceptions import InvalidParameterError
from shared.operations import Field, check_params
from shared.validation import ACCOUNT_ID, REGION, SHARD

OPERATION = "sync_source_server_inventory"
# Generous bounds (an organisation's accounts, every region twice over) that still stop a
# runaway caller from making the plan or an error message enormous.
MAX_ACCOUNT_IDS = 10_000
MAX_REGIONS = 100
MAX_CONFIRMED_SCOPES = 10_000

PARAMS = {
    "accountIds": Field((list,), items=str, pattern=ACCOUNT_ID, max_items=MAX_ACCOUNT_IDS),
    "regions": Field((list,), items=str, pattern=REGION, max_items=MAX_REGIONS),
    "dryRun": Field((bool,)),
    "confirmDeletions": Field((list,), items=dict, max_items=MAX_CONFIRMED_SCOPES),
    "shard": Field((str,), pattern=SHARD),
    "sweepOnly": Field((bool,)),
}
# A sweep-only run lists nothing: nothing that narrows or confirms a listing goes with it.
NOT_WITH_SWEEP_ONLY = ("accountIds", "regions", "confirmDeletions", "shard")
CONFIRMATION = {
    "accountId": Field((str,), required=True, pattern=ACCOUNT_ID),
    "region": Field((str,), required=True, pattern=REGION),
}


@dataclass(frozen=True)
class SyncRequest:
    """What one sync invocation asks for.

    account_ids / regions: None means "all" (every registered account, every configured
    region); otherwise the sorted, de-duplicated ids / names given.
    confirm_deletions: the (accountId, region) scopes whose held soft-deletes are released.
    shard: the name of this run's own lease (one shard of a fan-out), or None.
    sweep_only: list nothing, only sweep.
    """

    account_ids: tuple[str, ...] | None
    regions: tuple[str, ...] | None
    dry_run: bool
    confirm_deletions: frozenset[tuple[str, str]]
    shard: str | None = None
    sweep_only: bool = False

    @property
    def narrowed(self) -> bool:
        """True when the run was limited to some accounts and/or regions."""
        return self.account_ids is not None or self.regions is not None


def parse_sync_params(params: Mapping[str, Any]) -> SyncRequest:
    """Check the event's parameters and return them as a SyncRequest.

    Raises InvalidParameterError naming the parameter (and the item, for a list) and listing
    the valid parameters; an invocation refused here writes nothing.
    """
    check_params(OPERATION, params, PARAMS)
    if params.get("sweepOnly"):
        given = [name for name in NOT_WITH_SWEEP_ONLY if name in params]
        if given:
            raise InvalidParameterError(
                f"{OPERATION}: sweepOnly lists nothing, so it takes no {', '.join(given)}"
            )
    if "shard" in params and "accountIds" not in params:
        raise InvalidParameterError(
            f"{OPERATION}: shard needs accountIds (the accounts this shard of the estate covers)"
        )
    return SyncRequest(
        account_ids=_sorted_unique(params.get("accountIds")),
        regions=_sorted_unique(params.get("regions")),
        dry_run=params.get("dryRun", False),
        confirm_deletions=frozenset(
            _confirmation(index, item)
            for index, item in enumerate(params.get("confirmDeletions", ()))
        ),
        shard=params.get("shard"),
        sweep_only=params.get("sweepOnly", False),
    )


def _sorted_unique(values: list[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(sorted(set(values)))


def _confirmation(index: int, item: Mapping[str, Any]) -> tuple[str, str]:
    check_params(f"{OPERATION}: confirmDeletions[{index}]", item, CONFIRMATION)
    return item["accountId"], item["region"]
