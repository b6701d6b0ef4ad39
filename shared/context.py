"""The composition root: every client and service the domain needs, built once per process.

Owns turning `Settings` into live objects: storage clients, one `requests.Session`
(trusting the configured CA bundle), MSAL token provider, Graph client and the
services. Nothing here runs at import: `get_context()` builds lazily on the first
invocation, so the Functions host can index the app with storage down. Tests
build their own `AppContext` from settings pointed at Azurite and m365sim.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import requests
from azure.storage.queue import TextBase64EncodePolicy
from requests.adapters import HTTPAdapter

from shared.account_service import AccountService
from shared.accounts import AccountRepository
from shared.audit import AuditLog
from shared.calendars import CalendarRepository, CalendarService
from shared.connector import Connector
from shared.consent import ConsentService
from shared.csv_import import CalendarImports
from shared.graph import GraphClient
from shared.identity import TokenProvider
from shared.models import iso
from shared.ncrontab import Schedule
from shared.notifications import NotificationInbox
from shared.rooms import RoomDiscovery
from shared.settings import Settings
from shared.spaces import SpaceDirectory
from shared.storage import CALENDAR_CHANGES_QUEUE, CONTAINER_NAMES, REPORTS_CONTAINER, StorageAccount
from shared.subscriptions import SubscriptionIndex, SubscriptionManager


class _PinnedTrustSession(requests.Session):
    """A session whose configured CA bundle wins over REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE
    in the environment (requests lets those override `Session.verify`)."""

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # type: ignore[no-untyped-def]
        merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is None and isinstance(self.verify, str):
            merged["verify"] = self.verify
        return merged


def build_http_session(settings: Settings, pool_size: int = 32) -> requests.Session:
    """The one session for Entra ID and Graph: connection pooling, and TLS verified against
    the system's trust or, when CA_BUNDLE_PATH is set, that bundle."""
    session = _PinnedTrustSession()
    session.verify = settings.tls_verify
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


@dataclass
class AppContext:
    settings: Settings
    storage: StorageAccount
    http: requests.Session
    tokens: TokenProvider
    graph: GraphClient
    audit: AuditLog
    accounts: AccountRepository
    spaces: SpaceDirectory
    calendars: CalendarService
    consent: ConsentService
    account_service: AccountService
    subscriptions: SubscriptionManager
    rooms: RoomDiscovery
    imports: CalendarImports
    connector: Connector
    notifications: NotificationInbox

    @classmethod
    def build(cls, settings: Settings) -> AppContext:
        if settings.storage_connection_string:
            storage = StorageAccount.from_connection_string(settings.storage_connection_string)
        else:
            storage = StorageAccount.from_managed_identity(settings.storage_account_name or "")
        storage.ensure_created(container_names=(settings.uploads_container, *CONTAINER_NAMES))
        http = build_http_session(settings)
        tokens = TokenProvider(login_base_url=settings.login_base_url, client_id=settings.entra_client_id,
                               client_secret=settings.entra_client_secret, http=http)
        graph = GraphClient(base_url=settings.graph_base_url, tokens=tokens, http=http)
        audit = AuditLog(storage.table("Audit"))
        accounts = AccountRepository(storage.table("Accounts"))
        spaces = SpaceDirectory(storage.table("Spaces"), storage.table("SpaceIndex"))
        subscription_index = SubscriptionIndex(storage.table("Subscriptions"))
        subscriptions = SubscriptionManager(graph, index=subscription_index,
                                            notification_url=settings.notification_url,
                                            lifecycle_notification_url=settings.lifecycle_notification_url)
        schedule = Schedule.parse(settings.connect_schedule)
        calendar_rows = CalendarRepository(storage.table("Calendars"))
        calendars = CalendarService(
            calendars=calendar_rows,
            accounts=accounts,
            spaces=spaces,
            audit=audit,
            remove_subscription=subscriptions.delete_for,
            next_run_at=lambda: iso(schedule.next_after(datetime.now(UTC))),
        )
        consent = ConsentService(
            states=storage.table("ConsentStates"),
            accounts=accounts,
            audit=audit,
            tokens=tokens,
            graph=graph,
            signing_key=settings.state_signing_key,
            login_base_url=settings.login_base_url,
            client_id=settings.entra_client_id,
            redirect_uri=settings.consent_redirect_uri,
            admin_page_url=settings.admin_page_url,
            on_reauthorized=calendars.requeue_after_reauthorization,
        )
        account_service = AccountService(accounts=accounts, consent=consent, tokens=tokens, graph=graph, audit=audit,
                                         calendars=calendars)
        return cls(settings=settings, storage=storage, http=http, tokens=tokens, graph=graph, audit=audit,
                   accounts=accounts, spaces=spaces, calendars=calendars, consent=consent,
                   account_service=account_service, subscriptions=subscriptions,
                   rooms=RoomDiscovery(graph=graph, accounts=accounts, calendars=calendar_rows, spaces=spaces),
                   imports=CalendarImports(blobs=storage.blobs, uploads_container=settings.uploads_container,
                                           reports_container=REPORTS_CONTAINER, imports=storage.table("Imports"),
                                           calendars=calendar_rows, accounts=accounts, spaces=spaces, audit=audit,
                                           queue_for_connection=calendars.queue_calendars_for_connection),
                   connector=_build_connector(settings, storage, tokens, http, accounts, calendar_rows,
                                              account_service, subscription_index, schedule),
                   notifications=NotificationInbox(
                       calendars=calendar_rows, index=subscription_index,
                       queue=storage.queues.get_queue_client(CALENDAR_CHANGES_QUEUE,
                                                             message_encode_policy=TextBase64EncodePolicy())))


def _build_connector(settings: Settings, storage: StorageAccount, tokens: TokenProvider, http: requests.Session,
                     accounts: AccountRepository, calendar_rows: CalendarRepository, account_service: AccountService,
                     index: SubscriptionIndex, schedule: Schedule) -> Connector:
    # The connector's own Graph client never sleeps on throttling: its gate waits out
    # Retry-After per tenant, and schedules what cannot wait within the run.
    graph = GraphClient(base_url=settings.graph_base_url, tokens=tokens, http=http, max_wait_seconds=0)
    return Connector(
        calendars=calendar_rows, accounts=accounts, account_service=account_service, tokens=tokens, graph=graph,
        subscriptions=SubscriptionManager(graph, index=index, notification_url=settings.notification_url,
                                          lifecycle_notification_url=settings.lifecycle_notification_url),
        index=index, runs=storage.table("ConnectorRuns"), signing_key=settings.state_signing_key,
        schedule=schedule, time_limit_seconds=settings.function_time_limit_seconds,
    )


_context: AppContext | None = None
_lock = threading.Lock()


def get_context() -> AppContext:
    """The process-wide context, built on first use from the environment."""
    global _context
    if _context is None:
        with _lock:
            if _context is None:
                _context = AppContext.build(Settings.from_environment())
    return _context
