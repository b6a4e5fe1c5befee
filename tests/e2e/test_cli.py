"""`drs-inventory` as an operator runs it, against the embedded local AWS.

One local stack per module: deployed with scripts/deploy.sh (from a copy of the tree), the
demo's organisation seeded (4 accounts x 4 regions, 318 servers, one throttled scope, one
where DRS was never initialised), its target accounts registered with `accounts add`. Every
command runs as a subprocess with the variables `python -m scripts.local.stack` prints
(AWS_ENDPOINT_URL on 127.0.0.1 makes the console local). Tests run in file order: the plan
before the first sync, then the sync, then the reads.
"""

from __future__ import annotations

import csv
import io
import json
import re
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scripts.demo import (
    FLEET,
    HUB,
    REGIONS,
    TARGET_ACCOUNTS,
    Organisation,
    seed_organisation,
    throttle_scope,
)
from scripts.local.stack import LocalStack
from scripts.package_lambda import requirements_dir
from tests.support.deploy import ROOT, copy_repo, deploy_env, run_deploy

pytestmark = pytest.mark.e2e

ENV = "qa"
LISTABLE = 288  # the demo's 318 servers less the 30 of the throttled scope
PAYMENTS = "111122223333"
SHARED = "777788889999"


@dataclass(frozen=True)
class Console:
    """Runs `python -m scripts.cli` (what .venv/bin/drs-inventory runs) against the stack."""

    env: dict[str, str]

    def __call__(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "scripts.cli", *args],
            cwd=ROOT,
            env=env or self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def json(self, *args: str) -> Any:
        result = self("--output", "json", *args)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    requirements_dir()  # fill the real tree's build cache (downloads only the first time)
    repo = copy_repo(tmp_path_factory.mktemp("cli") / "repo")
    with LocalStack(log_dir=tmp_path_factory.mktemp("cli-logs")) as stack:
        deployed = run_deploy(
            ENV,
            "--endpoint-url",
            stack.moto_endpoint,
            root=repo,
            env=deploy_env(DRS_REGIONS=",".join(REGIONS)),
        )
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        seed_organisation(stack.moto_endpoint, stack.control)
        organisation = Organisation(stack.moto_endpoint)
        hub_role_arn = organisation.hub_role_arn()
        assert HUB.account_id in hub_role_arn
        run = Console(
            deploy_env(
                AWS_ENDPOINT_URL=stack.moto_endpoint,
                AWS_ENDPOINT_URL_DRS=stack.drs_endpoint,
                DRS_INVENTORY_STATE_DIR=str(tmp_path_factory.mktemp("cli-state")),
            )
        )
        for account in TARGET_ACCOUNTS:
            sources = sorted(
                {s.origin.account_id for s in FLEET if s.account == account and s.origin}
                - {account.account_id}
            )
            # Onboarded as an operator does: the hub generates the external id and shows it
            # once, then the account's role is made from cfn/target-account-role.yaml with it.
            added = run.json(
                "accounts", "add", account.account_id, "--role-arn", account.role_arn,
                "--name", account.name,
                *(arg for source in sources for arg in ("--ec2-source-account-id", source)),
            )  # fmt: skip
            organisation.deploy_role(account, hub_role_arn, added["externalId"])
            tested = run.json("accounts", "test", account.account_id)
            assert tested["ok"] is True, tested
        throttle_scope(stack.control)
        yield run


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_command_is_installed_by_make_venv() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["drs-inventory"] == "scripts.cli.main:main"
    assert "pip install --quiet --no-deps -e ." in (ROOT / "Makefile").read_text()
    installed = ROOT / ".venv" / "bin" / "drs-inventory"
    assert installed.exists(), "run `make venv`: it installs drs-inventory into .venv/bin"

    result = subprocess.run(
        [str(installed), "--help"], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    for status in ("0  done", "2  usage error", "3  the deployment cannot be reached"):
        assert status in result.stdout


def test_plan_before_the_first_sync_adds_every_listable_server(console: Console) -> None:
    result = console("--output", "json", "plan")

    assert result.returncode == 4, result.stderr  # PARTIAL: one scope throttled
    plan = json.loads(result.stdout)
    assert plan["totals"] == {
        "added": LISTABLE, "changed": 0, "softDeleted": 0, "revived": 0, "held": 0
    }  # fmt: skip
    by_scope = {(s["accountId"], s["region"]): s for s in plan["scopes"]}
    assert by_scope[(PAYMENTS, "us-east-1")]["added"]["count"] == 60
    assert [f["errorCode"] for f in plan["failures"]] == ["ThrottlingException"]


def test_plan_reads_like_terraform(console: Console) -> None:
    result = console("plan", "--regions", "us-west-2", "--account-ids", PAYMENTS)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"# {PAYMENTS} us-west-2"
    # each server with its hostname (the dry run names both)
    assert sum(1 for line in lines if re.fullmatch(r"  \+ s-[0-9a-f]{17}  \S+", line)) == 36
    assert lines[-1].startswith("Plan: 36 to add, 0 to change, 0 to soft-delete")
    assert "plan: answered in" in result.stderr


def test_sync_runs_as_the_schedule_and_names_the_failed_scope(console: Console) -> None:
    result = console("sync")

    assert result.returncode == 4, result.stderr  # PARTIAL
    assert result.stdout.startswith("PARTIAL  run ")
    assert re.search(rf"servers seen\s+{LISTABLE}\b", result.stdout)
    assert re.search(r"444455556666\s+eu-west-1\s+THROTTLED\s+ThrottlingException", result.stdout)
    assert "sync: answered in" in result.stderr and "sync" not in result.stdout.split()[0]


def test_plan_after_the_sync_has_no_changes(console: Console) -> None:
    plan = console.json("plan", "--regions", "us-east-1")

    assert plan["totals"] == dict.fromkeys(
        ("added", "changed", "softDeleted", "revived", "held"), 0
    )
    assert plan["status"] == "SUCCEEDED"


def test_status_is_a_matrix_of_every_scope(console: Console) -> None:
    result = console("status")

    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if line.startswith("ACCOUNT"))
    assert header.split()[1:] == sorted(REGIONS)
    assert re.search(r"444455556666 retail-prod\s.*THROTTLED 0 never", result.stdout)
    assert re.search(rf"{PAYMENTS} payments-prod\s+ACTIVE 0 \d+s\s+ACTIVE 24 ", result.stdout)

    rows = list(csv.DictReader(io.StringIO(console("--output", "csv", "status").stdout)))
    assert len(rows) == 16
    throttled = console.json("status", "--status", "THROTTLED")
    assert [(s["accountId"], s["region"]) for s in throttled] == [("444455556666", "eu-west-1")]
    assert console.json("status", "--stale", "60") == throttled  # never succeeded: stale


