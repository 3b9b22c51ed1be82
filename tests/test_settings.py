"""Configuration: litestar.toml holds every default; PAYMENTS_* variables override it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import msgspec
import pytest

from service.settings import ConfigError, Settings, load_settings
from tests.support.paths import PROJECT_ROOT

REPO_TOML = PROJECT_ROOT / "litestar.toml"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PAYMENTS_* variable of the developer's shell leaks into these tests."""
    import os

    for variable in list(os.environ):
        if variable.startswith("PAYMENTS_"):
            monkeypatch.delenv(variable)


def write(tmp_path: Path, text: str | bytes, name: str = "payments.toml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# --- the repository's file ---------------------------------------------------------------------


def test_the_repository_file_gives_the_default_address() -> None:
    settings = load_settings(REPO_TOML, env={})
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8001)


def test_the_repository_file_holds_every_default_and_only_the_defaults() -> None:
    in_file = tomllib.loads(REPO_TOML.read_text(encoding="utf-8"))
    defaults = msgspec.json.decode(msgspec.json.encode(Settings()))  # tuples as lists
    assert in_file.keys() == defaults.keys(), "sections"
    for section, values in defaults.items():
        assert in_file[section].keys() == values.keys(), f"keys of [{section}]"
        assert in_file[section] == values, f"values of [{section}]"


def defaults_with_data_in(base: Path) -> Settings:
    """The built-in defaults, with the relative embedded_dir resolved against `base`."""
    database = msgspec.structs.replace(
        Settings().database, embedded_dir=str(base / Settings().database.embedded_dir)
    )
    return msgspec.structs.replace(Settings(), database=database)


def test_the_repository_file_loads_as_the_defaults() -> None:
    assert load_settings(REPO_TOML, env={}) == defaults_with_data_in(PROJECT_ROOT)


def test_every_setting_of_the_repository_file_is_commented() -> None:
    """Each section of litestar.toml is documented ("every default, commented")."""
    lines = REPO_TOML.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if line.startswith("["):
            following = lines[number + 1 : number + 2]
            assert following and following[0].startswith("#"), f"{line} has no comment"


# --- environment overrides ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "section", "key", "value"),
    [
        ("PAYMENTS_DATABASE_URL", "database", "url", "postgresql://u:p@db.example:5432/pay"),
        (
            "PAYMENTS_DATABASE_URL",
            "database",
            "url",
            "postgresql://postgres:@/db?host=/var/run/postgresql",
        ),
        ("PAYMENTS_ORDER_SERVICE_URL", "order_service", "url", "http://orders.internal:8000"),
        ("PAYMENTS_WEBHOOK_SECRET", "order_service", "webhook_secret", "whsec_b3JkZXJz"),
        ("PAYMENTS_GATEWAY_SECRET", "gateway", "callback_secret", "whsec_Z2F0ZXdheQ=="),
    ],
)
def test_an_environment_variable_overrides_the_file(
    tmp_path: Path, variable: str, section: str, key: str, value: str
) -> None:
    path = write(
        tmp_path,
        '[database]\nurl = "postgresql://from-file/db"\n'
        '[order_service]\nurl = "http://from-file"\nwebhook_secret = "whsec_ZmlsZQ=="\n'
        '[gateway]\ncallback_secret = "whsec_ZmlsZQ=="\n',
    )
    from_file = load_settings(path, env={})
    overridden = load_settings(path, env={variable: value})

    assert getattr(getattr(overridden, section), key) == value
    assert getattr(getattr(from_file, section), key) != value
    # Nothing else changes.
    expected = msgspec.to_builtins(from_file)
    expected[section][key] = value
    assert msgspec.to_builtins(overridden) == expected


def test_the_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMENTS_ORDER_SERVICE_URL", "http://orders.example")
    assert load_settings(REPO_TOML).order_service.url == "http://orders.example"


def test_api_tokens_are_a_comma_separated_list(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), env={"PAYMENTS_API_TOKENS": " a1 , b2,, "})
    assert settings.auth.tokens == ("a1", "b2")


# --- which file ------------------------------------------------------------------------------


