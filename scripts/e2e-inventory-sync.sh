#!/usr/bin/env bash
# The Task 7.1 end-to-end check of the inventory sync, as a script: schedule ->
# data-management-handler -> DynamoDB. One line and mark per step; exit 1 if any step fails.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/e2e-inventory-sync.sh ENV [--profile P] [--region R]
       scripts/e2e-inventory-sync.sh ENV --endpoint-url URL --drs-endpoint-url URL

Run the Task 7.1 checks against environment ENV (dev|test|qa|uat|staging|prod):

  1. the rule PROJECT-inventory-sync-ENV exists, is ENABLED, rate(15 minutes)
  2. its only target is the data-management-handler, Input {"operation": "sync_source_server_inventory"}
  3. the data-management-handler's resource policy lets events.amazonaws.com invoke it from the rule
  4. the operation the rule sends is in the operation map of the deployed package it targets
  5. triggering the rule's target with the rule's exact Input succeeds (status SUCCEEDED or PARTIAL)
  6. the inventory holds what that run confirmed: every item it wrote carries its start time
     (lastSyncTime), every server it found unchanged is still there (sourceServerID, region,
     lastSyncTime), and the scopes it confirmed say so in the region-status table
     (lastSuccessTime at or after its start): an unchanged server is not rewritten

Against an AWS account (default) it only reads, except for step 5: one synchronous
`aws lambda invoke` of the rule's target with the rule's Input, the same call the schedule
makes every 15 minutes. It creates, changes and deletes nothing else.

Against the embedded local AWS (--endpoint-url, --drs-endpoint-url) step 5 goes through the
local runner, which plays EventBridge and Lambda with the deployed package.

  --profile P             AWS CLI profile (real accounts)
  --region R              region of the deployment (default: AWS_REGION, AWS_DEFAULT_REGION,
                          then the profile's; us-east-1 for the local AWS)
  --endpoint-url URL      the local AWS (moto) endpoint (default: AWS_ENDPOINT_URL when it is
                          on loopback, as python -m scripts.local.stack exports it)
  --drs-endpoint-url URL  the local DRS simulator endpoint (required with --endpoint-url;
                          default: AWS_ENDPOINT_URL_DRS with a loopback AWS_ENDPOINT_URL)
  -h, --help              print this help

Environment: PROJECT_NAME (default aws-drs-orchestration).
Exit status: 0 all six steps passed, 1 a step failed, 2 usage error.
EOF
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly SYNC_OPERATION="sync_source_server_inventory"
readonly SCHEDULE="rate(15 minutes)"
PROJECT_NAME="${PROJECT_NAME:-aws-drs-orchestration}"
export AWS_PAGER=""

usage_error() { echo "e2e-inventory-sync.sh: $* (see --help)" >&2; exit 2; }
die() { echo "e2e-inventory-sync.sh: error: $*" >&2; exit 1; }
# shellcheck source=scripts/lib/common.sh
. "$ROOT/scripts/lib/common.sh"

# ------------------------------------------------------------------------ arguments
ENV_NAME=""
PROFILE=""
REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
ENDPOINT=""
DRS_ENDPOINT=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --profile|--region|--endpoint-url|--drs-endpoint-url)
      need_value "$@"
      case "$1" in
        --profile) PROFILE="$2" ;;
        --region) REGION="$2" ;;
        --endpoint-url) ENDPOINT="$2" ;;
        --drs-endpoint-url) DRS_ENDPOINT="$2" ;;
      esac
      shift ;;
    -*) usage_error "unknown option: $1" ;;
    *) take_environment "$1" ;;
  esac
  shift
done
require_environment
choose_local_aws

readonly RULE="$PROJECT_NAME-inventory-sync-$ENV_NAME"
readonly DMH="$PROJECT_NAME-data-management-handler-$ENV_NAME"
readonly TABLE="$PROJECT_NAME-source-server-inventory-$ENV_NAME"
readonly STATUS_TABLE="$PROJECT_NAME-drs-region-status-$ENV_NAME"

