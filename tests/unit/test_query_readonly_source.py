"""The query-handler's code contains no DynamoDB (or other AWS) write call.

The source under lambda/query-handler is tokenized (comments dropped, code and strings
kept) and every identifier and string literal is checked against the names of write
operations, in boto3's snake_case and the API's PascalCase. A string counts too, because
`getattr(table, "put_item")` or `client.meta.method_to_api_mapping` would reach a write by
name. The scanner proves it can see writes on a sample and on the data-management-handler.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

from tests.support.handlers import LAMBDA_DIR

QUERY_HANDLER = LAMBDA_DIR / "query-handler"

# Every DynamoDB operation that changes data or tables, as the API names them.
DYNAMODB_WRITES = {
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
    "ExecuteStatement",  # PartiQL: INSERT/UPDATE/DELETE
    "BatchExecuteStatement",
    "ExecuteTransaction",
    "CreateTable",
    "UpdateTable",
    "DeleteTable",
    "UpdateTimeToLive",
    "RestoreTableFromBackup",
    "RestoreTableToPointInTime",
    "ImportTable",
    "CreateBackup",
    "DeleteBackup",
    "CreateGlobalTable",
    "UpdateGlobalTable",
    "UpdateContinuousBackups",
    "TagResource",
    "UntagResource",
    "PutResourcePolicy",
    "DeleteResourcePolicy",
}
# boto3 resource helpers that write without naming an operation.
RESOURCE_WRITERS = {"batch_writer", "put_item", "update_item", "delete_item", "delete", "put"}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


FORBIDDEN = DYNAMODB_WRITES | {_snake(name) for name in DYNAMODB_WRITES} | RESOURCE_WRITERS
# Generic write verbs of any AWS client (e.g. sqs send_message, s3 put_object, events put_events).
WRITE_PREFIX = re.compile(r"^(put|update|delete|create|batch_write|transact_write|send)_[a-z_]+$")


def write_references(source: str) -> list[str]:
    """Identifiers and string literals in `source` that name a write (comments ignored)."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NAME:
            words = [token.string]
        elif token.type == tokenize.STRING:  # f-strings included, expressions and all
            words = re.findall(r"[A-Za-z_]+", token.string)
        else:
            continue
        found += [w for w in words if w in FORBIDDEN or WRITE_PREFIX.match(w)]
    return found


def sources(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(LAMBDA_DIR)): path.read_text() for path in sorted(folder.rglob("*.py"))
    }


def test_the_query_handler_source_has_no_write_call() -> None:
    files = sources(QUERY_HANDLER)
    assert "query-handler/index.py" in files and len(files) > 5
    offenders = {name: refs for name, text in files.items() if (refs := write_references(text))}
    assert offenders == {}


def test_the_query_handler_imports_nothing_that_writes() -> None:
    imported: set[str] = set()
    for text in sources(QUERY_HANDLER).values():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    allowed = {"__future__", "inventory_queries", "shared", "boto3", "botocore"}
    third_party = {name for name in imported if name not in allowed}
    # Only the standard library beyond that (no inventory_sync, target_accounts, ...).
    assert all(name in __import__("sys").stdlib_module_names for name in third_party), third_party


@pytest.mark.parametrize(
    "snippet",
    [
        "table.put_item(Item=item)",
        "client.batch_write_item(RequestItems={})",
        "with table.batch_writer() as batch: pass",
        "getattr(table, 'update_item')(Key=key)",
        "client.execute_statement(Statement='DELETE FROM t')",
        "client._make_api_call('TransactWriteItems', {})",
        "sqs.send_message(QueueUrl=url, MessageBody='x')",
    ],
)
def test_the_scanner_sees_writes(snippet: str) -> None:
    assert write_references(snippet)


def test_the_scanner_ignores_comments_and_sees_the_writer_handler() -> None:
    assert write_references("x = 1  # put_item is not called here\n") == []
    assert write_references("table.query(KeyConditionExpression=k)\n") == []
    writer = "\n".join(sources(LAMBDA_DIR / "data-management-handler").values())
    assert {"put_item", "batch_write_item", "update_item", "delete_item"} <= set(
        write_references(writer)
    )
