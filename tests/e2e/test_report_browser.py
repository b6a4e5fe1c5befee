"""The HTML report as a person sees it: rendered by a real headless Chromium.

The report is fed by a real sync (the multi-account World: moto + the DRS simulator, the
sync's own code) and read through the query-handler, by the same code `drs-inventory
report` runs (`gather_report`), with the functions called in process instead of invoked.
Chromium is Debian's `chromium` package, driven by playwright pointed at that executable
(playwright never downloads a browser here); `.ci/run` installs it when it is missing. A
machine without it fails this test, with the command that installs it, rather than skip it.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from scripts.cli.client import Target
from scripts.cli.context import Console
from scripts.cli.output import Output
from scripts.cli.report_commands import gather_report
from scripts.local import fleet
from tests.support.handlers import load_handler
from tests.support.world import HUB, REGIONS, TARGET_A, TARGET_B, World

pytestmark = pytest.mark.e2e

HOSTILE = "<script>window.__injected = 1</script>"
FAILED_SCOPE = (TARGET_B, "eu-west-1")
STALE_SCOPE = (HUB, "us-west-2")
HEALTHY_SCOPE = (TARGET_A, "us-east-1")


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail(
            "Debian's chromium is not installed: apt-get install -y chromium "
            "(.ci/run installs it when it is missing)"
        )
    return found


class InProcess:
    """The deployed functions' handlers, called in this process (a FunctionClient)."""

    def invoke(self, handler: str, payload: Mapping[str, Any], *, log_sink: Any = None) -> Any:
        return load_handler(handler).handle_direct_invocation(dict(payload), None)

    def close(self) -> None:
        pass


@pytest.fixture
def report_file(world: World, tmp_path: Path) -> Path:
    for account in (HUB, TARGET_A, TARGET_B):
        for region in REGIONS:
            world.add_servers(account, region, 4)
    hostile = fleet.make_source_server(
        TARGET_A, "us-east-1", index=90, seed=7, hostname=HOSTILE, tags={"Owner": HOSTILE},
        replication_state="STALLED",
    )  # fmt: skip
    world.simulator.add_source_servers(TARGET_A, "us-east-1", [hostile])
    world.fault(*FAILED_SCOPE, "AccessDeniedException")
    result = world.sync()
    assert result["status"] == "PARTIAL", result
    # A scope whose last success was three hours ago: healthy status, stale data.
    three_hours_ago = (datetime.now(UTC) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    boto3.resource("dynamodb").Table(world.tables.region_status).update_item(
        Key={"accountId": STALE_SCOPE[0], "region": STALE_SCOPE[1]},
        UpdateExpression="SET lastSuccessTime = :t",
        ExpressionAttributeValues={":t": three_hours_ago},
    )
    console = Console(Target("test", local=True), Output())
    console._client = InProcess()
    page, scopes, servers = gather_report(console, lag_threshold_seconds=3600)
    # every scope listed but the failed one, and the hostile server
    assert scopes == len(REGIONS) * 3 and servers == 4 * (len(REGIONS) * 3 - 1) + 1
    path = tmp_path / "estate.html"
    path.write_text(page, encoding="utf-8")
    return path


def test_the_report_shows_every_scope_and_colours_failed_and_stale_apart(
    report_file: Path,
) -> None:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium(), headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda m: problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None,
            )
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(report_file.as_uri())

            cells = page.locator("#matrix td.cell")
            seen = {
                (cell.get_attribute("data-account"), cell.get_attribute("data-region"))
                for cell in cells.all()
            }
            assert seen == {(a, r) for a in (HUB, TARGET_A, TARGET_B) for r in REGIONS}
            assert all(cell.is_visible() for cell in cells.all())

            def cell(scope: tuple[str, str]) -> Any:
                return page.locator(
                    f'#matrix td.cell[data-account="{scope[0]}"][data-region="{scope[1]}"]'
                )

            def colour(scope: tuple[str, str]) -> str:
                return str(cell(scope).evaluate("e => getComputedStyle(e).backgroundColor"))

            assert cell(FAILED_SCOPE).get_attribute("data-status") == "ACCESS_DENIED"
            assert int(cell(STALE_SCOPE).get_attribute("data-age-seconds") or 0) >= 3 * 3600
            healthy, failed, stale = (colour(s) for s in (HEALTHY_SCOPE, FAILED_SCOPE, STALE_SCOPE))
            assert len({healthy, failed, stale}) == 3, (healthy, failed, stale)
            assert "AccessDeniedException" in page.locator("#failing-scopes").inner_text()

            # The hostile hostname is text on the page, never markup that ran.
            attention = page.locator("#attention").inner_text()
            assert HOSTILE in attention
            assert page.evaluate("window.__injected") is None
            assert page.locator("script").count() == 1

            # Clicking a cell narrows the attention list to that scope.
            cell(HEALTHY_SCOPE).click()
            visible_rows = page.locator("#attention tbody tr:not(.hidden)")
            assert visible_rows.count() >= 1
            assert {row.get_attribute("data-account") for row in visible_rows.all()} == {
                HEALTHY_SCOPE[0]
            }
        finally:
            browser.close()

    assert problems == []
    assert requests == [report_file.as_uri()]  # nothing fetched: one self-contained file
