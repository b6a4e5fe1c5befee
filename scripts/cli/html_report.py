"""The estate at a glance: one self-contained HTML file (inline CSS, JS and SVG; no network).

`build_report` is pure: it takes the query-handler's answers (region status, every live
server) and returns the page. Every string from the inventory is escaped (hostnames and tags
are whatever the source machines say).
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scripts.cli.render import (
    HEALTHY_STATUSES,
    format_age,
    matrix,
    replication_lag_seconds,
    scope_health,
)

# Health -> (background colour, words). A scope's colour says its status; for a healthy status
# the age of its data decides between fresh and stale (and very stale beyond VERY_STALE).
COLOURS = {
    "healthy": ("#b7e4c7", "fresh: latest sync healthy, data within the freshness threshold"),
    "stale": ("#ffd166", "stale: healthy status, data older than the threshold"),
    "very-stale": ("#f4a261", "very stale: data older than 6 h, or never synced"),
    "skipped": ("#cdb4db", "skipped: the run's deadline or a filter stopped it"),
    "failed": ("#e63946", "failed: access denied, throttled or error"),
    "quiet": ("#dee2e6", "no DRS here: not initialized or region not enabled"),
    "none": ("#ffffff", "no status: never synced"),
}
VERY_STALE_SECONDS = 6 * 3600
ATTENTION_STATES = ("STALLED", "DISCONNECTED", "PAUSED", "STOPPED")
MAX_ATTENTION_ROWS = 500


def cell_health(scope: Mapping[str, Any] | None) -> str:
    """The colour class of a matrix cell."""
    if scope is None:
        return "none"
    health = scope_health(scope)
    if health == "healthy" and scope.get("status") != "ACTIVE":
        return "quiet"
    if health == "stale":
        age = scope.get("ageSeconds")
        return "very-stale" if age is None or float(age) > VERY_STALE_SECONDS else "stale"
    return health


@dataclass(frozen=True)
class AccountHealth:
    account_id: str
    total: int = 0
    continuous: int = 0
    stalled: int = 0
    lagging: int = 0
    never_launched: int = 0


def replication_health(
    items: Sequence[Mapping[str, Any]], lag_threshold_seconds: float
) -> list[AccountHealth]:
    """Per account: servers, CONTINUOUS, STALLED, lagging beyond the threshold, never launched."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for item in items:
        account = str(item.get("accountId"))
        tally = counts[account]
        tally["total"] += 1
        state = item.get("replicationState")
        tally["continuous"] += state == "CONTINUOUS"
        tally["stalled"] += state == "STALLED"
        lag = replication_lag_seconds(item)
        tally["lagging"] += lag is not None and lag > lag_threshold_seconds
        tally["never_launched"] += item.get("lifeCycleState") == "NEVER_LAUNCHED"
    return [AccountHealth(account, **dict(tally)) for account, tally in sorted(counts.items())]


def attention_reasons(item: Mapping[str, Any], lag_threshold_seconds: float) -> list[str]:
    reasons = []
    state = item.get("replicationState")
    if state in ATTENTION_STATES:
        reasons.append(f"replication {state}")
    lag = replication_lag_seconds(item)
    if lag is not None and lag > lag_threshold_seconds:
        reasons.append(f"lag {format_age(lag)}")
    if item.get("lifeCycleState") == "FAILED":
        reasons.append("last launch FAILED")
    return reasons


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _health_bar(row: AccountHealth, width: int = 240) -> str:
    """A stacked SVG bar: continuous / stalled / other, to scale of the account's servers."""
    if not row.total:
        return ""
    parts = [
        (row.continuous, "#2a9d8f", "CONTINUOUS"),
        (row.stalled, "#e63946", "STALLED"),
        (row.total - row.continuous - row.stalled, "#adb5bd", "other states"),
    ]
    x = 0.0
    rects = []
    for count, colour, label in parts:
        if not count:
            continue
        w = width * count / row.total
        rects.append(
            f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="14" fill="{colour}">'
            f"<title>{_e(label)}: {count}</title></rect>"
        )
        x += w
    return (
        f'<svg class="bar" width="{width}" height="14" role="img" '
        f'aria-label="replication states">{"".join(rects)}</svg>'
    )