# ------------------------------------------------------------------------ tools
AWS="$(tool aws)" || die "aws CLI not found (run: make venv, or install the AWS CLI)"
PYTHON="$(tool python || tool python3)" || die "python3 not found"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "$REGION" ]; then
  REGION="$("$AWS" configure get region ${PROFILE:+--profile "$PROFILE"} 2>/dev/null || true)"
fi
[ -n "$REGION" ] || die "no AWS region: pass --region or set AWS_REGION"

aws_cli() {
  "$AWS" --region "$REGION" ${PROFILE:+--profile "$PROFILE"} \
    ${ENDPOINT:+--endpoint-url "$ENDPOINT"} "$@"
}
runner() {
  "$PYTHON" -m scripts.local.runner --endpoint-url "$ENDPOINT" \
    --drs-endpoint-url "$DRS_ENDPOINT" --region "$REGION" "$@"
}
# json_query FILE EXPRESSION [ARG...]: a Python expression over the JSON document `d` (and the
# arguments `a`), printed; how this script reads JSON without depending on jq.
json_query() {
  "$PYTHON" -c '
import json, sys
d = json.load(open(sys.argv[1]))
a = sys.argv[3:]
print(eval(sys.argv[2]))' "$@"
}
# last line of a command's error output, for one-line reasons
last_line() { grep -v '^[[:space:]]*$' | tail -n 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); printf '  \342\234\224 %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); printf '  \342\234\230 %s\n' "$*"; }
detail() { sed 's/^/      /'; }

# ------------------------------------------------------------------------ the steps
# Before the first AWS call, so an endpoint that is down is named as such rather than
# reported by the CLI as missing credentials.
if [ "$LOCAL" = true ]; then
  why="$("$PYTHON" -m scripts.local.reachable --hint "is python -m scripts.local.stack running?" \
    "local AWS (moto)=$ENDPOINT" "DRS simulator=$DRS_ENDPOINT")" || die "$why"
elif [ -n "${AWS_ENDPOINT_URL:-}" ] \
    && ! why="$("$PYTHON" -m scripts.local.reachable "$AWS_ENDPOINT_URL")"; then
  die "cannot reach AWS_ENDPOINT_URL $AWS_ENDPOINT_URL ($why)"
fi
if ! identity="$(aws_cli sts get-caller-identity --query Account --output text 2>&1)"; then
  die "no usable AWS credentials: $(echo "$identity" | last_line)"
fi
if [ "$LOCAL" = true ]; then
  where="local AWS $ENDPOINT, DRS simulator $DRS_ENDPOINT"
else
  where="AWS${PROFILE:+ profile $PROFILE}"
fi
echo "Task 7.1 inventory sync check: $PROJECT_NAME $ENV_NAME in $identity/$REGION ($where)"

# 1. the rule ---------------------------------------------------------------
RULE_ARN=""
if ! aws_cli events list-rules --output json \
    --query "Rules[?contains(Name, 'inventory')].{Name:Name,State:State,ScheduleExpression:ScheduleExpression,Arn:Arn}" \
    >"$WORK/rules.json" 2>"$WORK/rules.err"; then
  fail "1. rule $RULE: cannot list rules: $(last_line <"$WORK/rules.err")"
else
  the_rule='next((r for r in d or [] if r["Name"] == a[0]), {})'
  RULE_ARN="$(json_query "$WORK/rules.json" "$the_rule.get('Arn') or ''" "$RULE")"
  state="$(json_query "$WORK/rules.json" "$the_rule.get('State')" "$RULE")"
  schedule="$(json_query "$WORK/rules.json" "$the_rule.get('ScheduleExpression')" "$RULE")"
  if [ -z "$RULE_ARN" ]; then
    others="$(json_query "$WORK/rules.json" "', '.join(r['Name'] for r in d or []) or 'none'")"
    fail "1. rule $RULE does not exist (rules named *inventory*: $others)"
  elif [ "$state" = "ENABLED" ] && [ "$schedule" = "$SCHEDULE" ]; then
    pass "1. rule $RULE exists, $state, $schedule"
  else
    fail "1. rule $RULE is $state, $schedule (want ENABLED, $SCHEDULE)"
  fi
