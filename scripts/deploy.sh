#!/usr/bin/env bash
# Package and deploy aws-drs-orchestration to one environment: DynamoDB -> Lambda ->
# EventBridge -> monitoring stacks, to AWS or to the embedded local AWS (--endpoint-url).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/deploy.sh ENV [--validate-only | --lambda-only] [--region R] [--profile P]
                             [--endpoint-url URL] [--drs-regions LIST]
                             [--target-org-id ID] [--target-account-ids LIST]
                             [--hub-event-regions LIST|all|none]

Package and deploy aws-drs-orchestration to environment ENV (dev|test|qa|uat|staging|prod).

  (default)          package both functions (deterministic zips); harden the deployment
                     bucket (created when missing; public access blocked, versioned,
                     encrypted, TLS-only policy letting only this identity write packages);
                     upload each package unless its key already holds its SHA-256; deploy
                     the stacks dynamodb -> lambda (pinned to the object versions) ->
                     eventbridge -> monitoring -> main (PROJECT-ENV, the root operators
                     check) with `aws cloudformation deploy` (a no-op when nothing changed),
                     check that each function's CodeSha256 is its package's, and print the
                     outputs. In prod every stack gets termination protection.
  --validate-only    cfn-lint every template, compile the Lambda code, run the unit tests;
                     touches no AWS
  --lambda-only      package and upload as above, then update only the code location of
                     the lambda stack and the main stack (their deployed templates, every
                     other parameter kept) and check CodeSha256 as above
  --region R         AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, then the profile's)
  --profile P        AWS CLI profile
  --endpoint-url URL send every AWS call to URL (e.g. the local moto server); same as
                     setting AWS_ENDPOINT_URL
  --drs-regions LIST the regions the sync covers (comma-separated, e.g. us-east-1,eu-west-1):
                     the lambda stack's DrsRegions, DRS_REGIONS of both functions. Without
                     it (and without DRS_REGIONS): the value the stack already has, else
                     where DRS runs in this partition per AWS's public SSM parameters
                     (/aws/service/global-infrastructure/services/drs/regions), else this
                     machine's botocore endpoint list for drs; the deploy prints which
  --target-org-id ID the AWS Organizations id (o-...) whose accounts' roles the
                     data-management-handler may assume (the lambda stack's
                     TargetOrganizationId)
  --target-account-ids LIST
                     the target accounts whose roles it may assume (comma-separated
                     12-digit ids; the lambda stack's TargetAccountIds). With both, an
                     account must be in the list and the organization. At least one is
                     needed; without the option (and its variable) the stack's current
                     value is kept, and a new stack without either is refused
  --hub-event-regions LIST|all|none
                     the regions of the hub account whose DRS events reach the hub's DRS
                     events bus (target accounts forward theirs with
                     cfn/target-account-role.yaml): each gets the stack
                     PROJECT-ENV-drs-event-forwarding, from that template with RoleRegion
                     none (forwarding only, no role). Each must be a DRS region of the
                     deploy (--drs-regions): events from others are dropped. all: every
                     DRS region; none: no region. Default: the hub region. A region left
                     out keeps any stack deployed there before; its changes wait for the
                     full sync
  -h, --help         print this help

Optional environment:
  PROJECT_NAME                      stack/resource name prefix (default aws-drs-orchestration)
  DEPLOY_BUCKET                     deployment bucket (default PROJECT_NAME-deploy-ACCOUNT-REGION)
  ALARM_EMAIL                       address subscribed to the alarm topic
  ENABLE_INVENTORY_SYNC             true|false: schedule ENABLED or DISABLED
  TARGET_ACCOUNT_ROLE_NAME_PATTERN  role names the sync may assume (default drs-orchestration-*)
  DRS_REGIONS                       same as --drs-regions (the option wins)
  TARGET_ORG_ID                     same as --target-org-id; set empty, drops the organization
  TARGET_ACCOUNT_IDS                same as --target-account-ids; set empty, drops the list
  HUB_EVENT_REGIONS                 same as --hub-event-regions (the option wins)
Unset variables keep the value the stack already has (or the template default).
EOF
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly FUNCTIONS="data-management-handler query-handler"
PROJECT_NAME="${PROJECT_NAME:-aws-drs-orchestration}"
export AWS_PAGER=""

die() { echo "deploy.sh: error: $*" >&2; exit 1; }
note() { echo "deploy.sh: $*" >&2; }
usage_error() { echo "deploy.sh: $* (see scripts/deploy.sh --help)" >&2; exit 2; }
stage() { echo "==> $*"; }
info() { echo "    $*"; }
# shellcheck source=scripts/lib/common.sh
. "$ROOT/scripts/lib/common.sh"

# ------------------------------------------------------------------------ arguments
ENV_NAME=""
MODE="deploy"
REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
PROFILE=""
DRS_REGIONS_OPTION=""
TARGET_ORG_OPTION=""
TARGET_ACCOUNTS_OPTION=""
HUB_EVENT_REGIONS_OPTION="${HUB_EVENT_REGIONS:-}"
while [ "$#" -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --validate-only|--lambda-only)
      [ "$MODE" = "deploy" ] || usage_error "--validate-only and --lambda-only exclude each other"
      MODE="${1#--}" ;;
    --region|--profile|--endpoint-url|--drs-regions|--target-org-id|--target-account-ids|\
    --hub-event-regions)
      need_value "$@"
      case "$1" in
        --region) REGION="$2" ;;
        --profile) PROFILE="$2" ;;
        --endpoint-url) export AWS_ENDPOINT_URL="$2" ;;
        --drs-regions) DRS_REGIONS_OPTION="$2" ;;
        --target-org-id) TARGET_ORG_OPTION="$2" ;;
        --target-account-ids) TARGET_ACCOUNTS_OPTION="$2" ;;
        --hub-event-regions) HUB_EVENT_REGIONS_OPTION="$2" ;;
      esac
      shift ;;
    -*) usage_error "unknown option: $1" ;;
    *) take_environment "$1" ;;
  esac
  shift
