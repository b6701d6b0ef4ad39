"""Settings: read from the environment, validated at start, documented in the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.errors import SettingsError
from shared.settings import MICROSOFT_GRAPH_BASE_URL, MICROSOFT_LOGIN_BASE_URL, SETTING_DESCRIPTIONS, Settings

ROOT = Path(__file__).resolve().parents[2]
VALID = {
    "DataStorage": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
                   "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;",
    "ENTRA_CLIENT_ID": "3f0c2d9a-5b7e-4c1a-9d2f-8e6b4a1c0d57",
    "ENTRA_CLIENT_SECRET": "not-a-real-secret",
    "STATE_SIGNING_KEY": "k" * 32,
    "PUBLIC_BASE_URL": "https://rcc.example.com/",
}


def test_production_defaults_point_at_microsoft() -> None:
    settings = Settings.from_environment(VALID)
    assert settings.login_base_url == MICROSOFT_LOGIN_BASE_URL == "https://login.microsoftonline.com"
    assert settings.graph_base_url == MICROSOFT_GRAPH_BASE_URL == "https://graph.microsoft.com/v1.0"
    assert settings.consent_redirect_uri == "https://rcc.example.com/api/consent/callback"
    assert settings.connect_schedule == "0 */15 * * * *"
    assert settings.tls_verify is True


def test_secrets_are_not_in_the_repr() -> None:
    assert "not-a-real-secret" not in repr(Settings.from_environment(VALID))


@pytest.mark.parametrize("name", ["ENTRA_CLIENT_ID", "ENTRA_CLIENT_SECRET", "STATE_SIGNING_KEY", "PUBLIC_BASE_URL"])
def test_a_missing_setting_is_named(name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_environment({k: v for k, v in VALID.items() if k != name})


@pytest.mark.parametrize("name, value", [
    ("ENTRA_CLIENT_ID", "not-a-guid"),
    ("STATE_SIGNING_KEY", "short"),
    ("PUBLIC_BASE_URL", "http://rcc.example.com"),
    ("GRAPH_BASE_URL", "ftp://graph"),
    ("CONNECT_SCHEDULE", "*/15 * * * *"),
    ("FUNCTION_TIME_LIMIT_SECONDS", "ten"),
    ("CA_BUNDLE_PATH", "/no/such/file.pem"),
    ("DataStorage", "garbage"),
])
def test_a_malformed_setting_is_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_environment({**VALID, name: value})


def test_the_storage_connection_is_required() -> None:
    with pytest.raises(SettingsError, match="DataStorage"):
        Settings.from_environment({k: v for k, v in VALID.items() if k != "DataStorage"})


def test_managed_identity_storage_is_accepted() -> None:
    environment = {**{k: v for k, v in VALID.items() if k != "DataStorage"}, "DataStorage__accountName": "rccdata"}
    settings = Settings.from_environment(environment)
    assert settings.storage_account_name == "rccdata" and settings.storage_connection_string is None


def test_the_readme_documents_exactly_the_settings_read() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- settings-table:start -->")[1].split("<!-- settings-table:end -->")[0]
    documented = dict(re.findall(r"^\| `([^`]+)` \| (.+) \|$", table, flags=re.MULTILINE))
    assert documented == SETTING_DESCRIPTIONS