fi

# 2. the target -------------------------------------------------------------
TARGET_ARN=""
INPUT=""
DMH_ARN="$(aws_cli lambda get-function --function-name "$DMH" \
  --query Configuration.FunctionArn --output text 2>/dev/null)" || DMH_ARN=""
if [ -z "$RULE_ARN" ]; then
  fail "2. target: no rule to read targets from"
elif ! targets="$(aws_cli events list-targets-by-rule --rule "$RULE" --output json 2>&1)"; then
  fail "2. target: cannot list the targets of $RULE: $(echo "$targets" | last_line)"
else
  echo "$targets" >"$WORK/targets.json"
  count="$(json_query "$WORK/targets.json" 'len(d["Targets"])')"
  if [ "$count" = "1" ]; then
    TARGET_ARN="$(json_query "$WORK/targets.json" 'd["Targets"][0]["Arn"]')"
    target_id="$(json_query "$WORK/targets.json" 'd["Targets"][0]["Id"]')"
    INPUT="$(json_query "$WORK/targets.json" 'd["Targets"][0].get("Input", "")')"
    printf '%s' "$INPUT" >"$WORK/input.json"
    operation="$(json_query "$WORK/input.json" 'd.get("operation")' 2>/dev/null)" || operation=""
    if [ -z "$DMH_ARN" ]; then
      fail "2. target $target_id -> $TARGET_ARN, but function $DMH does not exist"
    elif [ "$TARGET_ARN" != "$DMH_ARN" ]; then
      fail "2. target $target_id -> ${TARGET_ARN##*:} is not the data-management-handler ($DMH)"
    elif [ "$target_id" != "InventorySyncTarget" ] || [ "$operation" != "$SYNC_OPERATION" ]; then
      fail "2. target $target_id -> $DMH with Input $INPUT (want InventorySyncTarget, operation $SYNC_OPERATION)"
    else
      pass "2. target $target_id -> $DMH, Input $INPUT"
    fi
  else
    fail "2. target: $RULE has $count targets, want exactly one (the data-management-handler)"
  fi
fi

# 3. the permission ---------------------------------------------------------
if [ -z "$RULE_ARN" ]; then
  fail "3. permission: no rule to grant"
elif ! policy="$(aws_cli lambda get-policy --function-name "$DMH" --query Policy --output text 2>&1)"
then
  fail "3. permission: $DMH has no resource policy: $(echo "$policy" | last_line)"
elif "$PYTHON" -c '
import json, sys
from scripts.local.runner import policy_allows_rule
sys.exit(0 if policy_allows_rule(json.loads(sys.argv[1]), sys.argv[2]) else 1)' "$policy" "$RULE_ARN"
then
  pass "3. permission: $DMH allows events.amazonaws.com from $RULE_ARN"
else
  fail "3. permission: no statement of $DMH's policy lets events.amazonaws.com invoke it from $RULE_ARN"
fi

# 4. the operation exists in the deployed package the rule targets -----------
CHECKED_FUNCTION="${TARGET_ARN:-$DMH}"
OPERATION="$SYNC_OPERATION"
if [ -s "$WORK/input.json" ]; then
  OPERATION="$(json_query "$WORK/input.json" 'd.get("operation")' 2>/dev/null)" \
    || OPERATION="$SYNC_OPERATION"
fi
if [ "$LOCAL" = true ]; then
  operations_ok=true
  operations="$(runner operations "$CHECKED_FUNCTION" 2>&1)" || operations_ok=false
elif code="$(aws_cli lambda get-function --function-name "$CHECKED_FUNCTION" --output text \
    --query '[Code.Location, Configuration.CodeSha256, Configuration.Handler]' 2>&1)"; then
  read -r location code_sha handler <<<"$code"
  operations_ok=true
  operations="$("$PYTHON" -m scripts.local.runner operations --package-url "$location" \
    --code-sha256 "$code_sha" --handler "$handler" 2>&1)" || operations_ok=false
else
  operations_ok=false
  operations="$code"