done
require_environment
# As the templates' ProjectName: PROJECT-data-management-handler-staging (a function and a
# role name) must fit in 64 characters.
[[ "$PROJECT_NAME" =~ ^[a-z0-9][a-z0-9-]{1,31}$ ]] \
  || usage_error "PROJECT_NAME '$PROJECT_NAME' must match ^[a-z0-9][a-z0-9-]{1,31}\$"

# ------------------------------------------------------------------------ DRS regions
# Which regions are synced is configuration, fixed at deploy time (the lambda stack's
# DrsRegions): the functions have no default, so an SDK update never changes it.
readonly REGION_NAME='^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$'  # as shared.validation.REGION_PATTERN
readonly DRS_REGIONS_SSM_PATH="/aws/service/global-infrastructure/services/drs/regions"

# region_list TEXT: the region names in TEXT (separated by commas or white space), sorted,
# without repeats, comma-joined. On a name that is not a region, or none at all, prints why
# and returns 1.
region_list() {
  local item items=() found=()
  read -r -a items <<<"$(printf '%s' "$1" | tr ',\t\n' '   ')"
  for item in ${items[@]+"${items[@]}"}; do
    if ! [[ "$item" =~ $REGION_NAME ]]; then
      echo "'$item' is not a region name (like us-east-1)"
      return 1
    fi
    found+=("$item")
  done
  if [ "${#found[@]}" -eq 0 ]; then
    echo "no region in '$1'"
    return 1
  fi
  printf '%s\n' "${found[@]}" | sort -u | paste -sd, -
}

# Regions the operator gave (--drs-regions, else DRS_REGIONS), checked before anything runs.
DRS_REGIONS_GIVEN=""
DRS_REGIONS_GIVEN_BY=""
if [ -n "$DRS_REGIONS_OPTION" ]; then
  [ "$MODE" != "lambda-only" ] \
    || usage_error "--drs-regions changes the lambda stack: deploy without --lambda-only"
  DRS_REGIONS_GIVEN_BY="--drs-regions"
  DRS_REGIONS_GIVEN="$(region_list "$DRS_REGIONS_OPTION")" \
    || usage_error "--drs-regions: $DRS_REGIONS_GIVEN"
elif [ -n "${DRS_REGIONS+set}" ] && [ "$MODE" = "deploy" ]; then
  DRS_REGIONS_GIVEN_BY="DRS_REGIONS"
  DRS_REGIONS_GIVEN="$(region_list "$DRS_REGIONS")" || usage_error "DRS_REGIONS: $DRS_REGIONS_GIVEN"
fi

# Hub regions forwarding DRS events (--hub-event-regions, else HUB_EVENT_REGIONS), checked
# before anything runs: "all" and the default are resolved once the DRS regions are chosen.
HUB_EVENT_REGIONS_GIVEN=""
case "$HUB_EVENT_REGIONS_OPTION" in
  ""|all|none) HUB_EVENT_REGIONS_GIVEN="$HUB_EVENT_REGIONS_OPTION" ;;
  *)
    [ "$MODE" != "lambda-only" ] \
      || usage_error "--hub-event-regions deploys stacks: deploy without --lambda-only"
    HUB_EVENT_REGIONS_GIVEN="$(region_list "$HUB_EVENT_REGIONS_OPTION")" \
      || usage_error "--hub-event-regions: $HUB_EVENT_REGIONS_GIVEN" ;;
esac

# ------------------------------------------------------------------------ target accounts
# Which accounts' roles the data-management-handler may assume: the lambda stack's
# TargetOrganizationId and TargetAccountIds, at least one of them (the template's rule).
readonly ORG_ID='^o-[a-z0-9]{10,32}$'        # as the lambda stack's TargetOrganizationId
readonly ACCOUNT_ID_PATTERN='^[0-9]{12}$'

# account_list TEXT: the account ids in TEXT (separated by commas or white space) in the
# order given, without repeats, comma-joined. On a token that is not a 12-digit id, or none at
# all, prints why and returns 1. Bash only: it runs before any tool is looked for.
account_list() {
  local item items=() seen=" " joined=""
  IFS=$', \t\n' read -r -d '' -a items <<<"$1" || true
  for item in ${items[@]+"${items[@]}"}; do
    [ -n "$item" ] || continue  # between two commas
    if ! [[ "$item" =~ $ACCOUNT_ID_PATTERN ]]; then
      echo "'$item' is not an account id (12 digits)"
      return 1
    fi
    [[ "$seen" == *" $item "* ]] && continue
    seen+="$item "
    joined+="${joined:+,}$item"
  done
  if [ -z "$joined" ]; then
    echo "no account id in '$1'"
    return 1
  fi
  echo "$joined"
}

# What the operator gave (option, else variable; a variable set empty drops that scope),
# checked before anything runs. *_GIVEN_BY is empty when nothing was given: the stack's
# current value is kept.
TARGET_ORG_GIVEN=""
TARGET_ORG_GIVEN_BY=""
if [ -n "$TARGET_ORG_OPTION" ]; then
  TARGET_ORG_GIVEN_BY="--target-org-id"
  TARGET_ORG_GIVEN="$TARGET_ORG_OPTION"
elif [ -n "${TARGET_ORG_ID+set}" ] && [ "$MODE" = "deploy" ]; then
  TARGET_ORG_GIVEN_BY="TARGET_ORG_ID"
  TARGET_ORG_GIVEN="$TARGET_ORG_ID"
fi
if [ -n "$TARGET_ORG_GIVEN" ] && ! [[ "$TARGET_ORG_GIVEN" =~ $ORG_ID ]]; then
  usage_error "$TARGET_ORG_GIVEN_BY: '$TARGET_ORG_GIVEN' is not an organization id (o- and 10 to 32 of a-z 0-9)"
fi
TARGET_ACCOUNTS_GIVEN=""
TARGET_ACCOUNTS_GIVEN_BY=""
if [ -n "$TARGET_ACCOUNTS_OPTION" ]; then
  TARGET_ACCOUNTS_GIVEN_BY="--target-account-ids"
  TARGET_ACCOUNTS_GIVEN="$(account_list "$TARGET_ACCOUNTS_OPTION")" \
    || usage_error "--target-account-ids: $TARGET_ACCOUNTS_GIVEN"
