"""AWS clients: built once per execution environment, handed out per run by a ClientFactory.

A warm Lambda environment keeps its module state between invocations, so the sessions and
clients live in a `ClientPool` for the process's life (the documented Lambda practice:
building a botocore client costs milliseconds of CPU, 1,120 scopes cost seconds). What must
be fresh every run is not the client but the credentials: each run's `ClientFactory`
assumes every target account's role once and puts the new credentials into that account's
`AccountCredentials`, which every client of the account signs with on its next request.

boto3 clients are thread-safe once built, but building them from a session is not, so every
client is built under the pool's lock. Endpoints come from boto3's standard configuration
(`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DRS`, ...), so the same code talks to AWS, to moto
and to the local DRS simulator; a pool belongs to one such configuration (a change of any
`AWS_*` variable, as tests make, starts a new pool).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    CredentialProvider,
    CredentialResolver,
    Credentials,
    ReadOnlyCredentials,
)
from botocore.exceptions import BotoCoreError, ClientError

from shared.config import ENVIRONMENT_ENV
from shared.exceptions import AssumeRoleError, ExternalIdMissingError

DEFAULT_MAX_ATTEMPTS = 5
# Assumed credentials live as short as STS allows: a run ends within 15 minutes.
ASSUME_ROLE_SECONDS = 900
HUB = "hub"  # the owner of clients signed with the function's own credentials

# Reading botocore's model and endpoint JSON costs ~0.1-2 s per new session; one loader kept
# for the process's life (a warm Lambda container) makes later sessions nearly free.
_SHARED_LOADER = botocore.loaders.create_loader()


def session_text(text: str) -> str:
    """`text` with only the characters STS allows in session names and source identities
    (cut to 20: room for a run id in a 64-character session name)."""
    return re.sub(r"[^A-Za-z0-9+=,.@-]", "-", text)[:20]


def deployment_name() -> str:
    """The deployment's environment name as STS names allow it ("local" when unset)."""
    return session_text(os.environ.get(ENVIRONMENT_ENV) or "local")


def hub_source_identity() -> str:
    """The SourceIdentity the hub sets on the target roles it assumes (the sync and the
    connection test alike, so a trust policy that names it admits both)."""
    return f"drs-inventory-sync-{deployment_name()}"


def error_code(exc: ClientError) -> str:
    """The AWS error code `exc` carries ("Unknown" when none): codes decide, never messages."""
    return str(exc.response.get("Error", {}).get("Code") or "Unknown")


def error_message(exc: ClientError) -> str:
    """The AWS error message `exc` carries, or its text."""
    return str(exc.response.get("Error", {}).get("Message") or exc)


class AccountCredentials(Credentials):
    """The credentials of one assumed account, replaced in place by each run's AssumeRole.

    botocore asks a client's credentials object for a frozen copy on every request
    (`get_frozen_credentials`, the public method every credentials class provides), so a
    client built once signs each request with what the current run assumed. Empty (never
    assumed, or the last assume failed) it yields None and botocore refuses to sign
    (NoCredentialsError): an account is never read with stale or foreign credentials.
    """

    def __init__(self) -> None:  # no super().__init__: the values live in `_frozen`
        self.method = "assume-role"
        self._frozen: ReadOnlyCredentials | None = None

    def update(self, assumed: dict[str, Any]) -> None:
        """Use the `Credentials` of an AssumeRole answer from now on."""
        self._frozen = ReadOnlyCredentials(
            assumed["AccessKeyId"], assumed["SecretAccessKey"], assumed["SessionToken"], None
        )

    def clear(self) -> None:
        self._frozen = None

    def get_frozen_credentials(self) -> ReadOnlyCredentials | None:  # type: ignore[override]
        return self._frozen

    @property
    def access_key(self) -> str | None:  # type: ignore[override]
        return self._frozen.access_key if self._frozen else None

    @property
    def secret_key(self) -> str | None:  # type: ignore[override]
        return self._frozen.secret_key if self._frozen else None

    @property
    def token(self) -> str | None:  # type: ignore[override]
        return self._frozen.token if self._frozen else None

    @property
    def account_id(self) -> str | None:
        return None