fi
if [ "$operations_ok" != true ]; then
  fail "4. operation $OPERATION: cannot read ${CHECKED_FUNCTION##*:}'s package: $(echo "$operations" | last_line)"
elif echo "$operations" | grep -qxF "$OPERATION"; then
  pass "4. operation $OPERATION is in ${CHECKED_FUNCTION##*:}'s operation map ($(echo "$operations" | wc -l | tr -d ' ') operations)"
else
  fail "4. operation $OPERATION is not in ${CHECKED_FUNCTION##*:}'s operation map: $(echo "$operations" | paste -sd, -)"
fi

# 5. trigger ----------------------------------------------------------------
STARTED=""
WRITTEN=0
CONFIRMED=0
if [ -z "$TARGET_ARN" ] || [ ! -s "$WORK/input.json" ]; then
  fail "5. trigger: no single target with an Input to trigger"
else
  if [ "$LOCAL" = true ]; then
    how="through the local runner (as EventBridge)"
    # --force: like the real-account check, trigger even a DISABLED rule's target.
    invoked=true
    runner --log-file "$WORK/function.log" fire-rule --force "$RULE" "$WORK/payload.json" \
      >"$WORK/meta.json" 2>"$WORK/invoke.err" || invoked=false
    if [ "$invoked" = false ] && [ ! -s "$WORK/meta.json" ]; then
      fail "5. trigger $how: $(last_line <"$WORK/invoke.err")"
      how=""
    fi
  else
    how="with aws lambda invoke (the rule's Input)"
    # One attempt and a read timeout beyond the function's 900 s: a CLI retry would run a
    # second sync.
    if ! AWS_MAX_ATTEMPTS=1 aws_cli lambda invoke --function-name "$TARGET_ARN" \
        --payload "fileb://$WORK/input.json" --log-type Tail --cli-read-timeout 960 \
        --cli-connect-timeout 30 --output json "$WORK/payload.json" \
        >"$WORK/meta.json" 2>"$WORK/invoke.err"; then
      fail "5. trigger $how: $(last_line <"$WORK/invoke.err")"
      how=""
    fi
  fi
  if [ -n "$how" ]; then
    # verdict, startedAt, serversWritten, one-line description; separated by the ASCII unit
    # separator, because read collapses runs of a whitespace IFS (an empty field would shift).
    IFS=$'\x1f' read -r verdict STARTED WRITTEN CONFIRMED description < <("$PYTHON" - \
        "$WORK/meta.json" "$WORK/payload.json" <<'PY'
import json, sys
meta = json.load(open(sys.argv[1]))
try:
    raw = open(sys.argv[2], errors="replace").read()
except OSError:
    raw = ""
try:
    payload = json.loads(raw)
except ValueError:
    payload = None
if meta.get("FunctionError"):
    if isinstance(payload, dict) and "errorMessage" in payload:
        error = f"{payload.get('errorType', 'Error')}: {payload['errorMessage']}"
    else:
        error = " ".join(raw.split())[:300] or "(no payload)"
    print("fail", "", 0, 0, f"function error ({meta['FunctionError']}): {error}", sep="\x1f")
    sys.exit()
if not isinstance(payload, dict) or "status" not in payload:
    print("fail", "", 0, 0, f"unexpected result: {' '.join(raw.split())[:300]}", sep="\x1f")
    sys.exit()
status, counts, failures = payload["status"], payload.get("counts", {}), payload.get("failures", [])
described = (f"{status} in {payload.get('durationMs', 0) / 1000:.1f} s, "
             f"{counts.get('serversWritten', 0)} servers written, "
             f"{counts.get('serversUnchanged', 0)} unchanged, "
             f"{len(failures)} failed scope(s)")
if failures:
    described += ": " + ", ".join(
        f"{f['accountId']}/{f['region']} {f['status']}" for f in failures[:5])
if status == "SKIPPED":
    described += f" ({payload.get('skippedBecause', 'another sync holds the lease')}; retry later)"
verdict = "pass" if status in ("SUCCEEDED", "PARTIAL") else "fail"
confirmed = counts.get("serversWritten", 0) + counts.get("serversUnchanged", 0)
print(verdict, payload.get("startedAt", ""), counts.get("serversWritten", 0), confirmed,
      described, sep="\x1f")
PY
    ) || {
      verdict=fail; STARTED=""; WRITTEN=0; CONFIRMED=0; description="could not read the result"
    }
    if [ "$verdict" = pass ]; then
      pass "5. trigger $how: $description"
    else
      fail "5. trigger $how: $description"
      # The end of the function's log: the runner's log file, or Invoke's LogResult (4 KB).
      if [ "$LOCAL" = true ]; then
        log_tail="$(tail -n 20 "$WORK/function.log" 2>/dev/null)" || log_tail=""
      else
        log_tail="$(json_query "$WORK/meta.json" \
          '__import__("base64").b64decode(d.get("LogResult", "")).decode(errors="replace")' \
          2>/dev/null | tail -n 20)" || log_tail=""
      fi
      if [ -n "${log_tail//[[:space:]]/}" ]; then echo "$log_tail" | detail; fi
    fi
  fi
