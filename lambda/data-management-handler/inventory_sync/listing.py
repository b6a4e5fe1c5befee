"""List one scope's DRS source servers, fully paginated, and classify failures by error code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inventory_sync.deadline import Deadline
from inventory_sync.exceptions import DeadlineReachedError
from inventory_sync.models import Scope, ScopeListing, ScopeStatus
from shared.aws import error_code, error_message
from shared.exceptions import AssumeRoleError
from shared.messages import MALFORMED_RESPONSE, PAGINATION_LOOP, reader_message

# Error codes -> scope status. Codes, never message text, decide.
_STATUS_BY_CODE = {
    "UninitializedAccountException": ScopeStatus.NOT_INITIALIZED,
    "AccessDeniedException": ScopeStatus.ACCESS_DENIED,
    "AccessDenied": ScopeStatus.ACCESS_DENIED,
    "UnauthorizedOperation": ScopeStatus.ACCESS_DENIED,
    # What an opt-in region answers when the account has not enabled it.
    "UnrecognizedClientException": ScopeStatus.REGION_NOT_ENABLED,
    "InvalidClientTokenId": ScopeStatus.REGION_NOT_ENABLED,
    "OptInRequired": ScopeStatus.REGION_NOT_ENABLED,
    "ThrottlingException": ScopeStatus.THROTTLED,
    "Throttling": ScopeStatus.THROTTLED,
    "TooManyRequestsException": ScopeStatus.THROTTLED,
    "RequestLimitExceeded": ScopeStatus.THROTTLED,
}


def status_for_error_code(code: str) -> ScopeStatus:
    """The scope status an AWS error code means; ERROR for any code not known here."""
    return _STATUS_BY_CODE.get(code, ScopeStatus.ERROR)


class _ListingFault(Exception):
    """The listing cannot be trusted: ends it as a failure with this code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def list_scope(
    scope: Scope,
    drs_client: Callable[[Scope], Any],
    page_size: int,
    *,
    max_pages: int = 100,
    deadline: Deadline | None = None,
    on_call: Callable[[], None] | None = None,
) -> ScopeListing:
    """Read every page of DescribeSourceServers for `scope`.

    `drs_client(scope)` returns the DRS client for the scope (it may raise AssumeRoleError);
    `on_call()` runs before each DescribeSourceServers call (the run counts them). Never
    raises for an AWS failure: the failure becomes the listing's status, error code, a
    message without AWS text (see `shared.messages`) and the AWS text as `error_detail`.
    Fails closed: an answer without an `items` list or with a non-string `nextToken` is
    `MalformedResponse`; a `nextToken` seen before, or more than `max_pages` pages, is
    `PaginationLoop`; the deadline stops paging (`SKIPPED`, `DeadlineReached`).
    A "no DRS here" error after a page succeeded keeps its status here; the pipeline decides
    that it contradicts the pages before it (`pages` says how many there were).
    """
    pages = 0
    servers: list[Any] = []
    seen_tokens: set[str] = set()
    try:
        client = drs_client(scope)
        token: str | None = None
        while True:
            if deadline is not None:
                deadline.check(f"listing {scope.account_id}/{scope.region}")
            if pages >= max_pages:
                raise _ListingFault(
                    PAGINATION_LOOP, f"more than {max_pages} pages: the listing does not end"
                )
            request: dict[str, Any] = {"maxResults": page_size, "filters": {}}
            if token:
                request["nextToken"] = token
            if on_call is not None:
                on_call()
            response = client.describe_source_servers(**request)
            items = response.get("items")
            if not isinstance(items, list):
                raise _ListingFault(
                    MALFORMED_RESPONSE,
                    f"page {pages + 1} has no items list ({type(items).__name__})",
                )
            pages += 1
            servers.extend(items)
            token = response.get("nextToken")
            if token is None or token == "":
                break
            if not isinstance(token, str):
                raise _ListingFault(
                    MALFORMED_RESPONSE, f"page {pages} has a {type(token).__name__} token"
                )
            if token in seen_tokens:
                raise _ListingFault(PAGINATION_LOOP, f"page {pages} repeats an earlier nextToken")
            seen_tokens.add(token)
    except DeadlineReachedError as exc:
        return ScopeListing(
            scope,
            ScopeStatus.SKIPPED,
            pages=pages,
            error_code=exc.error_code,
            error_message=str(exc),  # the sync's own words: which scope, at which step
        )
    except _ListingFault as exc:
        return ScopeListing(
            scope, ScopeStatus.ERROR, pages=pages, error_code=exc.code, error_message=str(exc)
        )
    except AssumeRoleError as exc:
        status = status_for_error_code(exc.aws_error_code)
        if status is ScopeStatus.REGION_NOT_ENABLED:
            status = ScopeStatus.ERROR  # STS is global; a token error there is not a region's
        return _failed(scope, status, pages, exc.error_code, str(exc))
    except ClientError as exc:
        code = error_code(exc)
        return _failed(scope, status_for_error_code(code), pages, code, error_message(exc))
    except BotoCoreError as exc:
        return _failed(scope, ScopeStatus.ERROR, pages, type(exc).__name__, str(exc))
    return ScopeListing(scope, ScopeStatus.ACTIVE, servers=tuple(servers), pages=pages)


def _failed(
    scope: Scope, status: ScopeStatus, pages: int, code: str, aws_text: str
) -> ScopeListing:
    """A listing AWS refused: readers get the code's generic message, the logs `aws_text`
    (it can name role ARNs, other accounts and request ids)."""
    return ScopeListing(
        scope,
        status,
        pages=pages,
        error_code=code,
        error_message=reader_message(code, status),
        error_detail=aws_text,
    )
