"""Configuration: `litestar.toml` (or PAYMENTS_CONFIG) read into Settings, then the
PAYMENTS_* environment variables applied over it."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from service.settings import Settings
from service.signing import secret_key

# Environment variable -> (section, key) of the contract's overrides.
ENV_OVERRIDES = {
    "PAYMENTS_DATABASE_URL": ("database", "url"),
    "PAYMENTS_DIRECT_DATABASE_URL": ("database", "direct_url"),
    "PAYMENTS_DATABASE_POOLER": ("database", "pooler"),
    "PAYMENTS_READ_DATABASE_URL": ("database", "read_url"),
    "PAYMENTS_ORDER_SERVICE_URL": ("order_service", "url"),
    "PAYMENTS_WEBHOOK_SECRET": ("order_service", "webhook_secret"),
    "PAYMENTS_GATEWAY_SECRET": ("gateway", "callback_secret"),
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
    return Path(env.get("PAYMENTS_CONFIG", "litestar.toml"))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


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
    elif "PAYMENTS_CONFIG" in env:
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