def test_org_wide_tag_search_marks_each_server_with_its_scope_freshness(
    console: Console,
) -> None:
    servers = console.json("servers", "list", "--tag", "Owner=payments-prod")

    # payments' own servers, and shared-services' that replicate payments' instances
    assert {s["accountId"] for s in servers} == {PAYMENTS, SHARED}
    for server in servers:
        tags = {**(server.get("ec2") or {}).get("tags", {}), **(server.get("tags") or {})}
        assert tags["Owner"] == "payments-prod"
        assert server["scopeFresh"] is True and server["scopeAgeSeconds"] is not None
        assert "drs" not in server  # bulky: only with --full

    stalled = console.json(
        "servers", "list", "--tag", "Owner=payments-prod", "--tag", "Environment=prod",
        "--replication-state", "STALLED", "--account", PAYMENTS,
    )  # fmt: skip
    assert stalled and all(s["replicationState"] == "STALLED" for s in stalled)

    table = console("servers", "list", "--account", SHARED, "--region", "us-west-2")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[-1] == "20 servers"


def test_servers_get_by_id(console: Console) -> None:
    (first, *_) = console.json("servers", "list", "--account", PAYMENTS, "--region", "eu-west-1")

    item = console.json("servers", "get", first["sourceServerID"])

    assert item["sourceServerArn"] == first["sourceServerArn"]


def test_summary_and_query(console: Console) -> None:
    result = console("--output", "json", "--query", "totalServers", "summary")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == LISTABLE
    table = console("summary")
    assert re.search(rf"servers \(live\)\s+{LISTABLE}", table.stdout)


def test_accounts_list(console: Console) -> None:
    accounts = console.json("accounts", "list")

    assert {(a["accountId"], a["accountName"]) for a in accounts} == {
        (a.account_id, a.name) for a in TARGET_ACCOUNTS
    }


def test_report_writes_one_self_contained_page(console: Console, tmp_path: Path) -> None:
    page_file = tmp_path / "estate.html"

    result = console("report", "--html", str(page_file))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(page_file)
    page = page_file.read_text()
    assert len(re.findall(r'<td class="cell [^"]*"[^>]* data-account=', page)) == 16
    assert 'data-account="444455556666" data-region="eu-west-1" data-status="THROTTLED"' in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)


