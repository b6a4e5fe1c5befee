"""The `sync_source_server_inventory` operation: DRS + EC2 -> inventory and region-status tables.

Stages, each in its own module:
  models      records that flow between stages (scope, scope result, settings, run)
  listing     one scope's DescribeSourceServers, fully paginated, status by error code
  enrichment  EC2 details from each server's origin account and region, in batches
  records     pure transforms: DRS record (+ EC2) -> inventory item, DynamoDB-safe
  store       DynamoDB: upserts in batches, scoped soft-deletes, region status, the lease
  sync        the run: plan, lease, concurrent scopes, sweep, summary, metrics
"""

from inventory_sync.sync import sync_source_server_inventory

__all__ = ["sync_source_server_inventory"]
