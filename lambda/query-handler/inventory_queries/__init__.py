"""Read-only queries over the source-server inventory and the region-status tables.

Modules:
  reader          the only DynamoDB access: GetItem, BatchGetItem, Query, Scan (paged)
  expressions     placeholders for key conditions and filters
  paging          honest pages (limit, 5 MB budget, deadline) and opaque tokens
  matching        pure predicates: effective tags (DRS over EC2), hostname, deletion
  freshness       age of a scope's data and the fresh/stale threshold
  jsonable        DynamoDB values (Decimal, sets, Binary) -> JSON values
  params          value checks of parameters
  servers         list_source_servers, get_source_server
  status          get_region_status, get_inventory_summary
  tag_resolution  resolve_servers_by_tags
"""

from inventory_queries.servers import get_source_server, list_source_servers
from inventory_queries.status import get_inventory_summary, get_region_status
from inventory_queries.tag_resolution import resolve_servers_by_tags

__all__ = [
    "get_inventory_summary",
    "get_region_status",
    "get_source_server",
    "list_source_servers",
    "resolve_servers_by_tags",
]
