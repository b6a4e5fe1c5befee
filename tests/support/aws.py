"""Build test resources from the templates, so tests and CloudFormation share one schema."""

from __future__ import annotations

from typing import Any

import boto3

from shared.config import TableNames
from tests.support.cfn import load_template, resources_of_type

# Logical id in cfn/dynamodb-stack.yaml -> TableNames field
TABLE_RESOURCES = {
    "SourceServerInventoryTable": "inventory",
    "DrsRegionStatusTable": "region_status",
    "TargetAccountsTable": "target_accounts",
    "SyncLeaseTable": "sync_lease",
}


def table_names_for(environment: str, project: str = "aws-drs-orchestration") -> TableNames:
    template = load_template("dynamodb-stack.yaml")
    names: dict[str, str] = {}
    for logical_id, field in TABLE_RESOURCES.items():
        pattern = template["Resources"][logical_id]["Properties"]["TableName"]["Fn::Sub"]
        names[field] = pattern.replace("${ProjectName}", project).replace(
            "${Environment}", environment
        )
    return TableNames(**names)


def create_tables_from_template(environment: str = "test", region: str = "us-east-1") -> TableNames:
    """Create the three tables in the current endpoint with the template's keys and indexes."""
    template = load_template("dynamodb-stack.yaml")
    names = table_names_for(environment)
    client = boto3.client("dynamodb", region_name=region)
    for logical_id, resource in resources_of_type(template, "AWS::DynamoDB::Table").items():
        props = resource["Properties"]
        kwargs: dict[str, Any] = {
            "TableName": getattr(names, TABLE_RESOURCES[logical_id]),
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props["BillingMode"],
        }
        if "GlobalSecondaryIndexes" in props:
            kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        client.create_table(**kwargs)
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            client.update_time_to_live(
                TableName=kwargs["TableName"],
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
    return names