fi

# 6. what the run confirmed, in the inventory and region-status tables --------
count_items() {  # TABLE FILTER [VALUES]: how many items match (every page), or an error line
  local values="${3:-}"
  local args=(dynamodb scan --table-name "$1" --select COUNT --output json --query Count
    --filter-expression "$2" --expression-attribute-names '{"#region": "region"}')
  if [ -n "$values" ]; then args+=(--expression-attribute-values "$values"); fi
  aws_cli "${args[@]}" 2>&1
}
if ! table_status="$(aws_cli dynamodb describe-table --table-name "$TABLE" \
    --query 'Table.TableStatus' --output text 2>&1)"; then
  fail "6. inventory: table $TABLE: $(echo "$table_status" | last_line)"
elif [ -z "$STARTED" ]; then
  fail "6. inventory: table $TABLE is $table_status, but no sync ran to look for"
else
  since="{\":since\": {\"S\": \"$STARTED\"}}"
  identity='attribute_exists(sourceServerID) AND attribute_exists(#region) AND attribute_exists(lastSyncTime)'
  # Items the run wrote carry its start time (the function's clock, not ours); the servers
  # it found unchanged keep their last write's time and are live items of confirmed scopes.
  if ! written="$(count_items "$TABLE" "lastSyncTime >= :since AND $identity" "$since")"; then
    fail "6. inventory: cannot scan $TABLE: $(echo "$written" | last_line)"
  elif ! live="$(count_items "$TABLE" "attribute_not_exists(deletedAt) AND $identity")"; then
    fail "6. inventory: cannot scan $TABLE: $(echo "$live" | last_line)"
  elif ! scopes="$(count_items "$STATUS_TABLE" \
      'lastSuccessTime >= :since AND attribute_exists(#region)' "$since")"; then
    fail "6. inventory: cannot scan $STATUS_TABLE: $(echo "$scopes" | last_line)"
  elif [ "$written" -ge "$WRITTEN" ] && [ "$live" -ge "$CONFIRMED" ] && [ "$live" -gt 0 ] \
      && [ "$scopes" -gt 0 ]; then
    pass "6. inventory: $TABLE holds $live live items ($written written at or after $STARTED, \
the run wrote $WRITTEN and confirmed $CONFIRMED); $scopes scope(s) confirmed since then"
    # The report's own sample query: five items with their id, region and last write time.
    aws_cli dynamodb scan --table-name "$TABLE" --limit 5 --output text \
      --query 'Items[*].[sourceServerID.S, region.S, lastSyncTime.S]' 2>/dev/null | detail || true
  else
    fail "6. inventory: $TABLE holds $live live items, $written written at or after $STARTED, \
$scopes scope(s) confirmed since then; want >= $WRITTEN written, >= max(1, $CONFIRMED) live, >= 1 scope"
  fi
fi

TOTAL=$((PASSED + FAILED))
if [ "$FAILED" -eq 0 ]; then
  echo "Task 7.1: PASSED ($PASSED/$TOTAL)"
else
  echo "Task 7.1: FAILED ($PASSED/$TOTAL passed)"
  exit 1
fi