def test_delete_shows_its_impact_and_asks(console: Console) -> None:
    declined = console("accounts", "delete", SHARED, input="n\n")

    assert declined.returncode == 1
    assert re.search(r"soft-delete its\s+60 live inventory servers", declined.stderr)
    assert f"drs-inventory accounts disable {SHARED}" in declined.stderr
    assert console.json("accounts", "get", SHARED)["account"]["accountId"] == SHARED

    spare = "999988887777"
    added = console(
        "accounts", "add", spare, "--role-arn", f"arn:aws:iam::{spare}:role/drs-orchestration-x",
        "--disabled",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    deleted = console("--output", "json", "accounts", "delete", spare, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(deleted.stdout)["serversToSoftDelete"] == 0


# ---- misuse --------------------------------------------------------------------------------


def test_an_environment_not_deployed_is_named(console: Console) -> None:
    result = console("--env", "prod", "status")

    assert result.returncode == 3
    assert "aws-drs-orchestration-query-handler-prod is not deployed" in result.stderr


def test_an_unreachable_endpoint_is_named_as_such(console: Console) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    env = {**console.env, "AWS_ENDPOINT_URL": url}

    result = console("status", env=env)

    assert result.returncode == 3
    assert f"endpoint {url} is unreachable" in result.stderr
    assert "credential" not in result.stderr.lower()


def test_an_unknown_region_is_refused(console: Console) -> None:
    listed = console("servers", "list", "--region", "eu-nowhere-1")
    assert listed.returncode == 1
    assert "InvalidParameterError" in listed.stderr and "eu-nowhere-1" in listed.stderr

    status = console("status", "--region", "eu-nowhere-1")
    assert status.returncode == 1
    assert "no scope in region eu-nowhere-1" in status.stderr


def test_a_bad_account_id_shows_the_function_error(console: Console) -> None:
    result = console("accounts", "get", "12345")

    assert result.returncode == 1
    assert "InvalidParameterError" in result.stderr and "12345" in result.stderr

    synced = console("sync", "--account-ids", "not-an-account", "--dry-run")
    assert synced.returncode == 1
    assert "InvalidParameterError" in synced.stderr


def test_usage_errors_exit_2(console: Console) -> None:
    assert console("--env", "nope", "status").returncode == 2
    assert console("--query", "[?", "status").returncode == 2
    assert console("sync", "--confirm-deletions", "111122223333").returncode == 2


def test_accounts_test_shows_each_check(console: Console) -> None:
    result = console("accounts", "test", PAYMENTS)

    assert result.returncode == 0, result.stderr
    assert f"connection test of {PAYMENTS}: passed" in result.stdout
    assert re.search(r"^roleAssumable +ok ", result.stdout, re.M)
    assert re.search(r"^us-east-1 +INITIALIZED$", result.stdout, re.M)


def test_accounts_test_of_a_wrong_external_id_fails_and_says_why(console: Console) -> None:
    wrong = "not-the-id-the-role-trusts-" + "x" * 10

    result = console("accounts", "test", PAYMENTS, "--external-id", wrong)

    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"^roleAssumable +FAILED ", result.stdout, re.M)
    assert "expects another external id" in " ".join(result.stdout.split())  # table folds it
    assert wrong not in result.stdout + result.stderr  # only its last four characters


def test_a_dry_discovery_shows_the_plan_and_writes_nothing(console: Console) -> None:
    """moto answers ListAccounts with no accounts where no organization exists (AWS answers
    AWSOrganizationsNotInUseException): every registered account is then one the organization
    does not list, reported and left alone."""
    before = console.json("accounts", "list")

    result = console("accounts", "discover")

    assert result.returncode == 0, result.stderr
    assert "discovery plan (nothing written; --apply)" in result.stdout
    for account in TARGET_ACCOUNTS:
        assert re.search(
            rf"^none \(not in the organization\) +{account.account_id}", result.stdout, re.M
        )
    assert console.json("accounts", "list") == before


def test_local_up_status_down_manage_only_the_stack_they_started(tmp_path: Path) -> None:
    env = deploy_env(DRS_INVENTORY_STATE_DIR=str(tmp_path))
    run = Console(env)
    assert run("local", "status").returncode == 3

    up = run("local", "up")

    assert up.returncode == 0, up.stderr
    state = json.loads((tmp_path / "state.json").read_text())
    pid = state["pid"]
    try:
        assert up.stdout.startswith(f"export AWS_ENDPOINT_URL={state['motoEndpoint']} ")
        status = run("local", "status", "--output", "json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["deployed"] == {
            "data-management-handler": False,
            "query-handler": False,
        }
        again = run("local", "up")
        assert again.returncode == 0 and f"already running (pid {pid})" in again.stderr
        # --local finds the recorded stack; nothing is deployed there yet
        not_deployed = run("--local", "summary")
        assert not_deployed.returncode == 3
        assert "query-handler-qa is not deployed in the local AWS" in not_deployed.stderr
    finally:
        down = run("local", "down")
    assert down.returncode == 0, down.stderr
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/status").read_text()
    assert not (tmp_path / "state.json").exists()
    assert run("local", "status").returncode == 3
