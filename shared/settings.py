"""The product's settings: one frozen dataclass read from the environment.

Owns the names, defaults and validation of every app setting. It must never
hold a secret's value in a log line or an error message: errors name the
setting, not its content. Production defaults point at Microsoft's real
endpoints; only configuration points them at the simulator.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from shared.errors import SettingsError
from shared.identifiers import GUID

MICROSOFT_LOGIN_BASE_URL = "https://login.microsoftonline.com"
MICROSOFT_GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"
DEFAULT_CONNECT_SCHEDULE = "0 */15 * * * *"
DEFAULT_UPLOADS_CONTAINER = "calendar-uploads"
DEFAULT_ADMIN_ROLE = "administrator"
DEFAULT_SYNC_SWEEP_SCHEDULE = "0 5 * * * *"

# Every setting the app reads, with what it is for. The README's settings table,
# local.settings.example.json and infra/ are checked against this list by tests.
SETTING_DESCRIPTIONS: dict[str, str] = {
    "DataStorage": "Connection string of the app's storage account (Azurite locally). "
    "Leave unset in Azure and set DataStorage__accountName instead.",
    "DataStorage__accountName": "Storage account name, reached with the managed identity "
    "(DefaultAzureCredential). Used when DataStorage is unset.",
    "ENTRA_CLIENT_ID": "Application (client) id of the product's multi-tenant Entra app registration.",
    "ENTRA_CLIENT_SECRET": "Client secret of that app registration. In Azure a Key Vault reference.",
    "STATE_SIGNING_KEY": "Key (at least 32 characters) that signs admin-consent state. "
    "In Azure a Key Vault reference.",
    "PUBLIC_BASE_URL": "Public https base URL of the Function App, e.g. https://rcc.example.com; "
    "the consent redirect URI and the webhook URLs are built from it.",
    "ADMIN_PAGE_URL": "Where the consent callback sends the admin back to. Defaults to PUBLIC_BASE_URL + '/'.",
    "ADMIN_ROLE": "Role an authenticated principal needs to use the admin API (default 'administrator').",
    "LOGIN_BASE_URL": "Microsoft identity platform base URL (default https://login.microsoftonline.com).",
    "GRAPH_BASE_URL": "Microsoft Graph base URL with version (default https://graph.microsoft.com/v1.0).",
    "CA_BUNDLE_PATH": "Optional PEM bundle of the certificate authorities trusted for calls to Entra ID "
    "and Graph instead of the system's (the local simulator's CA). Never disables verification.",
    "CONNECT_SCHEDULE": "NCRONTAB schedule of the connector timer (default '0 */15 * * * *').",
    "UPLOADS_CONTAINER": "Blob container the CSV import watches (default 'calendar-uploads').",
    "FUNCTION_TIME_LIMIT_SECONDS": "Seconds a background run may work before it stops claiming "
    "new work (default 480, below the host's functionTimeout).",
    "MAX_BOOKING_HOURS": "Longest booking the bookings API writes to a room's calendar, in hours (default 24).",
    "SYNC_DAYS_BACK": "Days before today whose bookings are kept (default 1).",
    "SYNC_DAYS_AHEAD": "Days after today whose bookings are kept (default 180). The window moves daily.",
    "SYNC_SWEEP_SCHEDULE": "NCRONTAB schedule of the sync sweep, which asks for the daily full round of each "
    "connected calendar and removes what removed calendars left (default '0 5 * * * *', hourly).",
}



@dataclass(frozen=True)
class Settings:
    """Validated configuration. Build it with `Settings.from_environment()`."""

    storage_connection_string: str | None
    storage_account_name: str | None
    entra_client_id: str
    entra_client_secret: str = field(repr=False)
    state_signing_key: bytes = field(repr=False)
    public_base_url: str
    admin_page_url: str
    admin_role: str = DEFAULT_ADMIN_ROLE
    login_base_url: str = MICROSOFT_LOGIN_BASE_URL
    graph_base_url: str = MICROSOFT_GRAPH_BASE_URL
    ca_bundle_path: str | None = None
    connect_schedule: str = DEFAULT_CONNECT_SCHEDULE
    uploads_container: str = DEFAULT_UPLOADS_CONTAINER
    function_time_limit_seconds: int = 480
    max_booking_hours: int = 24
    sync_days_back: int = 1
    sync_days_ahead: int = 180
    sync_sweep_schedule: str = DEFAULT_SYNC_SWEEP_SCHEDULE

    @property
    def consent_redirect_uri(self) -> str:
        return f"{self.public_base_url}/api/consent/callback"

    @property
    def notification_url(self) -> str:
        return f"{self.public_base_url}/api/notifications"

    @property
    def lifecycle_notification_url(self) -> str:
        return f"{self.public_base_url}/api/notifications/lifecycle"

    @property
    def tls_verify(self) -> str | bool:
        """What `requests` takes as `verify`: the extra CA bundle, or the system's trust."""
        return self.ca_bundle_path or True

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str, default: str | None = None) -> str | None:
            value = env.get(name)
            if value is None or not value.strip():
                return default
            return value.strip()

        def require(name: str) -> str:
            value = get(name)
            if value is None:
                raise SettingsError(f"setting {name} is missing: {SETTING_DESCRIPTIONS[name]}")
            return value

        connection_string = get("DataStorage")
        account_name = get("DataStorage__accountName")
        if connection_string is None and account_name is None:
            raise SettingsError(
                "setting DataStorage (a connection string) or DataStorage__accountName "
                "(managed identity) is missing"
            )
        if connection_string is not None and "AccountName=" not in connection_string and (
            "UseDevelopmentStorage=true" not in connection_string
        ):
            raise SettingsError("setting DataStorage is malformed: expected a storage connection string")

        client_id = require("ENTRA_CLIENT_ID")
        if not GUID.match(client_id):
            raise SettingsError("setting ENTRA_CLIENT_ID is malformed: expected a GUID")
        client_secret = require("ENTRA_CLIENT_SECRET")
        signing_key = require("STATE_SIGNING_KEY")
        if len(signing_key) < 32:
            raise SettingsError("setting STATE_SIGNING_KEY is too short: use at least 32 characters")

        public_base_url = _url("PUBLIC_BASE_URL", require("PUBLIC_BASE_URL"), allow_http_loopback=True)
        admin_page_url = _url(
            "ADMIN_PAGE_URL", get("ADMIN_PAGE_URL", public_base_url + "/"), allow_http_loopback=True
        )
        login_base_url = _url("LOGIN_BASE_URL", get("LOGIN_BASE_URL", MICROSOFT_LOGIN_BASE_URL))
        graph_base_url = _url("GRAPH_BASE_URL", get("GRAPH_BASE_URL", MICROSOFT_GRAPH_BASE_URL))

        ca_bundle_path = get("CA_BUNDLE_PATH")
        if ca_bundle_path is not None and not os.path.isfile(ca_bundle_path):
            raise SettingsError("setting CA_BUNDLE_PATH names a file that does not exist")

        schedule = get("CONNECT_SCHEDULE", DEFAULT_CONNECT_SCHEDULE)
        if len(schedule.split()) != 6:
            raise SettingsError("setting CONNECT_SCHEDULE is malformed: expected six NCRONTAB fields")
        sweep_schedule = get("SYNC_SWEEP_SCHEDULE", DEFAULT_SYNC_SWEEP_SCHEDULE)
        if len(sweep_schedule.split()) != 6:
            raise SettingsError("setting SYNC_SWEEP_SCHEDULE is malformed: expected six NCRONTAB fields")
        max_hours = _whole(get("MAX_BOOKING_HOURS", "24"), "MAX_BOOKING_HOURS", 1, 24 * 14, "hours")
        days_back = _whole(get("SYNC_DAYS_BACK", "1"), "SYNC_DAYS_BACK", 0, 31)
        days_ahead = _whole(get("SYNC_DAYS_AHEAD", "180"), "SYNC_DAYS_AHEAD", 1, 730)

        time_limit_text = get("FUNCTION_TIME_LIMIT_SECONDS", "480")
        try:
            time_limit = int(time_limit_text)
        except ValueError:
            raise SettingsError("setting FUNCTION_TIME_LIMIT_SECONDS is malformed: expected seconds") from None
        if not 10 <= time_limit <= 3600:
            raise SettingsError("setting FUNCTION_TIME_LIMIT_SECONDS must be between 10 and 3600")

        return cls(
            storage_connection_string=connection_string,
            storage_account_name=account_name if connection_string is None else None,
            entra_client_id=client_id.lower(),
            entra_client_secret=client_secret,
            state_signing_key=signing_key.encode(),
            public_base_url=public_base_url,
            admin_page_url=admin_page_url,
            admin_role=get("ADMIN_ROLE", DEFAULT_ADMIN_ROLE),
            login_base_url=login_base_url,
            graph_base_url=graph_base_url,
            ca_bundle_path=ca_bundle_path,
            connect_schedule=schedule,
            uploads_container=get("UPLOADS_CONTAINER", DEFAULT_UPLOADS_CONTAINER),
            function_time_limit_seconds=time_limit,
            max_booking_hours=max_hours,
            sync_days_back=days_back,
            sync_days_ahead=days_ahead,
            sync_sweep_schedule=sweep_schedule,
        )


def _whole(text: str | None, name: str, lowest: int, highest: int, unit: str = "days") -> int:
    try:
        value = int(text or "")
    except ValueError:
        raise SettingsError(f"setting {name} is malformed: expected a whole number of {unit}") from None
    if not lowest <= value <= highest:
        raise SettingsError(f"setting {name} must be between {lowest} and {highest}")
    return value


def _url(name: str, value: str, *, allow_http_loopback: bool = False) -> str:
    """An absolute URL without a trailing slash; https, or http on loopback where allowed."""
    parts = urlsplit(value)
    loopback = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if parts.scheme == "https" or (parts.scheme == "http" and allow_http_loopback and loopback):
        if parts.netloc and not parts.query and not parts.fragment:
            return value.rstrip("/")
    raise SettingsError(f"setting {name} is malformed: expected an absolute https URL")
