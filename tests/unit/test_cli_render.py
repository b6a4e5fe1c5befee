"""drs-inventory's rendering, without AWS: plans (both shapes the sync answers), the scope
matrix, CSV/JSON/--query output, target resolution and the HTML report's escaping."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from scripts.cli.client import Target, is_loopback, resolve_target
from scripts.cli.errors import EXIT_UNREACHABLE, EXIT_USAGE, ConsoleError
from scripts.cli.html_report import build_report, cell_health, replication_health
from scripts.cli.output import Output, generic_rows, to_csv
from scripts.cli.render import (
    cell_text,
    filter_scopes,
    format_age,
    matrix,
    normalise_plan,
    plan_lines,
    plan_rows,
    sync_rows,
)
from scripts.cli.sync_commands import parse_confirmations, split_list

ARN = "arn:aws:drs:us-east-1:111122223333:source-server/s-{:017x}"


def arns(*numbers: int) -> list[str]:
    return [ARN.format(n) for n in numbers]


def old_shape_result() -> dict[str, Any]:
    """A dry run as the sync answered before `changed` and server objects."""
    return {
        "status": "PARTIAL",
        "runId": "run-1",
        "dryRun": True,
        "failures": [
            {
                "accountId": "444455556666",
                "region": "eu-west-1",
                "status": "THROTTLED",
                "errorCode": "ThrottlingException",
                "message": "DRS throttled the listing",
            }
        ],
        "plan": {
            "scopes": [
                {
                    "accountId": "111122223333",
                    "region": "us-east-1",
                    "added": {"count": 3, "arns": arns(1, 2), "more": 1},
                    "revived": {"count": 1, "arns": arns(3), "more": 0},
                    "softDeleted": {"count": 1, "arns": arns(4), "more": 0},
                    "held": {"count": 0, "arns": [], "more": 0},
                }
            ],
            "moreScopes": 0,
            "unregistered": [
                {"accountId": "999999999999", "region": "us-east-1", "softDeleted": 5}
            ],
        },
    }


def new_shape_result() -> dict[str, Any]:
    """The same plan with server objects, `changed` with fields, and totals."""

    def servers(*numbers: int, fields: list[str] | None = None) -> list[dict[str, Any]]:
        return [
            {
                "sourceServerArn": ARN.format(n),
                "sourceServerID": f"s-{n:017x}",
                "hostname": f"host-{n}",
                **({"fields": fields} if fields else {}),
            }
            for n in numbers
        ]

    return {
        "status": "SUCCEEDED",
        "runId": "run-2",
        "dryRun": True,
        "failures": [],
        "plan": {
            "totals": {"added": 3, "changed": 1, "softDeleted": 1, "revived": 1, "held": 12},
            "scopes": [
                {
                    "accountId": "111122223333",
                    "region": "us-east-1",
                    "added": {"count": 3, "servers": servers(1, 2), "more": 1},
                    "changed": {
                        "count": 1,
                        "servers": servers(5, fields=["replicationState", "tags"]),
                        "more": 0,
                    },
                    "revived": {"count": 1, "servers": servers(3), "more": 0},
                    "softDeleted": {"count": 1, "servers": servers(4), "more": 0},
                    "held": {"count": 12, "servers": servers(6), "more": 11},
                }
            ],
            "moreScopes": 0,
            "unregistered": [],
        },
    }


def test_plan_of_the_old_shape_lists_each_server_by_kind_with_totals() -> None:
    text = "\n".join(line for line, _ in plan_lines(old_shape_result()))

    assert "# 111122223333 us-east-1" in text
    assert "  + s-00000000000000001" in text
    assert "  + ... and 1 more" in text
    assert "  ^ s-00000000000000003" in text
    assert "  - s-00000000000000004" in text
    assert "- 5 servers of unregistered account 999999999999 in us-east-1" in text
    assert "warning: 444455556666 eu-west-1 THROTTLED ThrottlingException" in text
    # 5 soft-deletes of the unregistered account count with the scope's one
    assert text.splitlines()[-1] == (
        "Plan: 3 to add, 0 to change, 6 to soft-delete, 1 to revive, "
        "0 held by the mass-deletion guard."
    )


def test_plan_of_the_new_shape_names_hostnames_and_changed_fields() -> None:
    text = "\n".join(line for line, _ in plan_lines(new_shape_result()))

    assert "  + s-00000000000000001  host-1" in text
    assert "  ~ s-00000000000000005  host-5  (replicationState, tags)" in text
    assert "  ! s-00000000000000006  host-6" in text
    assert "  ! ... and 11 more" in text
    assert text.splitlines()[-1] == (
        "Plan: 3 to add, 1 to change, 1 to soft-delete, 1 to revive, "
        "12 held by the mass-deletion guard."
    )


def test_both_shapes_normalise_to_server_objects() -> None:
    old = normalise_plan(old_shape_result())
    new = normalise_plan(new_shape_result())

    for plan in (old, new):
        scope = plan["scopes"][0]
        assert set(scope) == {
            "accountId",
            "region",
            "added",
            "changed",
            "softDeleted",
            "revived",
            "held",
        }
        assert scope["added"]["servers"][0] == {
            "sourceServerArn": ARN.format(1),
            "sourceServerID": "s-00000000000000001",
            **({"hostname": "host-1"} if plan is new else {}),
        }
    assert old["scopes"][0]["changed"] == {"count": 0, "servers": [], "more": 0}
    assert new["totals"]["held"] == 12
    json.dumps(old)  # machines get plain JSON


def test_a_plan_without_changes_says_so() -> None:
    result = {"status": "SUCCEEDED", "plan": {"scopes": [], "unregistered": []}}

    lines = [line for line, _ in plan_lines(result)]

    assert "No changes. The inventory matches what DRS lists." in lines


def test_plan_csv_has_one_row_per_listed_server() -> None:
    headers, rows = plan_rows(normalise_plan(new_shape_result()))

    parsed = list(csv.reader(io.StringIO(to_csv(headers, rows))))
    assert parsed[0][:4] == ["accountId", "region", "action", "sourceServerID"]
    changed = [row for row in parsed[1:] if row[2] == "changed"]
    assert changed == [
        [
            "111122223333",
            "us-east-1",
            "changed",
            "s-00000000000000005",
            "host-5",
            "replicationState;tags",
            ARN.format(5),
        ]
    ]


SCOPES = [
    {
        "accountId": "111122223333",
        "region": "us-east-1",
        "status": "ACTIVE",
        "serverCount": 60,
        "ageSeconds": 120,
        "fresh": True,
        "errorCode": None,
    },
    {
        "accountId": "111122223333",
        "region": "eu-west-1",
        "status": "ACTIVE",
        "serverCount": 24,
        "ageSeconds": 7200,
        "fresh": False,
        "errorCode": None,
    },
    {
        "accountId": "444455556666",
        "region": "eu-west-1",
        "status": "THROTTLED",
        "serverCount": 0,
        "ageSeconds": None,
        "fresh": False,
        "errorCode": "ThrottlingException",
    },
]


def test_matrix_has_accounts_as_rows_and_regions_as_columns() -> None:
    accounts, regions, cells = matrix(SCOPES)

    assert accounts == ["111122223333", "444455556666"]
    assert regions == ["eu-west-1", "us-east-1"]
    assert ("444455556666", "us-east-1") not in cells
    assert cell_text(cells[("111122223333", "us-east-1")]) == "ACTIVE 60 2m"
    assert cell_text(cells[("444455556666", "eu-west-1")]) == (
        "THROTTLED 0 never (ThrottlingException)"
    )
    assert cell_text(None) == "-"


def test_scope_filters() -> None:
    assert [s["region"] for s in filter_scopes(SCOPES, stale_minutes=60)] == [
        "eu-west-1",
        "eu-west-1",
    ]
    assert len(filter_scopes(SCOPES, status="throttled")) == 1
    assert len(filter_scopes(SCOPES, account="111122223333", region="us-east-1")) == 1


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "never"),
        (5, "5s"),
        (59, "59s"),
        (60, "1m"),
        (7200, "2h"),
        (200_000, "2d"),
    ],
)
def test_ages_read_as_people_say_them(seconds: Any, text: str) -> None:
    assert format_age(seconds) == text


def test_generic_rows_give_one_column_per_key() -> None:
    headers, rows = generic_rows([{"a": 1, "b": {"x": 1}}, {"a": 2, "c": True}])

    assert headers == ["a", "b", "c"]
    assert rows == [["1", '{"x":1}', ""], ["2", "", "true"]]


def test_json_output_with_a_query(capsys: pytest.CaptureFixture[str]) -> None:
    Output("json", "[?status=='ACTIVE'].region").emit(SCOPES)

    assert json.loads(capsys.readouterr().out) == ["us-east-1", "eu-west-1"]


def test_csv_output_of_a_sync(capsys: pytest.CaptureFixture[str]) -> None:
    result = {**old_shape_result(), "plan": None}
    headers, rows = sync_rows(result)

    parsed = list(csv.reader(io.StringIO(to_csv(headers, rows))))
    assert parsed[1][:2] == ["run-1", "PARTIAL"]
    assert parsed[2][2:6] == ["444455556666", "eu-west-1", "THROTTLED", "ThrottlingException"]


def test_a_bad_query_is_a_usage_error() -> None:
    with pytest.raises(ConsoleError) as raised:
        Output("json", "[?status==")
    assert raised.value.exit_code == EXIT_USAGE


def test_confirmations_and_lists_parse() -> None:
    assert split_list(("a,b", " c ")) == ["a", "b", "c"]
    assert split_list(()) is None
    assert parse_confirmations(("111122223333:us-east-1",)) == [
        {"accountId": "111122223333", "region": "us-east-1"}
    ]
    with pytest.raises(ConsoleError) as raised:
        parse_confirmations(("111122223333",))
    assert raised.value.exit_code == EXIT_USAGE


# ---- where the console talks to ------------------------------------------------------------


def resolve(tmp_path: Any, environ: dict[str, str], **options: Any) -> Target:
    settings: dict[str, Any] = {
        "env": "qa",
        "project": "p",
        "region": None,
        "profile": None,
        "local": False,
        "endpoint_url": None,
        "drs_endpoint_url": None,
    }
    settings.update(options)
    return resolve_target(**settings, environ=environ, state_file=tmp_path / "state.json")


def test_the_stack_exports_make_the_console_local(tmp_path: Any) -> None:
    environ = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
        "AWS_ENDPOINT_URL_DRS": "http://127.0.0.1:4567",
    }

    target = resolve(tmp_path, environ)

    assert target.local and target.endpoint == "http://127.0.0.1:4566"
    assert target.drs_endpoint == "http://127.0.0.1:4567"
    assert target.function_name("query-handler") == "p-query-handler-qa"


def test_a_remote_endpoint_is_aws(tmp_path: Any) -> None:
    target = resolve(
        tmp_path, {"AWS_ENDPOINT_URL": "https://lambda.example.com", "AWS_REGION": "eu-west-1"}
    )

    assert not target.local and target.region == "eu-west-1"
    assert is_loopback("http://localhost:5000") and not is_loopback("http://10.0.0.1")


def test_local_without_a_stack_says_how_to_start_one(tmp_path: Any) -> None:
    with pytest.raises(ConsoleError) as raised:
        resolve(tmp_path, {}, local=True)

    assert raised.value.exit_code == EXIT_UNREACHABLE
    assert "drs-inventory local up" in raised.value.message


def test_local_finds_the_stack_local_up_recorded(tmp_path: Any) -> None:
    (tmp_path / "state.json").write_text(
        json.dumps(
            {"pid": 1, "motoEndpoint": "http://127.0.0.1:1", "drsEndpoint": "http://127.0.0.1:2"}
        )
    )

    target = resolve(tmp_path, {}, local=True)

    assert (target.endpoint, target.drs_endpoint) == ("http://127.0.0.1:1", "http://127.0.0.1:2")


# ---- the HTML report -----------------------------------------------------------------------

HOSTILE = "<script>alert('x')</script>"


def server(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "sourceServerArn": ARN.format(n),
        "sourceServerID": f"s-{n:017x}",
        "accountId": "111122223333",
        "region": "us-east-1",
        "hostname": f"host-{n}",
        "replicationState": "CONTINUOUS",
        "lifeCycleState": "LAUNCHED",
        **fields,
    }


def test_replication_health_counts_states_lag_and_launches() -> None:
    items = [
        server(1, drs={"dataReplicationInfo": {"lagDuration": "PT5M"}}),
        server(
            2, replicationState="STALLED", drs={"dataReplicationInfo": {"lagDuration": "P1DT2H"}}
        ),
        server(3, lifeCycleState="NEVER_LAUNCHED"),
    ]

    (row,) = replication_health(items, lag_threshold_seconds=3600)

    assert (row.total, row.continuous, row.stalled, row.lagging, row.never_launched) == (
        3,
        2,
        1,
        1,
        1,
    )


def test_report_escapes_every_inventory_string_and_marks_each_cell() -> None:
    items = [server(1, hostname=HOSTILE, replicationState="STALLED", tags={HOSTILE: HOSTILE})]
    scopes = [dict(s, errorMessage=HOSTILE) for s in SCOPES]

    page = build_report(
        status={"asOf": "now", "freshnessSeconds": 1800, "scopes": scopes},
        items=items,
        lag_threshold_seconds=3600,
        title=HOSTILE,
        names={"111122223333": HOSTILE},
    )

    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert page.count("<script>") == 1  # the report's own
    assert 'data-account="444455556666" data-region="eu-west-1" data-status="THROTTLED"' in page
    assert 'data-health="failed"' in page and 'data-health="stale"' in page
    assert 'data-age-seconds="7200"' in page
    # the cell no scope fills is still a cell
    assert 'data-account="444455556666" data-region="us-east-1" data-status="NONE"' in page
    assert "http" not in page.replace("http-equiv", "")  # nothing to fetch


def test_cell_colours_follow_status_then_age() -> None:
    assert cell_health(SCOPES[0]) == "healthy"
    assert cell_health(SCOPES[1]) == "stale"
    assert cell_health(dict(SCOPES[1], ageSeconds=7 * 3600)) == "very-stale"
    assert cell_health(SCOPES[2]) == "failed"
    assert cell_health({"status": "NOT_INITIALIZED", "fresh": True}) == "quiet"
    assert cell_health(None) == "none"


def test_global_options_may_follow_the_command_as_with_the_aws_cli() -> None:
    from scripts.cli.main import hoist_global_options

    argv = [
        "servers",
        "list",
        "--region",
        "us-east-1",
        "--output",
        "json",
        "--query=[0]",
        "--local",
        "--tag",
        "A=B",
    ]

    assert hoist_global_options(argv) == [
        "--output",
        "json",
        "--query=[0]",
        "--local",
        "servers",
        "list",
        "--region",
        "us-east-1",
        "--tag",
        "A=B",
    ]
