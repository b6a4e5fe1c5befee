"""The embedded moto server survives concurrent writers and readers (it serialises moto)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config


def test_concurrent_batch_writes_and_scans_on_one_table(tables) -> None:
    client = boto3.client("dynamodb", config=Config(max_pool_connections=16))

    def write(worker: int) -> int:
        for batch in range(4):
            requests = [
                {
                    "PutRequest": {
                        "Item": {
                            "sourceServerArn": {"S": f"arn:w{worker}:b{batch}:i{i}"},
                            "accountId": {"S": "123456789012"},
                            "region": {"S": "us-east-1"},
                        }
                    }
                }
                for i in range(25)
            ]
            client.batch_write_item(RequestItems={tables.inventory: requests})
            client.scan(TableName=tables.inventory, Select="COUNT")
        return worker

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sorted(pool.map(write, range(8))) == list(range(8))

    paginator = client.get_paginator("scan")
    count = sum(page["Count"] for page in paginator.paginate(TableName=tables.inventory))
    assert count == 8 * 4 * 25
