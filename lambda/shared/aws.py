"""One client factory per run: hub credentials, one AssumeRole per target account, shared Config.

boto3 clients are thread-safe once built, but building them from a session is not, so
every client is built under one lock and cached by (service, account, region). Endpoints
come from boto3's standard configuration (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DRS`, ...),
so the same code talks to AWS, to moto and to the local DRS simulator.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shared.exceptions import AssumeRoleError

DEFAULT_MAX_ATTEMPTS = 5

# Reading botocore's model and endpoint JSON costs ~0.1-2 s per new session; one loader kept
# for the process's life (a warm Lambda container) makes later sessions nearly free.
_SHARED_LOADER = botocore.loaders.create_loader()


def error_code(exc: ClientError) -> str:
    """The AWS error code `exc` carries ("Unknown" when none): codes decide, never messages."""
    return str(exc.response.get("Error", {}).get("Code") or "Unknown")


def error_message(exc: ClientError) -> str:
    """The AWS error message `exc` carries, or its text."""
    return str(exc.response.get("Error", {}).get("Message") or exc)


def new_session() -> boto3.Session:
    """A fresh boto3 Session (credentials from the environment) sharing the model loader."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _SHARED_LOADER)
    return boto3.Session(botocore_session=core)


def make_config(max_pool_connections: int = 10, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Config:
    """The botocore Config every client shares: standard retries with backoff, bounded timeouts."""
    return Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=max_pool_connections,
        tcp_keepalive=True,
    )


@dataclass(frozen=True)
class AccountAccess:
    """How to reach one account: the hub's own credentials (role_arn None) or an assumed role."""

    account_id: str
    role_arn: str | None = None
    external_id: str | None = None


