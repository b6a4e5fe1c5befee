"""The JSON fast path for DescribeSourceServers pages returns what botocore's parser does."""

from __future__ import annotations

from inventory_sync.listing import use_fast_page_parsing
from scripts.local import fleet
from scripts.local.drs_simulator import DrsSimulator
from tests.support.drs import drs_client


def test_fast_parsing_equals_botocore_parsing(drs_simulator: DrsSimulator) -> None:
    servers = fleet.generate_fleet(
        "123456789012",
        "us-east-1",
        40,
        ec2_fraction=0.5,
        extended_fraction=0.25,
        staging_account_ids=["999988887777"],
    )
    drs_simulator.add_source_servers("123456789012", "us-east-1", servers)
    plain = drs_client(drs_simulator.endpoint)
    fast = drs_client(drs_simulator.endpoint)
    use_fast_page_parsing(fast)
    use_fast_page_parsing(fast)  # idempotent: a second install changes nothing

    for page_size in (7, 40):
        expected = plain.describe_source_servers(maxResults=page_size)
        got = fast.describe_source_servers(maxResults=page_size)
        assert got["items"] == expected["items"]
        assert got.get("nextToken") == expected.get("nextToken")
        assert len(got["items"]) == page_size