elif [ -n "${TARGET_ACCOUNT_IDS+set}" ] && [ "$MODE" = "deploy" ]; then
  TARGET_ACCOUNTS_GIVEN_BY="TARGET_ACCOUNT_IDS"
  if [ -n "$TARGET_ACCOUNT_IDS" ]; then
    TARGET_ACCOUNTS_GIVEN="$(account_list "$TARGET_ACCOUNT_IDS")" \
      || usage_error "TARGET_ACCOUNT_IDS: $TARGET_ACCOUNTS_GIVEN"
  fi
fi
if [ "$MODE" = "lambda-only" ]; then
  for option in "$TARGET_ORG_OPTION:--target-org-id" "$TARGET_ACCOUNTS_OPTION:--target-account-ids"; do
    [ -z "${option%%:*}" ] \
      || usage_error "${option#*:} changes the lambda stack: deploy without --lambda-only"
  done
fi

# ------------------------------------------------------------------------ tools
PYTHON="$(tool python || tool python3)" || die "python3 not found (run: make venv)"

# ------------------------------------------------------------------------ --validate-only
validate() {
  local cfn_lint
  cfn_lint="$(tool cfn-lint)" || die "cfn-lint not found (run: make venv)"
  stage "validate: cfn-lint cfn/*.yaml"
  "$cfn_lint" "$ROOT"/cfn/*.yaml || die "cfn-lint rejected the templates (see above)"
  stage "validate: compile lambda/"
  # compile() in memory: checks syntax without writing __pycache__ into the tree.
  "$PYTHON" - "$ROOT/lambda" <<'PY' || die "Lambda code does not compile (see above)"
import pathlib, sys
failed = 0
for path in sorted(pathlib.Path(sys.argv[1]).rglob("*.py")):
    try:
        compile(path.read_bytes(), str(path), "exec")
    except SyntaxError as exc:
        failed += 1
        print(f"{path}:{exc.lineno}: {exc.msg}", file=sys.stderr)
sys.exit(1 if failed else 0)
PY
  stage "validate: unit tests"
  (cd "$ROOT" && "$PYTHON" -m pytest tests/unit -q) || die "unit tests failed (see above)"
  stage "validate: OK"
}

if [ "$MODE" = "validate-only" ]; then
  validate
  exit 0
fi

# ------------------------------------------------------------------------ AWS access

AWS="$(tool aws)" || die "aws CLI not found (run: make venv, or install the AWS CLI)"
WORK_DIR="$(mktemp -d)" || die "cannot create a temporary folder"
readonly WORK_DIR
trap 'rm -rf "$WORK_DIR"' EXIT
if [ -z "$REGION" ]; then
  REGION="$("$AWS" configure get region ${PROFILE:+--profile "$PROFILE"} 2>/dev/null || true)"
fi
[ -n "$REGION" ] || die "no AWS region: pass --region or set AWS_REGION"

# CALL_REGION (set for one call: CALL_REGION=r function ...) acts in another region.
aws_cli() {
  "$AWS" --region "${CALL_REGION:-$REGION}" ${PROFILE:+--profile "$PROFILE"} "$@"
}

# aws_output ARGS...: aws_cli's output; on failure prints the CLI's last error line instead and
# returns 1. stderr is kept apart: the CLI's warnings must not be parsed as output.
aws_output() {
  local errors output
  errors="$(mktemp)"
  if output="$(aws_cli "$@" 2>"$errors")"; then
    rm -f "$errors"
    printf '%s\n' "$output"
    return 0
  fi
  grep -v '^$' "$errors" | tail -n 1 || true
  rm -f "$errors"
  return 1
}

stage "check credentials (region $REGION${AWS_ENDPOINT_URL:+, endpoint $AWS_ENDPOINT_URL})"
# An endpoint that is down is named as such, not reported by the CLI as missing credentials.
if [ -n "${AWS_ENDPOINT_URL:-}" ] \
  && ! why="$(cd "$ROOT" && "$PYTHON" -m scripts.local.reachable "$AWS_ENDPOINT_URL")"; then
  die "cannot reach the endpoint $AWS_ENDPOINT_URL ($why)"
fi
# stdout only: the CLI may print warnings on stderr that must not be parsed as the identity.
if ! identity="$(aws_cli sts get-caller-identity --query '[Account, Arn]' --output text \
    2>/dev/null)"; then
  reason="$(aws_cli sts get-caller-identity 2>&1 >/dev/null | grep -v '^$' | tail -n 1 || true)"
  die "no usable AWS credentials: ${reason:-sts get-caller-identity failed}"
fi
read -r ACCOUNT_ID CALLER_ARN <<<"$identity"
[[ "$ACCOUNT_ID" =~ ^[0-9]{12}$ ]] || die "unexpected caller identity: $identity"
info "account $ACCOUNT_ID as $CALLER_ARN"
BUCKET="${DEPLOY_BUCKET:-$PROJECT_NAME-deploy-$ACCOUNT_ID-$REGION}"
[ "${#BUCKET}" -le 63 ] \
  || die "deployment bucket name $BUCKET is longer than S3's 63 characters: set DEPLOY_BUCKET"

function_name() { echo "$PROJECT_NAME-$1-$ENV_NAME"; }

# ------------------------------------------------------------------------ packaging
# Sets, for each function, PACKAGE_KEY_<function> (S3 key), PACKAGE_PATH_<function> (the zip)
# and PACKAGE_SHA_<function> (base64 SHA-256 of the zip: Lambda's CodeSha256 of it, and S3's
# ChecksumSHA256 of a single-part upload of it). Keys are content-addressed, so an unchanged
# package is an unchanged stack parameter.
package_functions() {
  local listing fn path sha code_sha
  stage "package: $FUNCTIONS (python3.12, manylinux2014_x86_64)"
  # shellcheck disable=SC2086  # FUNCTIONS is a list of words
  listing="$("$PYTHON" "$ROOT/scripts/package_lambda.py" $FUNCTIONS)" \
    || die "packaging failed (see above)"
  while read -r fn path sha code_sha; do
    printf -v "PACKAGE_KEY_${fn//-/_}" '%s' "lambda/$fn/$sha.zip"
    printf -v "PACKAGE_PATH_${fn//-/_}" '%s' "$path"
    printf -v "PACKAGE_SHA_${fn//-/_}" '%s' "$code_sha"
    info "$fn: $(basename "$path") sha256 $sha (CodeSha256 $code_sha)"
  done <<<"$listing"
}
package_key() { local var="PACKAGE_KEY_${1//-/_}"; echo "${!var}"; }
package_path() { local var="PACKAGE_PATH_${1//-/_}"; echo "${!var}"; }
package_sha() { local var="PACKAGE_SHA_${1//-/_}"; echo "${!var}"; }
# The S3 object version holding the package (set by upload_packages).
package_version() { local var="PACKAGE_VERSION_${1//-/_}"; echo "${!var}"; }

# Hardens the deployment bucket on every run, whoever created it and whatever changed since:
# public access blocked, versioning (the lambda stack pins object versions), default
# encryption (an existing KMS default is kept), and the policy of scripts/bucket_policy.py
# (TLS only; package writes by this deploy's identity only; other statements kept).
ensure_bucket() {
  local output algorithm current wanted
  stage "deployment bucket s3://$BUCKET"
  if aws_cli s3api head-bucket --bucket "$BUCKET" --expected-bucket-owner "$ACCOUNT_ID" \
      >/dev/null 2>&1; then
    info "exists"
  else
    if [ "$REGION" = "us-east-1" ]; then
      output="$(aws_output s3api create-bucket --bucket "$BUCKET")" \
        || die "cannot create bucket $BUCKET: $output"
    else
      output="$(aws_output s3api create-bucket --bucket "$BUCKET" \
        --create-bucket-configuration "LocationConstraint=$REGION")" \
        || die "cannot create bucket $BUCKET: $output"
    fi
    info "created"
  fi
  output="$(aws_output s3api put-public-access-block --bucket "$BUCKET" \
    --expected-bucket-owner "$ACCOUNT_ID" --public-access-block-configuration \
    BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true)" \
    || die "cannot block public access to bucket $BUCKET: $output"
  output="$(aws_output s3api put-bucket-versioning --bucket "$BUCKET" \
    --expected-bucket-owner "$ACCOUNT_ID" --versioning-configuration Status=Enabled)" \
    || die "cannot enable versioning of bucket $BUCKET: $output"
  algorithm="$(aws_cli s3api get-bucket-encryption --bucket "$BUCKET" \
    --expected-bucket-owner "$ACCOUNT_ID" --output text \
    --query 'ServerSideEncryptionConfiguration.Rules[0].ApplyServerSideEncryptionByDefault.SSEAlgorithm' \
    2>/dev/null || true)"
  case "$algorithm" in
    aws:kms|aws:kms:dsse) ;;  # stronger than the default set below: kept
    *)
      algorithm="AES256"
      output="$(aws_output s3api put-bucket-encryption --bucket "$BUCKET" \
        --expected-bucket-owner "$ACCOUNT_ID" --server-side-encryption-configuration \
        '{"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}')" \
        || die "cannot set the default encryption of bucket $BUCKET: $output" ;;
  esac
  if ! current="$(aws_output s3api get-bucket-policy --bucket "$BUCKET" \
      --expected-bucket-owner "$ACCOUNT_ID" --query Policy --output text)"; then
    [[ "$current" == *NoSuchBucketPolicy* ]] \
      || die "cannot read the policy of bucket $BUCKET: $current"
    current=""
  fi
  wanted="$(printf '%s' "$current" | "$PYTHON" "$ROOT/scripts/bucket_policy.py" \
    --bucket "$BUCKET" --deployer-arn "$CALLER_ARN")" \
    || die "cannot build the policy of bucket $BUCKET (see above)"
  if [ -n "$wanted" ]; then
    output="$(aws_output s3api put-bucket-policy --bucket "$BUCKET" \
      --expected-bucket-owner "$ACCOUNT_ID" --policy "$wanted")" \
      || die "cannot put the policy of bucket $BUCKET: $output"
  fi
  info "hardened: public access blocked, versioning enabled, default encryption $algorithm"
  info "policy $([ -n "$wanted" ] && echo updated || echo "in place"): TLS only;" \
    "package writes by $CALLER_ARN only"
}

# An S3 object version id the stacks can pin: set, and not "null" (the id of an object written
# while the bucket was unversioned, which a later write under the key replaces).
readonly VERSION_ID='^[A-Za-z0-9._+/=-]{1,1024}$'

# Uploads each package unless the object under its key already holds exactly its bytes: the
# SHA-256 checksum S3 stored for the object (computed by S3 and checked against ours on
# upload) must equal the package's. Anything else under the key (other bytes, no SHA-256
# checksum, an upload older than this check) is replaced by a new upload. Sets
# PACKAGE_VERSION_<function> to the object version holding the package.
upload_packages() {
  local fn key expected found stored version output
  stage "upload packages (SHA-256 checked)"
  for fn in $FUNCTIONS; do
    key="$(package_key "$fn")"
    expected="$(package_sha "$fn")"
    stored=""
    if found="$(aws_output s3api head-object --bucket "$BUCKET" --key "$key" \
        --expected-bucket-owner "$ACCOUNT_ID" --checksum-mode ENABLED \
        --query '[ChecksumSHA256, VersionId]' --output text)"; then
      read -r stored version <<<"$found"
    elif [[ "$found" != *"(404)"* && "$found" != *NoSuchKey* && "$found" != *"Not Found"* ]]; then
      die "cannot read s3://$BUCKET/$key: $found"
    fi
    if [ "$stored" = "$expected" ]; then
      info "s3://$BUCKET/$key version $version (already there, SHA-256 matches)"
    else
      if [ "$stored" = "None" ]; then
        note "s3://$BUCKET/$key has no SHA-256 checksum to check: uploading the package again"
      elif [ -n "$stored" ]; then
        note "s3://$BUCKET/$key does not hold the built package (SHA-256 $stored, the package's" \
          "is $expected): uploading the package again"
      fi
      # S3 computes the SHA-256 of what it receives and refuses the upload when it differs
      # from the one sent (BadDigest).
      output="$(aws_output s3api put-object --bucket "$BUCKET" --key "$key" \
        --body "$(package_path "$fn")" --expected-bucket-owner "$ACCOUNT_ID" \
        --checksum-algorithm SHA256 --checksum-sha256 "$expected" \
        --query '[ChecksumSHA256, VersionId]' --output text)" \
        || die "upload of s3://$BUCKET/$key failed: $output"
      read -r stored version <<<"$output"
      [ "$stored" = "$expected" ] || die "s3://$BUCKET/$key: S3 stored SHA-256 $stored for" \
        "the upload of a package whose SHA-256 is $expected"
      info "s3://$BUCKET/$key version $version (uploaded)"
    fi
    if ! [[ "$version" =~ $VERSION_ID ]] || [ "$version" = "null" ]; then
      die "s3://$BUCKET/$key has no usable object version ('$version'): is versioning of" \
        "bucket $BUCKET enabled?"
    fi
    printf -v "PACKAGE_VERSION_${fn//-/_}" '%s' "$version"
  done
}

# ------------------------------------------------------------------------ stacks
# In dependency order. "main" is the environment's root stack, named PROJECT-ENV and deployed
# last: its status is the one operators check, and it records the live code packages.
readonly STACKS="dynamodb lambda eventbridge monitoring main"
stack_name() {
  if [ "$1" = "main" ]; then echo "$PROJECT_NAME-$ENV_NAME"; else echo "$PROJECT_NAME-$ENV_NAME-$1"; fi
}

# JMESPath filter selecting this environment's stacks from DescribeStacks (one call for all).
stacks_filter() {
  local short names=""
  for short in $STACKS; do names="$names${names:+,}\"$(stack_name "$short")\""; done
  echo "Stacks[?contains(\`[$names]\`, StackName)]"
}

# Sets STATUS_<short> to each stack's status (NONE when it does not exist) and refuses
# stacks CloudFormation cannot update.
read_stack_statuses() {
  local short name status listing
  stage "current stacks"
  listing="$(aws_cli cloudformation describe-stacks --output text \
    --query "$(stacks_filter).[StackName, StackStatus]")" || die "cannot list stacks"
  for short in $STACKS; do
    name="$(stack_name "$short")"
    status="$(echo "$listing" | awk -v name="$name" '$1 == name { print $2 }')"
    printf -v "STATUS_$short" '%s' "${status:-NONE}"
    info "$name: ${status:-none}"
    if [ "$status" = "ROLLBACK_COMPLETE" ]; then
      die "$name is ROLLBACK_COMPLETE (its first create failed); delete it, then deploy" \
        "again: aws cloudformation delete-stack --stack-name $name"
    fi
  done
}

show_failed_events() {
  aws_cli cloudformation describe-stack-events --stack-name "$1" --max-items 20 --output text \
    --query "StackEvents[?ends_with(ResourceStatus, 'FAILED')].[LogicalResourceId, ResourceStatusReason]" \
    >&2 2>/dev/null || true
}

# deploy_stack SHORT_NAME TEMPLATE KEY=VALUE...: create or update one stack from cfn/TEMPLATE.
deploy_stack() {
  local short="$1" template="$2"
  shift 2
  stage "stack $(stack_name "$short") (cfn/$template)"
  cfn_deploy "$short" "$ROOT/cfn/$template" "$@"
}

# cfn_deploy SHORT_NAME TEMPLATE_FILE KEY=VALUE...: one of this environment's stacks (the
# project's parameters added to the given ones).
cfn_deploy() {
  local short="$1" file="$2" status
  shift 2
  status="STATUS_$short"
  deploy_template "$(stack_name "$short")" "${!status}" "$file" \
    "ProjectName=$PROJECT_NAME" "Environment=$ENV_NAME" "$@"
}

# deploy_template STACK STATUS TEMPLATE_FILE KEY=VALUE...: `aws cloudformation deploy` of one
# stack in REGION (parameters not given keep their deployed value), its outcome on one line
# (STATUS: the stack's status before, NONE when new), and protection.
deploy_template() {
  local stack="$1" status="$2" file="$3" output
  shift 3
  if output="$(aws_cli cloudformation deploy --stack-name "$stack" \
      --template-file "$file" --capabilities CAPABILITY_NAMED_IAM \
      --no-fail-on-empty-changeset \
      --tags "Project=$PROJECT_NAME" "Environment=$ENV_NAME" \
      --parameter-overrides "$@" 2>&1)"
  then
    if [[ "$output" == *"No changes to deploy"* ]]; then
      info "no changes"
    elif [ "$status" = "NONE" ]; then
      info "created"
    else
      info "updated"
    fi
  elif [[ "$output" == *"No updates are to be performed"* ]]; then
    # The same outcome, reported as an error by some CloudFormation implementations (moto
    # rejects the change set up front instead of creating an empty one).
    info "no changes"
  else
    echo "$output" >&2
    show_failed_events "$stack"
    die "deploying $stack failed (see the errors above)"
  fi
  protect_stack "$stack"
}

# protect_stack STACK: in prod, turn termination protection on (every run, so a stack whose
# protection was turned off gets it back): deleting the stack then fails until an operator
# turns it off. Other environments are left as they are.
protect_stack() {
  local output
  [ "$ENV_NAME" = "prod" ] || return 0
  output="$(aws_output cloudformation update-termination-protection --stack-name "$1" \
    --enable-termination-protection)" \
    || die "cannot enable termination protection of $1: $output"
  info "termination protection enabled"
}

# update_parameters SHORT_NAME KEY=VALUE...: a parameter-only update of an existing stack: its
# deployed template (not cfn/'s), the given values for the parameters that template declares,
# every other parameter as it is.
update_parameters() {
  local short="$1" stack template declared pair given=()
  shift
  stack="$(stack_name "$short")"
  stage "stack $stack (parameters only, its deployed template)"
  template="$WORK_DIR/$short-deployed-template"
  # JSON output: GetTemplate returns a YAML body as a string, a JSON body as an object.
  aws_cli cloudformation get-template --stack-name "$stack" --template-stage Original \
      --query TemplateBody --output json | "$PYTHON" -c '
import json, sys
body = json.load(sys.stdin)
sys.stdout.write(body if isinstance(body, str) else json.dumps(body))' >"$template" \
    || die "cannot read the deployed template of $stack"
  declared="$(aws_output cloudformation describe-stacks --stack-name "$stack" --output text \
    --query 'Stacks[0].Parameters[].ParameterKey')" \
    || die "cannot read the parameters of $stack: $declared"
  declared=" $(printf '%s' "$declared" | tr '\t\n' '  ') "
  for pair in "$@"; do
    if [[ "$declared" == *" ${pair%%=*} "* ]]; then
      given+=("$pair")
    else
      info "${pair%%=*}: not a parameter of the deployed template (a full deploy adds it)"
    fi
  done
  cfn_deploy "$short" "$template" ${given[@]+"${given[@]}"}
}

# ssm_drs_regions: where DRS runs in this deployment's partition, as AWS publishes it in the
# public SSM parameters. The list spans partitions (GovCloud, China, ...); a deployment's
# credentials reach only its own, so the others are left out. Prints why and returns 1 when
# the parameters cannot be read here.
ssm_drs_regions() {
  local listed regions=() names=() region batch pairs="" home kept i
  listed="$(aws_output ssm get-parameters-by-path --path "$DRS_REGIONS_SSM_PATH" \
    --query 'Parameters[].Value' --output text)" || { echo "$listed"; return 1; }
  read -r -a regions <<<"$(printf '%s' "$listed" | tr '\t\n' '  ')"
  if [ "${#regions[@]}" -eq 0 ] || [ "${regions[0]}" = "None" ]; then
    echo "$DRS_REGIONS_SSM_PATH lists no region in $REGION"
    return 1
  fi
  # Each region's partition is published too: "REGION<tab>PARTITION" lines in `pairs`.
  # GetParameters takes 10 names a call.
  names=("$REGION" "${regions[@]}")
  for ((i = 0; i < ${#names[@]}; i += 10)); do
    batch=()
    for region in "${names[@]:i:10}"; do
      batch+=("/aws/service/global-infrastructure/regions/$region/partition")
    done
    listed="$(aws_output ssm get-parameters --names "${batch[@]}" --output text \
      --query 'Parameters[].[Name, Value]')" || { echo "$listed"; return 1; }
    # .../regions/REGION/partition<tab>PARTITION -> REGION<tab>PARTITION
    pairs+="$(awk -F'\t' 'NF == 2 { n = split($1, part, "/"); print part[n - 1] "\t" $2 }' \
      <<<"$listed")"$'\n'
  done
  home="$(awk -F'\t' -v region="$REGION" '$1 == region { print $2; exit }' <<<"$pairs")"
  if [ -z "$home" ]; then
    echo "no partition published for $REGION"
    return 1
  fi
  kept="$(printf '%s\n' "${regions[@]}" | awk -F'\t' -v home="$home" \
    'NR == FNR { partition[$1] = $2; next } partition[$1] == home' <(printf '%s' "$pairs") -)"
  if [ -z "$kept" ]; then
    echo "$DRS_REGIONS_SSM_PATH lists no region of partition $home"
    return 1
  fi
  region_list "$kept"
}

# botocore_drs_regions: the regions this machine's botocore lists for drs in this region's
# partition; the last resort, as it changes with the SDK installed here.
botocore_drs_regions() {
  "$PYTHON" - "$REGION" <<'PY'
import sys

import botocore
import botocore.session

session = botocore.session.get_session()
partition = session.get_partition_for_region(sys.argv[1])
regions = session.get_available_regions("drs", partition_name=partition)
print(botocore.__version__, ",".join(sorted(regions)))
PY
}

# Sets DRS_REGIONS_CHOSEN, the lambda stack's DrsRegions for this deploy, and says where it
# came from: given (--drs-regions, DRS_REGIONS), else the stack's current value (a redeploy
# never changes it silently), else AWS's SSM parameters, else this machine's botocore.
choose_drs_regions() {
  local current reason listed version
  stage "DRS regions (the lambda stack's DrsRegions)"
  if [ -n "$DRS_REGIONS_GIVEN" ]; then
    DRS_REGIONS_CHOSEN="$DRS_REGIONS_GIVEN"
    info "$DRS_REGIONS_CHOSEN (from $DRS_REGIONS_GIVEN_BY)"
    return
  fi
  local status="STATUS_lambda"
  if [ "${!status}" != "NONE" ]; then
    current="$(aws_cli cloudformation describe-stacks --stack-name "$(stack_name lambda)" \
      --query "Stacks[0].Parameters[?ParameterKey=='DrsRegions'].ParameterValue" \
      --output text)" || die "cannot read the parameters of $(stack_name lambda)"
    # An empty value is what the template's former default ("every region") left behind.
    if [ -n "$current" ] && [ "$current" != "None" ]; then
      DRS_REGIONS_CHOSEN="$(region_list "$current")" \
        || die "$(stack_name lambda) has DrsRegions '$current': $DRS_REGIONS_CHOSEN"
      info "$DRS_REGIONS_CHOSEN (kept: the stack's current value; --drs-regions changes it)"
      return
    fi
  fi
  if listed="$(ssm_drs_regions)"; then
    DRS_REGIONS_CHOSEN="$listed"
    note "DrsRegions from AWS's public SSM parameters $DRS_REGIONS_SSM_PATH: $listed"
    info "$DRS_REGIONS_CHOSEN (where DRS runs, per $DRS_REGIONS_SSM_PATH)"
    return
  fi
  reason="$listed"
  listed="$(botocore_drs_regions)" || die "cannot list DRS regions: pass --drs-regions"
  version="${listed%% *}"
  DRS_REGIONS_CHOSEN="$(region_list "${listed#* }")" \
    || die "botocore $version lists no usable DRS region ($DRS_REGIONS_CHOSEN): pass --drs-regions"
  note "SSM parameters unavailable ($reason); DrsRegions from this machine's botocore" \
    "$version endpoint list for drs: $DRS_REGIONS_CHOSEN"
  info "$DRS_REGIONS_CHOSEN (botocore $version's endpoint list for drs)"
}

# --hub-event-regions LIST must name DRS regions of this deploy (DRS_REGIONS_CHOSEN): the
# data-management-handler drops events from any other region as unattributed, so their
# forwarding would be paid for and lost. Before anything is packaged or deployed.
check_hub_event_regions() {
  local region outside=()
  case "$HUB_EVENT_REGIONS_GIVEN" in ""|all|none) return ;; esac
  for region in ${HUB_EVENT_REGIONS_GIVEN//,/ }; do
    [[ ",$DRS_REGIONS_CHOSEN," == *",$region,"* ]] || outside+=("$region")
  done
  [ "${#outside[@]}" -eq 0 ] || die "--hub-event-regions: $(IFS=,; echo "${outside[*]}")" \
    "not among the DRS regions $DRS_REGIONS_CHOSEN (their events would be dropped as" \
    "unattributed): add them with --drs-regions or leave them out"
}

# stack_parameter SHORT_NAME PARAMETER: the deployed value of PARAMETER in the stack (empty
# when the stack or the parameter does not exist).
stack_parameter() {
  local status="STATUS_$1" value
  [ "${!status}" != "NONE" ] || return 0
  value="$(aws_cli cloudformation describe-stacks --stack-name "$(stack_name "$1")" \
    --query "Stacks[0].Parameters[?ParameterKey=='$2'].ParameterValue" --output text)" \
    || die "cannot read the parameters of $(stack_name "$1")"
  [ "$value" = "None" ] || printf '%s' "$value"
}

# Sets TARGET_ORG_CHOSEN and TARGET_ACCOUNTS_CHOSEN, the lambda stack's TargetOrganizationId
# and TargetAccountIds for this deploy: each as given, else the stack's current value (a
# redeploy never widens or drops them silently). Refuses a deploy that leaves both empty:
# the sync could then assume matching roles in any account that trusts the hub.
choose_target_scope() {
  local current
  stage "target accounts (the lambda stack's TargetOrganizationId, TargetAccountIds)"
  if [ -n "$TARGET_ORG_GIVEN_BY" ]; then
    TARGET_ORG_CHOSEN="$TARGET_ORG_GIVEN"
    info "organization: ${TARGET_ORG_CHOSEN:-(none)} (from $TARGET_ORG_GIVEN_BY)"
  else
    TARGET_ORG_CHOSEN="$(stack_parameter lambda TargetOrganizationId)"
    info "organization: ${TARGET_ORG_CHOSEN:-(none)} (kept; --target-org-id changes it)"
  fi
  if [ -n "$TARGET_ACCOUNTS_GIVEN_BY" ]; then
    TARGET_ACCOUNTS_CHOSEN="$TARGET_ACCOUNTS_GIVEN"
    info "accounts: ${TARGET_ACCOUNTS_CHOSEN:-(none)} (from $TARGET_ACCOUNTS_GIVEN_BY)"
  else
    current="$(stack_parameter lambda TargetAccountIds)"
    TARGET_ACCOUNTS_CHOSEN=""
    if [ -n "$current" ]; then
      TARGET_ACCOUNTS_CHOSEN="$(account_list "$current")" \
        || die "$(stack_name lambda) has TargetAccountIds '$current': $TARGET_ACCOUNTS_CHOSEN"
    fi
    info "accounts: ${TARGET_ACCOUNTS_CHOSEN:-(none)} (kept; --target-account-ids changes it)"
  fi
  if [ -z "$TARGET_ORG_CHOSEN" ] && [ -z "$TARGET_ACCOUNTS_CHOSEN" ]; then
    die "no target accounts: pass --target-org-id o-... and/or --target-account-ids" \
      "ID,ID (or TARGET_ORG_ID / TARGET_ACCOUNT_IDS), the accounts whose" \
      "drs-orchestration roles the data-management-handler may assume"
  fi
}

# optional_param ENV_VAR PARAMETER: append "PARAMETER=value" to the caller's `params` when
# ENV_VAR is set (even empty); unset keeps the stack's current value.
optional_param() {
  if [ -n "${!1+set}" ]; then params+=("$2=${!1}"); fi
}

function_arn() {
  aws_cli lambda get-function-configuration --function-name "$(function_name "$1")" \
    --query FunctionArn --output text
}

# The failure this project was built to rule out: a schedule invoking a function that lacks
# the operation or the permission. Check the deployed wiring, not just the templates.
verify_schedule() {
  local dmh_arn="$1" rule target policy
  rule="$PROJECT_NAME-inventory-sync-$ENV_NAME"
  stage "verify: rule $rule -> $(function_name data-management-handler)"
  target="$(aws_cli events list-targets-by-rule --rule "$rule" --output text \
    --query "Targets[?Id=='InventorySyncTarget'].Arn")" || die "cannot read the targets of $rule"
  [ "$target" = "$dmh_arn" ] || die "rule $rule targets '$target', not $dmh_arn"
  policy="$(aws_cli lambda get-policy --function-name "$dmh_arn" --query Policy --output text \
    2>/dev/null || true)"
  if [[ "$policy" != *":rule/$rule\""* ]]; then
    die "$(function_name data-management-handler) has no permission for rule $rule (was the" \
      "lambda stack re-created? delete stack $(stack_name eventbridge) and deploy again)"
  fi
  info "target and invoke permission in place"
}

# The hub account's own DRS events: in each chosen region, the forwarding half of
# cfn/target-account-role.yaml (RoleRegion none: no role, the hub reads its own DRS without
# one) sends them to the hub's DRS events bus, as target accounts' stack instances do.
deploy_hub_event_forwarding() {
  local regions region bus partition stack status
  case "$HUB_EVENT_REGIONS_GIVEN" in
    "")
      if [[ ",$DRS_REGIONS_CHOSEN," != *",$REGION,"* ]]; then
        stage "hub DRS event forwarding: none (the hub region $REGION is not a DRS region;" \
          "--hub-event-regions names others)"
        return
      fi
      regions="$REGION" ;;
    all) regions="$DRS_REGIONS_CHOSEN" ;;
    none) stage "hub DRS event forwarding: none (--hub-event-regions none)"; return ;;
    *) regions="$HUB_EVENT_REGIONS_GIVEN" ;;
  esac
  partition="$(cut -d: -f2 <<<"$CALLER_ARN")"
  bus="arn:$partition:events:$REGION:$ACCOUNT_ID:event-bus/$PROJECT_NAME-drs-events-$ENV_NAME"
  stack="$(stack_name drs-event-forwarding)"
  for region in ${regions//,/ }; do
    stage "stack $stack in $region (cfn/target-account-role.yaml: forwards the hub's DRS events)"
    status="$(CALL_REGION="$region" aws_cli cloudformation describe-stacks --stack-name "$stack" \
      --query 'Stacks[0].StackStatus' --output text 2>/dev/null)" || status="NONE"
    CALL_REGION="$region" deploy_template "$stack" "$status" \
      "$ROOT/cfn/target-account-role.yaml" "HubAccountId=$ACCOUNT_ID" "RoleRegion=none" \
      "HubEventBusArn=$bus"
  done
}

print_outputs() {
  local outputs
  stage "stack outputs"
  outputs="$(aws_cli cloudformation describe-stacks --output text \
    --query "$(stacks_filter).Outputs[][].[OutputKey, OutputValue]")" || die "cannot read outputs"
  if [ -z "$outputs" ] || [ "$outputs" = "None" ]; then
    info "(none reported by this endpoint)"
  else
    echo "$outputs" | while IFS=$'\t' read -r key value; do info "$key = $value"; done
  fi
}

# code_parameters: sets the caller's `params` to where the code is: the bucket, and each
# package's key and object version (the version pins the bytes upload_packages checked).
code_parameters() {
  params=("DeploymentBucket=$BUCKET"
          "DataManagementHandlerCodeKey=$(package_key data-management-handler)"
          "DataManagementHandlerCodeVersion=$(package_version data-management-handler)"
          "QueryHandlerCodeKey=$(package_key query-handler)"
          "QueryHandlerCodeVersion=$(package_version query-handler)")
}

# What runs is what was built: each function's CodeSha256 (the SHA-256 of the code Lambda
# holds) must be the built package's, whatever the bucket, the stacks or anyone did.
verify_code() {
  local fn name found expected mismatched=0
  stage "verify: the functions run the packages built here (CodeSha256)"
  for fn in $FUNCTIONS; do
    name="$(function_name "$fn")"
    expected="$(package_sha "$fn")"
    found="$(aws_output lambda get-function-configuration --function-name "$name" \
      --query CodeSha256 --output text)" || die "cannot read the code of $name: $found"
    if [ "$found" = "$expected" ]; then
      info "$name: CodeSha256 $found"
    else
      mismatched=$((mismatched + 1))
      note "error: $name runs code with CodeSha256 $found, expected $expected (the package" \
        "built here). To restore the code its stack names: aws lambda update-function-code" \
        "--function-name $name --s3-bucket $BUCKET --s3-key $(package_key "$fn")" \
        "--s3-object-version $(package_version "$fn")"
    fi
  done
  [ "$mismatched" -eq 0 ] \
    || die "$mismatched function(s) do not run the package built here (see above)"
}

deploy_all() {
  local params=() dmh_arn
  read_stack_statuses
  choose_drs_regions
  check_hub_event_regions
  choose_target_scope
  package_functions
  ensure_bucket
  upload_packages

  deploy_stack dynamodb dynamodb-stack.yaml

  code_parameters
  params+=("DrsRegions=$DRS_REGIONS_CHOSEN"
           "TargetOrganizationId=$TARGET_ORG_CHOSEN"
           "TargetAccountIds=$TARGET_ACCOUNTS_CHOSEN")
  optional_param TARGET_ACCOUNT_ROLE_NAME_PATTERN TargetAccountRoleNamePattern
  deploy_stack lambda lambda-stack.yaml "${params[@]}"
  # Before the schedule and the deployment record are touched.
  verify_code

  # Read from Lambda rather than the lambda stack's outputs: the local AWS reports no
  # outputs for stacks created through change sets.
  dmh_arn="$(function_arn data-management-handler)" \
    || die "cannot read the data-management-handler's ARN"
  # The accounts whose roles the sync may assume are the ones that may forward DRS events.
  params=("DataManagementHandlerFunctionArn=$dmh_arn"
          "TargetOrganizationId=$TARGET_ORG_CHOSEN"
          "TargetAccountIds=$TARGET_ACCOUNTS_CHOSEN")
  optional_param ENABLE_INVENTORY_SYNC EnableInventorySync
  deploy_stack eventbridge eventbridge-stack.yaml "${params[@]}"
  verify_schedule "$dmh_arn"
  deploy_hub_event_forwarding

  params=()
  optional_param ALARM_EMAIL AlarmEmail
  deploy_stack monitoring monitoring-stack.yaml ${params[@]+"${params[@]}"}

  code_parameters
  deploy_stack main main-stack.yaml "${params[@]:1}"  # all but the bucket

  print_outputs
  stage "deployed $PROJECT_NAME $ENV_NAME to $ACCOUNT_ID/$REGION"
}

# --lambda-only: new code through CloudFormation, so the stacks keep naming what runs. The
# lambda stack and the root stack (the deployment record) get a parameter-only update with
# the new code location; their templates and every other parameter stay as deployed.
update_code() {
  local fn name short status params=()
  for fn in $FUNCTIONS; do
    name="$(function_name "$fn")"
    aws_cli lambda get-function-configuration --function-name "$name" >/dev/null 2>&1 \
      || die "function $name not found: run a full deploy first (scripts/deploy.sh $ENV_NAME)"
  done
  read_stack_statuses
  for short in lambda main; do
    status="STATUS_$short"
    [ "${!status}" != "NONE" ] || die "stack $(stack_name "$short") not found: run a full" \
      "deploy first (scripts/deploy.sh $ENV_NAME)"
  done
  package_functions
  ensure_bucket
  upload_packages
  code_parameters
  update_parameters lambda "${params[@]}"
  verify_code
  update_parameters main "${params[@]:1}"
  stage "updated the code of $PROJECT_NAME $ENV_NAME in $ACCOUNT_ID/$REGION"
}

case "$MODE" in
  deploy) deploy_all ;;
  lambda-only) update_code ;;
esac