class ClientFactory:
    """Builds and caches boto3 clients per (service, account, region) for one run.

    `session` defaults to `new_session()` (hub credentials from the environment).
    Each target account's role is assumed at most once per factory; a failed assume is
    remembered and raised again as AssumeRoleError, never replaced by hub credentials.
    """

    def __init__(
        self,
        session: boto3.Session | None = None,
        *,
        config: Config | None = None,
        role_session_name: str = "drs-inventory-sync",
        sts_region: str | None = None,
    ) -> None:
        self._session = session or new_session()
        self._config = config or make_config()
        self._unvalidated_config = self._config.merge(Config(parameter_validation=False))
        self._role_session_name = role_session_name
        self._sts_region = sts_region or self._session.region_name or "us-east-1"
        self._lock = threading.Lock()
        self._account_locks: dict[str, threading.Lock] = {}
        self._clients: dict[tuple[str, str, str, bool, str], Any] = {}
        self._credentials: dict[str, dict[str, str]] = {}
        self._assume_failures: dict[str, AssumeRoleError] = {}
        self._access: dict[str, AccountAccess] = {}
        self._hub_account_id: str | None = None
        self.assume_role_calls = 0

    @property
    def config(self) -> Config:
        return self._config

    def tune(self, overrides: Config) -> None:
        """Merge `overrides` (timeouts, retries) into the Config of clients built from now on."""
        with self._lock:
            self._config = self._config.merge(overrides)
            self._unvalidated_config = self._unvalidated_config.merge(overrides)

    @property
    def home_region(self) -> str:
        """The region the function runs in (its tables and STS live there)."""
        return self._sts_region

    def hub_account_id(self) -> str:
        """The account the function runs in (STS GetCallerIdentity, asked once)."""
        if self._hub_account_id is None:
            identity = self._hub_client("sts", self._sts_region).get_caller_identity()
            self._hub_account_id = str(identity["Account"])
        return self._hub_account_id

    def register(self, access: AccountAccess) -> None:
        """Declare how an account is reached; the hub account needs no role."""
        self._access[access.account_id] = access

    def client(
        self,
        service: str,
        region: str,
        account_id: str | None = None,
        *,
        validate: bool = True,
        config: Config | None = None,
        label: str = "",
    ) -> Any:
        """A client for `service` in `region`, acting in `account_id` (default: the hub).

        `validate=False` skips botocore's client-side parameter validation: for requests the
        code builds itself (bulk DynamoDB writes), where it costs more CPU than the call.
        `config` is merged over the shared Config for a client of its own, cached under
        `label` (for example tighter timeouts for the last writes of a run).
        Raises AssumeRoleError when the account's role cannot be assumed, and KeyError
        when a non-hub account was never registered.
        """
        account = account_id or self.hub_account_id()
        key = (service, account, region, validate, label)
        cached = self._clients.get(key)
        if cached is not None:
            return cached
        base = self._config if validate else self._unvalidated_config
        merged = base.merge(config) if config is not None else base
        if (
            account == self.hub_account_id()
            and self._access.get(account, AccountAccess(account)).role_arn is None
        ):
            client = self._hub_client(service, region, validate, merged, label)
        else:
            credentials = self._assumed_credentials(account)
            with self._lock:
                client = self._clients.get(key) or self._session.client(  # type: ignore[call-overload]
                    service,
                    region_name=region,
                    config=merged,
                    aws_access_key_id=credentials["AccessKeyId"],
                    aws_secret_access_key=credentials["SecretAccessKey"],
                    aws_session_token=credentials["SessionToken"],
                )
                self._clients[key] = client
        return client

    def cached(self) -> list[tuple[str, str, str]]:
        """(service, account or "hub", region) of every client held now."""
        with self._lock:
            return sorted({(key[0], key[1], key[2]) for key in self._clients})

    def release(self, service: str, region: str, account_id: str | None = None) -> None:
        """Close and forget the cached client(s) for (service, region, account).

        A client used by one scope only (DRS: one per account and region) would otherwise
        keep its connection pool, and an open socket, for the rest of the run: 1,120 scopes
        would exceed Lambda's 1,024 file descriptors.
        """
        account = account_id or self.hub_account_id()
        # Hub clients are cached under "hub" (see _hub_client), assumed ones by account.
        owners = {account, "hub"} if account == self.hub_account_id() else {account}
        with self._lock:
            doomed = [
                self._clients.pop(key)
                for key in list(self._clients)
                if key[0] == service and key[2] == region and key[1] in owners
            ]
        for client in doomed:
            client.close()

    def _hub_client(
        self,
        service: str,
        region: str,
        validate: bool = True,
        config: Config | None = None,
        label: str = "",
    ) -> Any:
        key = (service, "hub", region, validate, label)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                chosen = config or (self._config if validate else self._unvalidated_config)
                client = self._session.client(  # type: ignore[call-overload]
                    service, region_name=region, config=chosen
                )
                self._clients[key] = client
        return client

    def _assumed_credentials(self, account_id: str) -> dict[str, str]:
        with self._lock:
            account_lock = self._account_locks.setdefault(account_id, threading.Lock())
        # Concurrent scopes of one account wait for a single AssumeRole instead of racing.
        with account_lock:
            if account_id in self._credentials:
                return self._credentials[account_id]
            if account_id in self._assume_failures:
                raise self._assume_failures[account_id]
            access = self._access[account_id]
            if access.role_arn is None:
                error = AssumeRoleError(
                    account_id, "(none)", "NoRoleArn", "no roleArn is registered"
                )
                self._assume_failures[account_id] = error
                raise error
            params: dict[str, Any] = {
                "RoleArn": access.role_arn,
                "RoleSessionName": self._role_session_name,
            }
            if access.external_id:
                params["ExternalId"] = access.external_id
            sts = self._hub_client("sts", self._sts_region)
            self.assume_role_calls += 1
            try:
                credentials = sts.assume_role(**params)["Credentials"]
            except ClientError as exc:
                error = AssumeRoleError(
                    account_id, access.role_arn, error_code(exc), error_message(exc)
                )
                self._assume_failures[account_id] = error
                raise error from exc
            except BotoCoreError as exc:
                error = AssumeRoleError(account_id, access.role_arn, type(exc).__name__, str(exc))
                self._assume_failures[account_id] = error
                raise error from exc
            self._credentials[account_id] = credentials
            return credentials
