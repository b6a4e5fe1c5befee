"""The inventory sync lives in the data-management-handler's operation map, and only there.

The earlier system scheduled this operation against the query-handler, where it did not
exist; these checks make that impossible to reintroduce unnoticed.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.handlers import LAMBDA_DIR, load_handler

SYNC = "sync_source_server_inventory"


def test_sync_is_in_the_data_management_handler_operation_map() -> None:
    operations = load_handler("data-management-handler").OPERATIONS
    assert SYNC in operations
    assert operations[SYNC].__module__.startswith("inventory_sync")


def test_nothing_under_query_handler_defines_or_calls_the_sync() -> None:
    offenders = [
        str(path.relative_to(LAMBDA_DIR))
        for path in (LAMBDA_DIR / "query-handler").rglob("*.py")
        if re.search(r"sync_source_server_inventory|inventory_sync", path.read_text())
    ]
    assert offenders == []


def test_the_query_handler_folder_exists_so_the_check_above_means_something() -> None:
    assert (Path(LAMBDA_DIR) / "query-handler" / "index.py").is_file()
