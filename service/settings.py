"""The settings, section by section, and how they are read: `litestar.toml` (or the file
PAYMENTS_CONFIG names) holds every default, commented; the PAYMENTS_* environment
variables override it."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from service.signing import secret_key, split_secrets


class ServerSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8001
    workers: int = 1
    max_body_bytes: int = 16384
    max_batch_body_bytes: int = 1048576
    # "auto": by the machine's cores (service/outbox/processes.py relay_processes_for).
    relay_processes: int | Literal["auto"] = "auto"
    header_read_timeout_seconds: float = 5.0
    body_read_timeout_seconds: float = 5.0
    max_connections: int = 8192
    backlog: int = 2048


# How long a migration's statement waits for a lock before it gives up and tries again
# later (service/db/migrate.py): the longest the service's queries queue behind it.
MIGRATION_LOCK_TIMEOUT_SECONDS = 2.0


class DatabaseSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: str = ""
    embedded_dir: str = ".data/pg"
    migrate_on_start: bool = True
    migration_lock_timeout_seconds: float = MIGRATION_LOCK_TIMEOUT_SECONDS
    pool_min_size: int = 4
    pool_max_size: int = 16
    command_timeout: float = 5.0
    pooler: Literal["none", "pgbouncer-transaction"] = "none"
    direct_url: str = ""

    # The read side's streaming replica (empty: reads go to the primary), and how
    # stale it may be before reads go to the primary instead; see service/db/reader.py.
    read_url: str = ""
    read_max_lag_seconds: float = 5.0
    read_probe_interval_seconds: float = 1.0

    def __post_init__(self) -> None:
        # PostgreSQL reads a lock_timeout of 0 as "wait for ever": the outage it prevents.
        if not self.migration_lock_timeout_seconds > 0:
            raise ValueError("database.migration_lock_timeout_seconds must be positive")
        # LISTEN through a transaction pooler hears nothing once its transaction ends.
        if self.pooler != "none" and not (self.url and self.direct_url):
            raise ValueError(f"database.pooler {self.pooler!r} needs url and direct_url")
        # The probe knows the replica current only as of its previous round, so a
        # bound under the interval would call a replica that keeps up "lagging".
        if self.read_max_lag_seconds <= self.read_probe_interval_seconds:
            raise ValueError(
                "database.read_max_lag_seconds must exceed database.read_probe_interval_seconds"
            )


def _masked(struct: msgspec.Struct, secrets: tuple[str, ...]) -> str:
    """A repr that names every field but shows none of the secrets: settings end up in
    tracebacks and debugger output, and a key must never be there."""
    fields = []
    for name in struct.__struct_fields__:
        value = getattr(struct, name)
        shown = "'***'" if name in secrets and value else repr(value)
        fields.append(f"{name}={shown}")
    return f"{type(struct).__name__}({', '.join(fields)})"


class OrderServiceSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: str = "http://localhost:8000"
    # One secret, or several while the Order Service moves from the old to the new one.
    webhook_secret: str | tuple[str, ...] = ""

    @property
    def webhook_secrets(self) -> tuple[str, ...]:
        return split_secrets(self.webhook_secret)

    def __repr__(self) -> str:
        return _masked(self, ("webhook_secret",))


# A failure code is a stable machine word (service/domain/failures.py lists the known ones).
FAILURE_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")


class GatewaySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # "simulator" (built in, the default) or "stripe" (service/gateway/stripe.py).
    kind: Literal["simulator", "stripe"] = "simulator"
    mode: Literal["sync", "async"] = "sync"
    decline_amounts: tuple[int, ...] = ()
    # Amount (whole yen, as a TOML key) -> the failure code the simulator declines it with.
    decline_codes: dict[str, str] = {}
    # Payment amounts (whole yen) whose refund the simulator refuses.
    refuse_refund_amounts: tuple[int, ...] = ()
    # Stripe: the secret key, the API's base URL, and the webhook endpoint's secrets (one,
    # or several while rotating).
    stripe_api_key: str = ""
    stripe_api_base: str = "https://api.stripe.com"
    stripe_webhook_secret: str | tuple[str, ...] = ""
    # Requests a second to the gateway at most, shared by every call of a process.
    max_requests_per_second: float = 25.0
    # A payment waiting for its buyer (PENDING) this long is cancelled at the gateway.
    authentication_timeout_seconds: float = 3600.0
    # One secret, or several while the gateway moves from the old to the new one.
    callback_secret: str | tuple[str, ...] = ""
    callback_tolerance_seconds: int = 300
    callback_retention_days: float = 30.0
    charge_timeout_seconds: float = 10.0
    reconcile_after_seconds: float = 60.0
    reconcile_interval_seconds: float = 15.0
    manual_review_after_seconds: float = 86400.0

    @property
    def callback_secrets(self) -> tuple[str, ...]:
        return split_secrets(self.callback_secret)

    @property
    def stripe_webhook_secrets(self) -> tuple[str, ...]:
        return split_secrets(self.stripe_webhook_secret)

    def __repr__(self) -> str:
        return _masked(self, ("callback_secret", "stripe_api_key", "stripe_webhook_secret"))

    def __post_init__(self) -> None:
        if self.kind == "stripe" and not self.stripe_api_key:
            raise ValueError(
                "gateway.kind is stripe: set the secret key (PAYMENTS_STRIPE_API_KEY, "
                "[gateway] stripe_api_key)"
            )
        if self.max_requests_per_second <= 0:
            raise ValueError("gateway.max_requests_per_second must be positive")
        if self.authentication_timeout_seconds <= 0:
            raise ValueError("gateway.authentication_timeout_seconds must be positive")
        for amount, code in self.decline_codes.items():
            # ASCII digits only: isdigit() also takes "²" and other scripts' digits.
            if not (amount.isascii() and amount.isdigit()):
                raise ValueError(f"gateway.decline_codes: {amount!r} is not a whole yen amount")
            if not FAILURE_CODE.fullmatch(code):
                raise ValueError(f"gateway.decline_codes: {code!r} is not a failure code")
        # An id must at least outlive the acceptance of the signed callback that carried it.
        if self.callback_retention_days * 86400 <= self.callback_tolerance_seconds:
            raise ValueError(
                "gateway.callback_retention_days must exceed gateway.callback_tolerance_seconds"
            )
        if self.charge_timeout_seconds <= 0:
            raise ValueError("gateway.charge_timeout_seconds must be positive")
        # Asked earlier, the gateway could be asked about a charge still in flight,
        # and answer for a charge that is about to change.
        if self.reconcile_after_seconds <= self.charge_timeout_seconds:
            raise ValueError(
                "gateway.reconcile_after_seconds must exceed gateway.charge_timeout_seconds"
            )


class OutboxSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    relay_in_process: bool = True
    concurrency: int = 32
    batch_size: int = 100
    poll_interval_seconds: float = 1.0
    lease_seconds: float = 30.0
    request_timeout_seconds: float = 5.0
    retry_schedule_seconds: tuple[float, ...] = (5, 30, 120, 600, 1800, 7200, 18000, 36000)
    retention_days: float = 7.0
    max_lag_seconds: float = 60.0
    breaker_failures: int = 5
    breaker_min_pause_seconds: float = 1.0
    breaker_max_pause_seconds: float = 60.0


class IdempotencySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ttl_hours: float = 24.0
    lock_seconds: float = 60.0


class AuthSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tokens: tuple[str, ...] = ()
    # Tokens that may only read (GET, HEAD, OPTIONS); any other method is 403.
    read_only_tokens: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if set(self.tokens) & set(self.read_only_tokens):
            raise ValueError("auth: a token cannot be both in tokens and in read_only_tokens")

    @property
    def enabled(self) -> bool:
        """Any token of either kind turns authentication on."""
        return bool(self.tokens or self.read_only_tokens)

    def __repr__(self) -> str:
        return _masked(self, ("tokens", "read_only_tokens"))


class ConsoleSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # How long a console session lasts after signing in (or, with no tokens, after the
    # first page), whatever is done meanwhile.
    session_hours: float = 8.0

    def __post_init__(self) -> None:
        if not self.session_hours > 0:
            raise ValueError("console.session_hours must be positive")


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    order_service: OrderServiceSettings = OrderServiceSettings()
    gateway: GatewaySettings = GatewaySettings()
    outbox: OutboxSettings = OutboxSettings()
    idempotency: IdempotencySettings = IdempotencySettings()
    auth: AuthSettings = AuthSettings()
    console: ConsoleSettings = ConsoleSettings()


# Environment variable -> (section, key) of the contract's overrides.
ENV_OVERRIDES = {
    "PAYMENTS_DATABASE_URL": ("database", "url"),
    "PAYMENTS_DIRECT_DATABASE_URL": ("database", "direct_url"),
    "PAYMENTS_DATABASE_POOLER": ("database", "pooler"),
    "PAYMENTS_READ_DATABASE_URL": ("database", "read_url"),
    "PAYMENTS_ORDER_SERVICE_URL": ("order_service", "url"),
    "PAYMENTS_WEBHOOK_SECRET": ("order_service", "webhook_secret"),
    "PAYMENTS_GATEWAY_SECRET": ("gateway", "callback_secret"),
    "PAYMENTS_GATEWAY_KIND": ("gateway", "kind"),
    "PAYMENTS_STRIPE_API_KEY": ("gateway", "stripe_api_key"),
    "PAYMENTS_STRIPE_API_BASE": ("gateway", "stripe_api_base"),
    "PAYMENTS_STRIPE_WEBHOOK_SECRET": ("gateway", "stripe_webhook_secret"),
}
# Comma-separated list variables -> (section, key).
ENV_LIST_OVERRIDES = {
    "PAYMENTS_API_TOKENS": ("auth", "tokens"),
    "PAYMENTS_API_READ_ONLY_TOKENS": ("auth", "read_only_tokens"),
}
# true/false variables -> (section, key). `payments serve` sets this one for its workers
# when it runs the relays as processes of their own.
ENV_BOOL_OVERRIDES = {
    "PAYMENTS_OUTBOX_RELAY_IN_PROCESS": ("outbox", "relay_in_process"),
}
BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class ConfigError(Exception):
    """The configuration file is missing, malformed or has a wrong value."""


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    # Empty is unset, as a shell's `PAYMENTS_CONFIG=` means: not the working directory.
    return Path(env.get("PAYMENTS_CONFIG") or "litestar.toml")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except OSError as exc:  # a directory, no permission
        raise ConfigError(f"{path} cannot be read: {exc.strerror or exc}") from exc


def _override(raw: dict[str, Any], section: str, key: str, value: object) -> None:
    table = raw.setdefault(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f"[{section}] must be a table, not {type(table).__name__}")
    table[key] = value


def _check_secrets(settings: Settings) -> None:
    """Refuse to start with a secret that cannot sign or verify anything, naming which
    one of a list (by position: the message must not carry the secret itself)."""
    named = {
        "order_service.webhook_secret": settings.order_service.webhook_secrets,
        "gateway.callback_secret": settings.gateway.callback_secrets,
    }
    for name, secrets in named.items():
        for number, secret in enumerate(secrets, start=1):
            try:
                secret_key(secret)
            except ValueError as exc:
                which = f" (secret {number} of {len(secrets)})" if len(secrets) > 1 else ""
                raise ConfigError(f"{name}{which}: {exc}") from exc


def _resolve_embedded_dir(settings: Settings, base: Path) -> Settings:
    """A relative [database] embedded_dir, made absolute against `base`.

    `base` is the config file's directory (or the working directory without a file),
    so the data stays where the file says whichever directory a command runs from.
    """
    embedded_dir = Path(settings.database.embedded_dir).expanduser()
    database = msgspec.structs.replace(
        settings.database, embedded_dir=str(base.absolute() / embedded_dir)
    )
    return msgspec.structs.replace(settings, database=database)


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (if present), then apply the environment overrides."""
    env = os.environ if env is None else env
    path = path or config_path(env)
    raw: dict[str, Any] = {}
    base = Path.cwd()
    if path.exists():
        raw = _read_toml(path)
        base = path.parent
    elif env.get("PAYMENTS_CONFIG"):
        raise ConfigError(f"PAYMENTS_CONFIG names {path}, which does not exist")
    for variable, (section, key) in ENV_OVERRIDES.items():
        if variable in env:
            _override(raw, section, key, env[variable])
    for variable, (section, key) in ENV_LIST_OVERRIDES.items():
        if variable in env:
            items = [item.strip() for item in env[variable].split(",") if item.strip()]
            _override(raw, section, key, items)
    for variable, (section, key) in ENV_BOOL_OVERRIDES.items():
        if variable in env:
            value = BOOLEANS.get(env[variable].strip().lower())
            if value is None:
                raise ConfigError(f"{variable} must be true or false, not {env[variable]!r}")
            _override(raw, section, key, value)
    try:
        settings = msgspec.convert(raw, Settings)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    _check_secrets(settings)
    return _resolve_embedded_dir(settings, base)
