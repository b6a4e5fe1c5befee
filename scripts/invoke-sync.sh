#!/usr/bin/env bash
# Ad-hoc inventory sync: invoke the data-management-handler's sync_source_server_inventory
# with optional accountIds / regions / dryRun and print the result readably.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/invoke-sync.sh ENV [--account-ids ID[,ID...]] [--regions R[,R...]] [--dry-run]
                              [--profile P] [--region R] [--json]
       scripts/invoke-sync.sh ENV ... --endpoint-url URL --drs-endpoint-url URL

Run one inventory sync of environment ENV (dev|test|qa|uat|staging|prod) now, synchronously,
and print its status, counts and failed scopes.

  --account-ids IDS       sync only these accounts (the hub or enabled target accounts)
  --regions REGIONS       sync only these regions (among the function's DRS_REGIONS)
  --dry-run               list and compute everything, report it, write nothing
  --json                  print the raw result JSON instead of the summary
  --profile P             AWS CLI profile (real accounts)
  --region R              region of the deployment (default: AWS_REGION, AWS_DEFAULT_REGION,
                          then the profile's; us-east-1 for the local AWS)
  --endpoint-url URL      the local AWS (moto): invoke through the local runner (default:
                          AWS_ENDPOINT_URL when it is on loopback, as scripts.local.stack
                          exports it)
  --drs-endpoint-url URL  the local DRS simulator (required with --endpoint-url; default:
                          AWS_ENDPOINT_URL_DRS with a loopback AWS_ENDPOINT_URL)
  -h, --help              print this help

Against AWS this is one `aws lambda invoke` of PROJECT-data-management-handler-ENV with
{"operation": "sync_source_server_inventory", "accountIds": [...], "regions": [...],
"dryRun": true}; a narrowed run never soft-deletes items of accounts it was not asked about.
If the scheduled sync is running, the result is SKIPPED (one sync at a time): retry later.

Environment: PROJECT_NAME (default aws-drs-orchestration).
Exit status: 0 SUCCEEDED, 3 PARTIAL or SKIPPED, 1 FAILED or a function/invocation error,
2 usage error.
EOF
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
PROJECT_NAME="${PROJECT_NAME:-aws-drs-orchestration}"
export AWS_PAGER=""

usage_error() { echo "invoke-sync.sh: $* (see --help)" >&2; exit 2; }
die() { echo "invoke-sync.sh: error: $*" >&2; exit 1; }
# shellcheck source=scripts/lib/common.sh
. "$ROOT/scripts/lib/common.sh"

ENV_NAME=""
PROFILE=""
REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
ENDPOINT=""
DRS_ENDPOINT=""
ACCOUNT_IDS=""
REGIONS=""
DRY_RUN=false
RAW_JSON=false
while [ "$#" -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --dry-run) DRY_RUN=true ;;
    --json) RAW_JSON=true ;;
    --account-ids|--regions|--profile|--region|--endpoint-url|--drs-endpoint-url)
      need_value "$@"
      case "$1" in
        --account-ids) ACCOUNT_IDS="$2" ;;
        --regions) REGIONS="$2" ;;
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
[[ -z "$ACCOUNT_IDS" || "$ACCOUNT_IDS" =~ ^[0-9]{12}(,[0-9]{12})*$ ]] \
  || usage_error "--account-ids takes 12-digit account ids separated by commas"
[[ -z "$REGIONS" || "$REGIONS" =~ ^[a-z]{2}(-[a-z]+)+-[0-9](,[a-z]{2}(-[a-z]+)+-[0-9])*$ ]] \
  || usage_error "--regions takes region names separated by commas, e.g. us-east-1,eu-west-1"
choose_local_aws
readonly FUNCTION="$PROJECT_NAME-data-management-handler-$ENV_NAME"

