# shellcheck shell=bash disable=SC2034  # the variables set here are the sourcing script's
# What deploy.sh, invoke-sync.sh and e2e-inventory-sync.sh share. Sourced after the script
# sets ROOT and defines usage_error and die; defines functions and ENVIRONMENTS only.

readonly ENVIRONMENTS="dev test qa uat staging prod"

# tool NAME: the project's venv's NAME (make venv) when present, else PATH's; 1 when neither.
tool() {
  if [ -x "$ROOT/.venv/bin/$1" ]; then
    echo "$ROOT/.venv/bin/$1"
  elif command -v "$1" >/dev/null 2>&1; then
    command -v "$1"
  else
    return 1
  fi
}

# need_value OPTION ARGS_LEFT...: refuses OPTION when no value follows it (or an option does).
need_value() {
  if [ "$#" -lt 2 ] || [ -z "$2" ] || [ "${2#-}" != "$2" ]; then
    usage_error "$1 needs a value"
  fi
}

# take_environment WORD: sets ENV_NAME to the positional argument WORD, refusing an unknown
# environment or a second one.
take_environment() {
  [ -z "$ENV_NAME" ] || usage_error "one environment only, got '$ENV_NAME' and '$1'"
  case " $ENVIRONMENTS " in
    *" $1 "*) ENV_NAME="$1" ;;
    *) usage_error "unknown environment '$1' (one of: $ENVIRONMENTS)" ;;
  esac
}

require_environment() {
  [ -n "$ENV_NAME" ] || usage_error "missing environment (one of: $ENVIRONMENTS)"
}

is_loopback_url() {
  [[ "$1" =~ ^https?://(127\.[0-9]+\.[0-9]+\.[0-9]+|localhost|\[::1\])(:[0-9]+)?(/.*)?$ ]]
}

# choose_local_aws: sets LOCAL (true|false) from ENDPOINT and DRS_ENDPOINT (the options), else
# the exports `python -m scripts.local.stack` prints (AWS_ENDPOINT_URL on loopback, with
# AWS_ENDPOINT_URL_DRS), which mean the local AWS too: never `aws lambda invoke` there (moto
# would need docker to run the function). Locally the region defaults to us-east-1 and only
# the local AWS's fake credentials are used: none of this machine's may be sent anywhere.
choose_local_aws() {
  if [ -z "$ENDPOINT$DRS_ENDPOINT" ] && is_loopback_url "${AWS_ENDPOINT_URL:-}"; then
    ENDPOINT="$AWS_ENDPOINT_URL"
    DRS_ENDPOINT="${AWS_ENDPOINT_URL_DRS:-}"
    [ -n "$DRS_ENDPOINT" ] || usage_error "AWS_ENDPOINT_URL is the local AWS ($ENDPOINT) but \
AWS_ENDPOINT_URL_DRS is unset: export both, as python -m scripts.local.stack prints them"
  fi
  LOCAL=false
  if [ -n "$ENDPOINT" ] || [ -n "$DRS_ENDPOINT" ]; then
    if [ -z "$ENDPOINT" ] || [ -z "$DRS_ENDPOINT" ]; then
      usage_error "--endpoint-url and --drs-endpoint-url go together (the local AWS)"
    fi
    [ -z "$PROFILE" ] || usage_error "--profile is for real accounts, not the local AWS"
    LOCAL=true
    REGION="${REGION:-us-east-1}"
    export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
    export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
    unset AWS_PROFILE AWS_SESSION_TOKEN
  fi
}