class _FixedCredentialProvider(CredentialProvider):
    """A session's only credential source: one AccountCredentials object."""

    METHOD = "assume-role"

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Credentials:
        return self._credentials


def new_session(credentials: Credentials | None = None) -> boto3.Session:
    """A boto3 Session sharing the model loader: credentials from the environment, or
    `credentials` (an assumed account's) as its only source."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _SHARED_LOADER)
    if credentials is not None:
        core.register_component(
            "credential_provider", CredentialResolver([_FixedCredentialProvider(credentials)])
        )
    return boto3.Session(botocore_session=core)


SessionFactory = Callable[..., boto3.Session]  # (credentials=None) -> Session


def make_config(max_pool_connections: int = 10, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Config:
    """The botocore Config every client shares: standard retries with backoff, bounded timeouts."""
    return Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=max_pool_connections,
        tcp_keepalive=True,
    )


def _config_key(config: Config) -> tuple[Any, ...]:
    """What makes two Configs build different clients (Config itself is not hashable)."""
    values = vars(config)  # a Config keeps its options as instance attributes
    retries = values.get("retries") or {}
    # botocore rewrites a Config's `max_attempts` (retries) into `total_max_attempts` (retries
    # + 1) in place when it builds a client: count attempts the same way either way.
    attempts = retries.get("total_max_attempts")
    if attempts is None and retries.get("max_attempts") is not None:
        attempts = retries["max_attempts"] + 1
    names = ("connect_timeout", "read_timeout", "max_pool_connections", "parameter_validation")
    return (*(values.get(name) for name in names), retries.get("mode"), attempts)


@dataclass(frozen=True)
class AccountAccess:
    """How to reach one account: the hub's own credentials (role_arn None) or an assumed role."""

    account_id: str
    role_arn: str | None = None
    external_id: str | None = None


class ClientPool:
    """Sessions and clients kept for the life of an execution environment.

    `session_factory(credentials=None)` builds sessions (default `new_session`, looked up
    when called): one for the function's own credentials, one per assumed account holding
    that account's AccountCredentials. Clients are cached by (service, owner, region,
    config, label), owner being HUB or an account id. Thread-safe.
    """

    def __init__(self, session_factory: SessionFactory | None = None) -> None:
        self._session_factory = session_factory
        self._lock = threading.Lock()
        self._hub_session: boto3.Session | None = None
        self._account_sessions: dict[str, boto3.Session] = {}
        self._account_credentials: dict[str, AccountCredentials] = {}
        self._clients: dict[tuple[Any, ...], Any] = {}
        self.hub_account_id: str | None = None
        self.clients_built = 0

    def _new_session(self, credentials: Credentials | None = None) -> boto3.Session:
        factory = self._session_factory or new_session
        return factory(credentials) if credentials is not None else factory()

    @property
    def hub_session(self) -> boto3.Session:
        with self._lock:
            if self._hub_session is None:
                self._hub_session = self._new_session()
            return self._hub_session

    def credentials(self, account_id: str) -> AccountCredentials:
        """The credentials object every client of `account_id` signs with."""
        with self._lock:
            return self._account_credentials.setdefault(account_id, AccountCredentials())

    def client(self, service: str, owner: str, region: str, config: Config, label: str = "") -> Any:
        """The cached client, built on first use from the owner's session."""
        key = (service, owner, region, label, _config_key(config))
        client = self._clients.get(key)
        if client is not None:
            return client
        credentials = None if owner == HUB else self.credentials(owner)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                if owner == HUB:
                    if self._hub_session is None:
                        self._hub_session = self._new_session()
                    session: boto3.Session = self._hub_session
                else:
                    known = self._account_sessions.get(owner)
                    if known is None:
                        known = self._account_sessions[owner] = self._new_session(credentials)
                    session = known
                client = session.client(service, region_name=region, config=config)  # type: ignore[call-overload]
                self._clients[key] = client
                self.clients_built += 1
        return client

    def resource(self, service: str, region: str | None = None) -> Any:
        """A boto3 resource of the function's own account (the registry's and the
        query-handler's tables), built once. Resources are not thread-safe: for handlers
        that use them from the invocation's thread only."""
        key = ("resource:" + service, HUB, region or "", "", ())
        with self._lock:
            resource = self._clients.get(key)
            if resource is None:
                if self._hub_session is None:
                    self._hub_session = self._new_session()
                resource = self._hub_session.resource(service, region_name=region)  # type: ignore[call-overload]
                self._clients[key] = resource
                self.clients_built += 1
        return resource

    def hub_account(self, region: str | None = None, config: Config | None = None) -> str:
        """The account of the function's own credentials (STS GetCallerIdentity, asked once
        per pool, in `region` with `config`: defaults the session's region, make_config())."""
        if self.hub_account_id is None:
            sts_region = region or self.hub_session.region_name or "us-east-1"
            sts = self.client("sts", HUB, sts_region, config or make_config())
            self.hub_account_id = str(sts.get_caller_identity()["Account"])
        return self.hub_account_id

    def disconnect(self, service: str, owner: str, region: str) -> None:
        """Close the connections of the cached client(s) of (service, owner, region).

        The client stays cached: its next request opens a new connection. A client used by
        one scope (DRS: one per account and region) would otherwise keep an open socket for
        the rest of the run, and 1,120 scopes would exceed Lambda's 1,024 file descriptors.
        """
        with self._lock:
            clients = [
                client
                for key, client in self._clients.items()
                if key[0] == service and key[1] == owner and key[2] == region
            ]
        for client in clients:
            client.close()

    def cached(self) -> list[tuple[str, str, str]]:
        """(service, owner, region) of every client held now."""
        with self._lock:
            return sorted({(key[0], key[1], key[2]) for key in self._clients})

    def close(self) -> None:
        with self._lock:
            clients = [c for key, c in self._clients.items() if not key[0].startswith("resource:")]
            self._clients.clear()
        for client in clients:
            client.close()