def test_payments_config_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[server]\nport = 9123\n[gateway]\nmode = "async"\n', "other.toml")
    monkeypatch.setenv("PAYMENTS_CONFIG", str(path))

    settings = load_settings()

    assert settings.server.port == 9123
    assert settings.gateway.mode == "async"
    # What the file leaves out keeps its default.
    assert settings.server.host == "127.0.0.1"


def test_payments_config_naming_a_missing_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYMENTS_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError):
        load_settings()


def test_payments_config_naming_a_directory_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYMENTS_CONFIG", str(tmp_path))
    with pytest.raises(ConfigError, match=f"{tmp_path} cannot be read: Is a directory"):
        load_settings()


def test_an_empty_payments_config_is_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "[server]\nport = 9556\n", "litestar.toml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAYMENTS_CONFIG", "")
    assert load_settings().server.port == 9556


def test_without_payments_config_the_file_is_litestar_toml_of_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "[server]\nport = 9555\n", "litestar.toml")
    monkeypatch.chdir(tmp_path)
    assert load_settings().server.port == 9555


def test_without_any_file_the_built_in_defaults_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings() == defaults_with_data_in(tmp_path)


# --- refused files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[server]\nbogus = 1\n",
        "[bogus]\nkey = 1\n",
        "top_level = true\n",
        '[server]\nport = "8001"\n',
        "[server]\nport = 80.5\n",
        "[database]\nmigrate_on_start = 1\n",
        '[gateway]\nmode = "sometimes"\n',
        "[gateway]\ndecline_amounts = [100.5]\n",
        '[gateway]\ndecline_amounts = "4040"\n',
        '[outbox]\nretry_schedule_seconds = ["5"]\n',
        'database = "postgresql://x/db"\n',
        "[server\nport = 1\n",
        "[server]\nport = \n",
    ],
    ids=[
        "unknown-key",
        "unknown-section",
        "unknown-top-level-key",
        "port-string",
        "port-float",
        "bool-as-int",
        "mode-unknown",
        "decline-float",
        "decline-string",
        "schedule-strings",
        "section-as-string",
        "malformed-header",
        "missing-value",
    ],
)
def test_a_wrong_file_is_a_config_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        load_settings(write(tmp_path, text), env={})


@pytest.mark.parametrize(
    ("text", "variable"),
    [
        ('database = "postgresql://x/db"\n', "PAYMENTS_DATABASE_URL"),
        ('order_service = "http://orders"\n', "PAYMENTS_ORDER_SERVICE_URL"),
        ("gateway = 1\n", "PAYMENTS_GATEWAY_SECRET"),
    ],
    ids=["database", "order_service", "gateway"],
)
def test_a_section_of_the_wrong_type_is_a_config_error_with_an_override_set(
    tmp_path: Path, text: str, variable: str
) -> None:
    with pytest.raises(ConfigError):
        load_settings(write(tmp_path, text), env={variable: "value"})


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_settings(write(tmp_path, b'[server]\nhost = "caf\xe9"\n'), env={})


@pytest.mark.parametrize(
    "gateway",
    [
        "charge_timeout_seconds = 10.0\nreconcile_after_seconds = 10.0\n",
        "charge_timeout_seconds = 90.0\n",
        "charge_timeout_seconds = 0.0\n",
    ],
    ids=["reconcile-at-the-timeout", "timeout-above-reconcile", "no-timeout"],
)
def test_a_reconciler_that_could_ask_while_a_charge_is_in_flight_is_a_config_error(
    tmp_path: Path, gateway: str
) -> None:
    with pytest.raises(ConfigError, match="charge_timeout_seconds"):
        load_settings(write(tmp_path, "[gateway]\n" + gateway), env={})


def test_callback_ids_are_kept_30_days_and_never_less_than_a_callback_is_accepted(
    tmp_path: Path,
) -> None:
    assert load_settings(write(tmp_path, ""), env={}).gateway.callback_retention_days == 30.0
    shorter = "[gateway]\ncallback_tolerance_seconds = 300\ncallback_retention_days = 0.003\n"
    with pytest.raises(ConfigError, match="callback_retention_days must exceed"):
        load_settings(write(tmp_path, shorter), env={})
