"""Strict formats of the identifiers both handlers accept, and how values appear in errors.

Every format is matched in full and in ASCII: `re.fullmatch` (a `$` would accept a trailing
newline) on patterns compiled with `re.ASCII` and written with explicit classes (`[0-9]`, not
`\\d`, which also matches Arabic-Indic or fullwidth digits). An identifier that passes here is
safe to use as a DynamoDB key, in an ARN or in an STS call.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_LISTED = 10  # items an error message shows before "... and N more"
MAX_SHOWN_CHARS = 64  # characters of a refused string an error message repeats


@dataclass(frozen=True)
class TextFormat:
    """A string format: `description` names it in error messages (with an example)."""

    description: str
    regex: re.Pattern[str]
    max_length: int | None = None

    def matches(self, value: object) -> bool:
        """True when `value` is an ASCII string of at most `max_length` characters that the
        regex matches in full."""
        if not isinstance(value, str) or not value.isascii():
            return False
        if self.max_length is not None and len(value) > self.max_length:
            return False
        return self.regex.fullmatch(value) is not None


def _ascii(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII)


ACCOUNT_ID_PATTERN = "[0-9]{12}"
# aws (us-east-1, ap-southeast-3, il-central-1), aws-us-gov (us-gov-west-1), aws-cn, isolated.
REGION_PATTERN = "[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}"
PARTITION_PATTERN = "aws(?:-[a-z]+)*"
SOURCE_SERVER_ID_PATTERN = "s-[0-9a-zA-Z]{17}"
# IAM names and path segments: alphanumerics and +=,.@_- (IAM's documented character set).
IAM_NAME_CHARS = "[A-Za-z0-9+=,.@_-]"

ACCOUNT_ID = TextFormat("12 digits (ASCII), e.g. 123456789012", _ascii(ACCOUNT_ID_PATTERN))
REGION = TextFormat("an AWS region name such as us-east-1", _ascii(REGION_PATTERN))
# The name of one shard of a fan-out sync (its lease is named after it).
SHARD = TextFormat(
    "1-32 characters of a-z, 0-9 and -, e.g. batch-07", _ascii("[a-z0-9][a-z0-9-]{0,31}")
)
SOURCE_SERVER_ID = TextFormat(
    "a DRS source server ID like s-0123456789abcdef0", _ascii(SOURCE_SERVER_ID_PATTERN)
)
SOURCE_SERVER_ARN = TextFormat(
    "a DRS source server ARN like "
    "arn:aws:drs:us-east-1:123456789012:source-server/s-0123456789abcdef0",
    _ascii(
        f"arn:{PARTITION_PATTERN}:drs:(?P<region>{REGION_PATTERN}):"
        f"(?P<account>{ACCOUNT_ID_PATTERN}):source-server/(?P<id>{SOURCE_SERVER_ID_PATTERN})"
    ),
)
ROLE_ARN = TextFormat(
    "an IAM role ARN such as arn:aws:iam::123456789012:role/NAME (or role/PATH/NAME)",
    _ascii(
        f"arn:{PARTITION_PATTERN}:iam::(?P<account>{ACCOUNT_ID_PATTERN}):"
        f"role/(?:{IAM_NAME_CHARS}+/)*{IAM_NAME_CHARS}{{1,64}}"
    ),
    # IAM: a path of at most 512 characters and a name of at most 64, within the prefix.
    max_length=len("arn:aws-iso-b:iam::123456789012:role") + 512 + 64,
)
# STS ExternalId: AWS's pattern [\w+=,.@:/-]*, 2-1224 characters (\w is ASCII under re.ASCII).
EXTERNAL_ID = TextFormat(
    "2-1224 characters of ASCII letters, digits and _+=,.@:/-",
    _ascii(r"[\w+=,.@:/-]{2,1224}"),
)

# The external ids the registry holds: STS's characters, at least 32 of them (a hub-generated
# id has 43), so an id is as hard to guess as a key. Shorter ones are refused, not padded.
EXTERNAL_ID_MIN_LENGTH = 32
REGISTERED_EXTERNAL_ID = TextFormat(
    f"{EXTERNAL_ID_MIN_LENGTH}-1224 characters of ASCII letters, digits and _+=,.@:/- "
    "(omit it and the hub generates one)",
    _ascii(rf"[\w+=,.@:/-]{{{EXTERNAL_ID_MIN_LENGTH},1224}}"),
)
# The target-account role's name, as the hub's role may assume it (drs-orchestration-*).
TARGET_ROLE_NAME = TextFormat(
    "an IAM role name starting drs-orchestration- (64 characters at most), "
    "e.g. drs-orchestration-cross-account",
    _ascii(f"drs-orchestration-{IAM_NAME_CHARS}{{1,46}}"),
)


def account_of(arn_format: TextFormat, value: str) -> str | None:
    """The account id inside an ARN of `arn_format` (ROLE_ARN, SOURCE_SERVER_ARN), or None."""
    match = arn_format.regex.fullmatch(value) if arn_format.matches(value) else None
    return match.group("account") if match else None


def json_type(value: object) -> str:
    """The JSON name of a value's type (null, boolean, number, string, list, object)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def shown(value: object) -> str:
    """A refused value as an error message shows it: a string's repr, cut after
    MAX_SHOWN_CHARS characters; anything else only by its JSON type (never its repr, which
    can be huge or, for deeply nested input, recurse without end)."""
    if isinstance(value, str):
        if len(value) <= MAX_SHOWN_CHARS:
            return repr(value)
        return f"{value[:MAX_SHOWN_CHARS]!r}... ({len(value)} characters)"
    if isinstance(value, bool) or value is None:
        return json_type(value)
    if isinstance(value, int) and abs(value) < 10**18:
        return str(value)
    name = json_type(value)
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def listed(items: Iterable[str], limit: int = MAX_LISTED) -> str:
    """`a, b, c`: at most `limit` items, then "... and N more" for the rest."""
    all_items = list(items)
    head = ", ".join(all_items[:limit])
    rest = len(all_items) - limit
    return f"{head} ... and {rest} more" if rest > 0 else head