_environment_pool: tuple[tuple[tuple[str, str], ...], ClientPool] | None = None
_environment_lock = threading.Lock()


def _fingerprint() -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))


def set_environment_pool(pool: ClientPool) -> ClientPool | None:
    """Make `pool` the process's pool for the current AWS configuration, for a host (or a
    test) that brings its own sessions. Returns the pool it replaced, if any."""
    global _environment_pool
    with _environment_lock:
        previous = _environment_pool
        _environment_pool = (_fingerprint(), pool)
    return previous[1] if previous is not None else None


def environment_pool() -> ClientPool:
    """The process's pool for the current AWS configuration (`AWS_*` variables).

    In Lambda the variables never change, so every warm invocation gets the same pool; a
    process whose AWS configuration changed (a test pointing at another local endpoint)
    gets a new one, and the old one's connections are closed.
    """
    global _environment_pool
    fingerprint = _fingerprint()
    with _environment_lock:
        current = _environment_pool
        if current is not None and current[0] == fingerprint:
            return current[1]
        _environment_pool = (fingerprint, ClientPool())
    if current is not None:
        current[1].close()
    return _environment_pool[1]


class ClientFactory:
    """One run's view of a ClientPool: which accounts it reaches and with what credentials.

    `pool` defaults to `environment_pool()`. Each target account's role is assumed at most
    once per factory (per run); a failed assume is remembered and raised again as
    AssumeRoleError, never replaced by hub credentials (nor by an earlier run's).
    """

    def __init__(
        self,
        pool: ClientPool | None = None,
        *,
        config: Config | None = None,
        role_session_name: str = "drs-inventory-sync",
        sts_region: str | None = None,
    ) -> None:
        self._pool = pool or environment_pool()
        self._config = config or make_config()
        self._role_session_name = role_session_name
        self._source_identity: str | None = None
        self._sts_region = sts_region or self._pool.hub_session.region_name or "us-east-1"
        self._lock = threading.Lock()
        self._account_locks: dict[str, threading.Lock] = {}
        self._assumed: set[str] = set()
        self._assume_failures: dict[str, AssumeRoleError] = {}
        self._access: dict[str, AccountAccess] = {}
        self._assume_role_calls = 0

    @property
    def config(self) -> Config:
        return self._config

    def identify(self, session_name: str, source_identity: str | None = None) -> None:
        """Name this run's AssumeRole sessions (CloudTrail in the target account shows the
        name, and `source_identity` follows any role chained from them). Call before the
        first client of an assumed account."""
        self._role_session_name = session_name[:64]
        self._source_identity = source_identity[:64] if source_identity else None

    @property
    def pool(self) -> ClientPool:
        return self._pool

    @property
    def assume_role_calls(self) -> int:
        with self._lock:
            return self._assume_role_calls

    def tune(self, overrides: Config) -> None:
        """Merge `overrides` (timeouts, retries) into the Config of clients handed out now on."""
        with self._lock:
            self._config = self._config.merge(overrides)

    @property
    def home_region(self) -> str:
        """The region the function runs in (its tables and STS live there)."""
        return self._sts_region

    def hub_account_id(self) -> str:
        """The account the function runs in (STS GetCallerIdentity, asked once per pool)."""
        return self._pool.hub_account(self._sts_region, self._config)

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
        `config` is merged over the shared Config; `label` names a client of its own (for
        example tighter timeouts for the last writes of a run, or a client whose serializer
        is replaced). Raises AssumeRoleError when the account's role cannot be assumed in
        this run, and KeyError when a non-hub account was never registered.
        """
        owner = self._owner(account_id)
        with self._lock:
            merged = self._config
        if not validate:
            merged = merged.merge(Config(parameter_validation=False))
        if config is not None:
            merged = merged.merge(config)
        if owner != HUB:
            self._assume(owner)
        return self._pool.client(service, owner, region, merged, label)

    def release(self, service: str, region: str, account_id: str | None = None) -> None:
        """Close the connections of the client(s) for (service, region, account); the clients
        stay for the next run (see ClientPool.disconnect)."""
        self._pool.disconnect(service, self._owner(account_id), region)

    def connect(self, account_id: str) -> None:
        """Assume `account_id`'s role now, if this run has not (nothing to do for the hub).
        Raises AssumeRoleError (ExternalIdMissingError when no external id is registered)."""
        owner = self._owner(account_id)
        if owner != HUB:
            self._assume(owner)

    def _owner(self, account_id: str | None) -> str:
        account = account_id or self.hub_account_id()
        is_hub = account == self.hub_account_id()
        if is_hub and self._access.get(account, AccountAccess(account)).role_arn is None:
            return HUB
        return account

    def _assume(self, account_id: str) -> None:
        with self._lock:
            account_lock = self._account_locks.setdefault(account_id, threading.Lock())
        # Concurrent scopes of one account wait for a single AssumeRole instead of racing.
        with account_lock:
            if account_id in self._assumed:
                return
            if account_id in self._assume_failures:
                raise self._assume_failures[account_id]
            credentials = self._pool.credentials(account_id)
            try:
                credentials.update(self._assume_role(account_id))
            except AssumeRoleError as error:
                credentials.clear()  # nothing signs for this account with older credentials
                self._assume_failures[account_id] = error
                raise
            self._assumed.add(account_id)

    def _assume_role(self, account_id: str) -> dict[str, Any]:
        access = self._access[account_id]
        if access.role_arn is None:
            raise AssumeRoleError(account_id, "(none)", "NoRoleArn", "no roleArn is registered")
        if not access.external_id:
            # The hub never assumes a target account's role without an external id: a role
            # that trusts the hub without one can be made to act for anyone who can name it.
            raise ExternalIdMissingError(account_id, access.role_arn)
        params: dict[str, Any] = {
            "RoleArn": access.role_arn,
            "RoleSessionName": self._role_session_name,
            "DurationSeconds": ASSUME_ROLE_SECONDS,
            "ExternalId": access.external_id,
        }
        if self._source_identity:
            params["SourceIdentity"] = self._source_identity
        sts = self._pool.client("sts", HUB, self._sts_region, self._config)
        with self._lock:
            self._assume_role_calls += 1
        try:
            return dict(sts.assume_role(**params)["Credentials"])
        except ClientError as exc:
            raise AssumeRoleError(
                account_id, access.role_arn, error_code(exc), error_message(exc)
            ) from exc
        except BotoCoreError as exc:
            raise AssumeRoleError(
                account_id, access.role_arn, type(exc).__name__, str(exc)
            ) from exc