PYTHON="$(tool python || tool python3)" || die "python3 not found"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [ "$LOCAL" = false ]; then
  AWS="$(tool aws)" || die "aws CLI not found (run: make venv, or install the AWS CLI)"
  if [ -z "$REGION" ]; then
    REGION="$("$AWS" configure get region ${PROFILE:+--profile "$PROFILE"} 2>/dev/null || true)"
  fi
  [ -n "$REGION" ] || die "no AWS region: pass --region or set AWS_REGION"
fi

# Before the first AWS call, so an endpoint that is down is named as such rather than
# reported by the CLI as missing credentials.
if [ "$LOCAL" = true ]; then
  why="$("$PYTHON" -m scripts.local.reachable --hint "is python -m scripts.local.stack running?" \
    "local AWS (moto)=$ENDPOINT" "DRS simulator=$DRS_ENDPOINT")" || die "$why"
elif [ -n "${AWS_ENDPOINT_URL:-}" ] \
    && ! why="$("$PYTHON" -m scripts.local.reachable "$AWS_ENDPOINT_URL")"; then
  die "cannot reach AWS_ENDPOINT_URL $AWS_ENDPOINT_URL ($why)"
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# The event, built by json.dumps so every value is quoted correctly.
"$PYTHON" - "$ACCOUNT_IDS" "$REGIONS" "$DRY_RUN" >"$WORK/event.json" <<'PY'
import json, sys
account_ids, regions, dry_run = sys.argv[1:]
event = {"operation": "sync_source_server_inventory"}
if account_ids:
    event["accountIds"] = account_ids.split(",")
if regions:
    event["regions"] = regions.split(",")
if dry_run == "true":
    event["dryRun"] = True
print(json.dumps(event))
PY

echo "invoking $FUNCTION in $REGION$([ "$LOCAL" = true ] && echo " (local AWS $ENDPOINT)"): $(cat "$WORK/event.json")" >&2
if [ "$LOCAL" = true ]; then
  "$PYTHON" -m scripts.local.runner --endpoint-url "$ENDPOINT" --drs-endpoint-url "$DRS_ENDPOINT" \
    --region "$REGION" --log-file "$WORK/function.log" invoke "$FUNCTION" "$WORK/payload.json" \
    --payload-file "$WORK/event.json" >"$WORK/meta.json" \
    || [ -s "$WORK/meta.json" ] || die "the local runner could not invoke $FUNCTION (see above)"
else
  # One attempt and a read timeout beyond the function's 900 s: a CLI retry would run a
  # second sync.
  AWS_MAX_ATTEMPTS=1 "$AWS" --region "$REGION" ${PROFILE:+--profile "$PROFILE"} \
    lambda invoke --function-name "$FUNCTION" --payload "fileb://$WORK/event.json" \
    --cli-read-timeout 960 --cli-connect-timeout 30 --output json "$WORK/payload.json" \
    >"$WORK/meta.json" || die "aws lambda invoke failed (see above)"
fi

# Print the result and derive the exit status from it (see --help).
"$PYTHON" - "$WORK/meta.json" "$WORK/payload.json" "$RAW_JSON" <<'PY'
import json, sys
from scripts.local.runner import format_response

meta_file, payload_file, raw_json = sys.argv[1:]
meta = json.load(open(meta_file))
text = open(payload_file, errors="replace").read()
try:
    payload = json.loads(text)
except ValueError:
    # Not what the function returns: e.g. an error of the service itself, as plain text.
    print(f"invocation error ({meta.get('FunctionError', 'no JSON payload')}): {text.strip()}")
    sys.exit(1)
if raw_json == "true":
    print(json.dumps(payload, indent=2, sort_keys=True))
else:
    print(format_response({**meta, "Payload": payload}))
if meta.get("FunctionError"):
    sys.exit(1)
status = payload.get("status") if isinstance(payload, dict) else None
sys.exit({"SUCCEEDED": 0, "PARTIAL": 3, "SKIPPED": 3}.get(status, 1))
PY