def build_report(
    *,
    status: Mapping[str, Any],
    items: Sequence[Mapping[str, Any]],
    lag_threshold_seconds: float,
    title: str,
    names: Mapping[str, str] | None = None,
) -> str:
    """The page. `status` is get_region_status's answer, `items` the live servers (with
    their `drs` record, where lag lives)."""
    names = names or {}
    scopes = status.get("scopes") or []
    accounts, regions, cells = matrix(scopes)
    threshold = status.get("freshnessSeconds")

    head_cells = "".join(f"<th scope='col'>{_e(r)}</th>" for r in regions)
    body_rows = []
    for account in accounts:
        label = _e(account) + (
            f"<br><small>{_e(names[account])}</small>" if names.get(account) else ""
        )
        row = [f"<th scope='row'>{label}</th>"]
        for region in regions:
            scope = cells.get((account, region))
            health = cell_health(scope)
            if scope is None:
                row.append(
                    f'<td class="cell h-none" data-account="{_e(account)}" '
                    f'data-region="{_e(region)}" data-status="NONE" data-health="none" '
                    f'data-age-seconds="">-</td>'
                )
                continue
            age = scope.get("ageSeconds")
            tip = (
                f"{account} {region}: {scope.get('status')}, {scope.get('serverCount')} servers, "
                f"data {format_age(age)} old"
                + (
                    f", {scope.get('errorCode')}: {scope.get('errorMessage')}"
                    if scope.get("errorCode")
                    else ""
                )
            )
            row.append(
                f'<td class="cell h-{health}" tabindex="0" data-account="{_e(account)}" '
                f'data-region="{_e(region)}" data-status="{_e(scope.get("status"))}" '
                f'data-health="{health}" data-age-seconds="{_e("" if age is None else int(float(age)))}" '
                f'data-server-count="{_e(scope.get("serverCount"))}" title="{_e(tip)}">'
                f'<span class="st">{_e(scope.get("status"))}</span>'
                f'<span class="n">{_e(scope.get("serverCount") if scope.get("serverCount") is not None else "")}</span>'
                f'<span class="age">{_e(format_age(age))}</span>'
                + (
                    f'<span class="code">{_e(scope.get("errorCode"))}</span>'
                    if scope.get("errorCode")
                    else ""
                )
                + "</td>"
            )
        body_rows.append("<tr>" + "".join(row) + "</tr>")

    legend = "".join(
        f'<li><span class="swatch h-{key}"></span>{_e(words)}</li>'
        for key, (_, words) in COLOURS.items()
    )

    health_rows = []
    for account_health in replication_health(items, lag_threshold_seconds):
        health_rows.append(
            f'<tr data-account="{_e(account_health.account_id)}"><th scope="row">{_e(account_health.account_id)}'
            + (
                f" <small>{_e(names[account_health.account_id])}</small>"
                if names.get(account_health.account_id)
                else ""
            )
            + f"</th><td>{account_health.total}</td><td>{account_health.continuous}</td>"
            f'<td class="{"warn" if account_health.stalled else ""}">{account_health.stalled}</td>'
            f'<td class="{"warn" if account_health.lagging else ""}">{account_health.lagging}</td>'
            f"<td>{account_health.never_launched}</td><td>{_health_bar(account_health)}</td></tr>"
        )

    # "No DRS here" (NOT_INITIALIZED, REGION_NOT_ENABLED) carries a code but is a true answer.
    failing = [s for s in scopes if s.get("status") not in HEALTHY_STATUSES]
    failing_rows = "".join(
        f'<tr data-account="{_e(s.get("accountId"))}" data-region="{_e(s.get("region"))}">'
        f"<td>{_e(s.get('accountId'))}</td><td>{_e(s.get('region'))}</td>"
        f"<td>{_e(s.get('status'))}</td><td><code>{_e(s.get('errorCode'))}</code></td>"
        f"<td>{_e(s.get('errorMessage'))}</td><td>{_e(format_age(s.get('ageSeconds')))}</td></tr>"
        for s in failing
    )

    attention = [(item, attention_reasons(item, lag_threshold_seconds)) for item in items]
    attention = [(item, reasons) for item, reasons in attention if reasons]
    attention.sort(
        key=lambda pair: (
            str(pair[0].get("accountId")),
            str(pair[0].get("region")),
            str(pair[0].get("hostname")),
        )
    )
    attention_rows = "".join(
        f'<tr data-account="{_e(item.get("accountId"))}" data-region="{_e(item.get("region"))}">'
        f"<td>{_e(item.get('hostname'))}</td><td><code>{_e(item.get('sourceServerID'))}</code></td>"
        f"<td>{_e(item.get('accountId'))}</td><td>{_e(item.get('region'))}</td>"
        f"<td>{_e(item.get('replicationState'))}</td><td>{_e('; '.join(reasons))}</td>"
        f"<td>{_e(', '.join(f'{k}={v}' for k, v in sorted((item.get('tags') or {}).items())))}</td></tr>"
        for item, reasons in attention[:MAX_ATTENTION_ROWS]
    )
    more_attention = (
        f"<p>... and {len(attention) - MAX_ATTENTION_ROWS} more.</p>"
        if len(attention) > MAX_ATTENTION_ROWS
        else ""
    )
    colour_css = "\n".join(
        f".h-{key} {{ background: {colour}; }}" for key, (colour, _) in COLOURS.items()
    )
    lag_words = format_age(lag_threshold_seconds)

    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>{_e(title)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #212529; }}
h1 {{ font-size: 1.4rem; margin-bottom: .2rem; }}
h2 {{ font-size: 1.1rem; margin-top: 2rem; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ced4da; padding: .3rem .5rem; text-align: left; vertical-align: top; }}
thead th {{ background: #f1f3f5; }}
td.cell {{ min-width: 7.5rem; cursor: pointer; }}
td.cell span {{ display: block; }}
td.cell .st {{ font-weight: 600; font-size: .8rem; }}
td.cell .n {{ font-size: 1.2rem; }}
td.cell .age, td.cell .code {{ font-size: .75rem; }}
td.cell.selected {{ outline: 3px solid #1d3557; }}
td.h-failed {{ color: #fff; }}
td.h-none {{ border-style: dashed; color: #adb5bd; }}
{colour_css}
.legend {{ list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .4rem 1.2rem; }}
.swatch {{ display: inline-block; width: 1rem; height: 1rem; margin-right: .35rem; border: 1px solid #868e96; vertical-align: middle; }}
td.warn {{ color: #c1121f; font-weight: 600; }}
.meta {{ color: #6c757d; }}
tr.hidden {{ display: none; }}
</style>
</head>
<body>
<h1>{_e(title)}</h1>
<p class="meta">as of {_e(status.get("asOf"))}; a scope is fresh when its latest sync was healthy and its data is at most {_e(threshold)} s old; lag threshold {_e(lag_words)}; {len(items)} live servers in {len(scopes)} scopes.</p>

<h2>Scopes: accounts x regions</h2>
<table id="matrix">
<thead><tr><th>account</th>{head_cells}</tr></thead>
<tbody>
{"".join(body_rows)}
</tbody>
</table>
<ul class="legend" id="legend">{legend}</ul>

<h2>Replication health per account</h2>
<table id="replication-health">
<thead><tr><th>account</th><th>servers</th><th>CONTINUOUS</th><th>STALLED</th><th>lag &gt; {_e(lag_words)}</th><th>never launched</th><th>states</th></tr></thead>
<tbody>{"".join(health_rows)}</tbody>
</table>

<h2>Failing scopes ({len(failing)})</h2>
<table id="failing-scopes">
<thead><tr><th>account</th><th>region</th><th>status</th><th>error code</th><th>message</th><th>data age</th></tr></thead>
<tbody>{failing_rows}</tbody>
</table>

<h2>Servers needing attention ({len(attention)})</h2>
<p class="meta" id="attention-filter">Click a matrix cell to show that scope's servers only; click it again for all.</p>
<table id="attention">
<thead><tr><th>hostname</th><th>source server</th><th>account</th><th>region</th><th>replication</th><th>why</th><th>tags</th></tr></thead>
<tbody>{attention_rows}</tbody>
</table>
{more_attention}
<script>
(function () {{
  var selected = null;
  function show(cell) {{
    var rows = document.querySelectorAll("#attention tbody tr");
    if (selected) {{ selected.classList.remove("selected"); }}
    selected = (cell === selected) ? null : cell;
    if (selected) {{ selected.classList.add("selected"); }}
    rows.forEach(function (row) {{
      var match = !selected || (row.dataset.account === selected.dataset.account &&
                                row.dataset.region === selected.dataset.region);
      row.classList.toggle("hidden", !match);
    }});
  }}
  document.querySelectorAll("#matrix td.cell[data-health]:not(.h-none)").forEach(function (cell) {{
    cell.addEventListener("click", function () {{ show(cell); }});
    cell.addEventListener("keydown", function (e) {{ if (e.key === "Enter") {{ show(cell); }} }});
  }});
}})();
</script>
</body>
</html>
"""
