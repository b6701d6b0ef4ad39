"""The composition root: every client and service the domain needs, built once per process.

Owns turning `Settings` into live objects: the storage clients, one `requests.Session` (trusting
the configured CA bundle), the MSAL token provider and the one Graph client, the storage pool,
and each capability's service wired to what it needs. Nothing here runs at import:
`get_context()` builds on the first invocation that needs storage or Graph, so the Functions
host can index the app with storage down, and `get_settings()` reads the settings alone (what
the HTTP layer needs to check a caller's role). Tests build their own `AppContext` from settings
pointed at Azurite and m365sim.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import requests
from azure.storage.queue import TextBase64EncodePolicy

from shared.accounts import AccountRepository, AccountService, ConsentService, ConsentStates
from shared.audit import AuditLog
from shared.bookings import Bookings, BookingStore, BookingSync, BookingWrites, ChangeFeed, DeltaRounds, SyncStates
from shared.calendars import CalendarRepository, CalendarService, RoomDiscovery, SpaceLinks
from shared.connector import Connector, RunRecords, delete_subscription_quietly
from shared.graph import GraphClient, SubscriptionManager, TokenProvider
from shared.imports import CalendarImports, ImportRecords
from shared.models import iso, utc_now
from shared.ncrontab import Schedule
from shared.notifications import NotificationInbox, SubscriptionIndex
from shared.readiness import Readiness, ReadinessRecords
from shared.sessions import Session
from shared.settings import Settings
from shared.spaces import SpaceDirectory
from shared.storage import (
    CALENDAR_CHANGES_QUEUE,
    CONTAINER_NAMES,
    REPORTS_CONTAINER,
    LockRows,
    Parallel,
    StorageAccount,
)

# How long a sync round waits out Graph's throttling before it puts its message back for later.
SYNC_MAX_WAIT_SECONDS = 10.0
# Rounds of the rooms named by multi-room messages running at once in one process.
ROUNDS_AT_ONCE = 16


class _PinnedTrustSession(Session):
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
    session = _PinnedTrustSession(pool_size)
    session.verify = settings.tls_verify
    return session


@dataclass
class AppContext:
    """One entry per capability, plus the clients tests and devhost reach for directly."""

    settings: Settings
    storage: StorageAccount
    graph: GraphClient
    audit: AuditLog
    accounts: AccountService
    consent: ConsentService
    calendars: CalendarService
    discovery: RoomDiscovery
    spaces: SpaceDirectory
    imports: CalendarImports
    connector: Connector
    notifications: NotificationInbox
    bookings: Bookings
    sync: BookingSync
    writes: BookingWrites
    readiness: Readiness

    @classmethod
    def build(cls, settings: Settings) -> AppContext:
        if settings.storage_connection_string:
            storage = StorageAccount.from_connection_string(settings.storage_connection_string)
        else:
            storage = StorageAccount.from_managed_identity(settings.storage_account_name or "")
        storage.ensure_created(container_names=(settings.uploads_container, *CONTAINER_NAMES),
                               containers_and_queues=settings.storage_connection_string is not None)
        http = build_http_session(settings)
        tokens = TokenProvider(login_base_url=settings.login_base_url, client_id=settings.entra_client_id,
                               client_secret=settings.entra_client_secret, http=http)
        graph = GraphClient(base_url=settings.graph_base_url, tokens=tokens, http=http)
        parallel = Parallel()
        schedule = Schedule.parse(settings.connect_schedule)
        audit = AuditLog(storage.table("Audit"))
        account_rows = AccountRepository(storage.table("Accounts"))
        calendar_rows = CalendarRepository(storage.table("Calendars"))
        spaces = SpaceDirectory(storage.table("Spaces"), storage.table("SpaceIndex"), parallel=parallel)
        links = SpaceLinks(spaces, calendar_rows)
        index = SubscriptionIndex(storage.table("Subscriptions"))
        subscriptions = SubscriptionManager(graph, notification_url=settings.notification_url,
                                            lifecycle_notification_url=settings.lifecycle_notification_url)
        changes_queue = storage.queues.get_queue_client(CALENDAR_CHANGES_QUEUE,
                                                        message_encode_policy=TextBase64EncodePolicy())
        booking_rows = BookingStore(storage.table("Bookings"), parallel)
        sync_states = SyncStates(storage.table("SyncStates"), parallel)
        feed = ChangeFeed(storage.table("BookingChanges"))
        bookings = Bookings(store=booking_rows, states=sync_states, feed=feed, spaces=spaces, calendars=calendar_rows,
                            accounts=account_rows)
        sync = BookingSync(
            accounts=account_rows, calendars=calendar_rows, states=sync_states, store=booking_rows, feed=feed,
            rounds=DeltaRounds(graph=graph, store=booking_rows, feed=feed, max_wait_seconds=SYNC_MAX_WAIT_SECONDS),
            queue=changes_queue, parallel=parallel, days_back=settings.sync_days_back,
            days_ahead=settings.sync_days_ahead, round_pool=Parallel(workers=ROUNDS_AT_ONCE, name="rounds"))
        runs = RunRecords(storage.table("ConnectorRuns"), schedule)
        calendars = CalendarService(
            calendars=calendar_rows, accounts=account_rows, links=links, audit=audit,
            remove_subscription=functools.partial(delete_subscription_quietly, subscriptions, index),
            next_run_at=lambda: iso(schedule.next_after(utc_now())), hooks=bookings, live_runs=runs.live_run_ids,
        )

        readiness = Readiness(graph=graph, accounts=account_rows, calendars=calendar_rows, bookings=booking_rows,
                              records=ReadinessRecords(storage.table("Readiness")), parallel=parallel,
                              client_id=settings.entra_client_id)

        def reauthorized(account_id: str) -> None:
            calendars.requeue_after_reauthorization(account_id)
            sync.request_account_resync(account_id, "the account was re-authenticated")

        consent = ConsentService(
            states=ConsentStates(storage.table("ConsentStates"), settings.state_signing_key),
            accounts=account_rows, audit=audit, graph=graph, login_base_url=settings.login_base_url,
            client_id=settings.entra_client_id, redirect_uri=settings.consent_redirect_uri,
            admin_page_url=settings.admin_page_url, on_reauthorized=reauthorized, on_verified=readiness.check,
        )
        accounts = AccountService(accounts=account_rows, consent=consent, graph=graph, audit=audit,
                                  calendars=calendars, forget=readiness.records.forget)
        return cls(
            settings=settings, storage=storage, graph=graph, audit=audit, accounts=accounts, consent=consent,
            calendars=calendars,
            discovery=RoomDiscovery(graph=graph, accounts=account_rows, calendars=calendar_rows, spaces=spaces,
                                    findings=readiness.room_findings),
            spaces=spaces,
            imports=CalendarImports(
                blobs=storage.blobs, uploads_container=settings.uploads_container,
                reports_container=REPORTS_CONTAINER, records=ImportRecords(storage.table("Imports")),
                calendars=calendar_rows, accounts=account_rows, links=links, audit=audit,
                queue_for_connection=calendars.queue_calendars_for_connection, hooks=bookings),
            connector=Connector(
                calendars=calendar_rows, account_service=accounts, graph=graph, subscriptions=subscriptions,
                index=index, runs=runs,
                signing_key=settings.state_signing_key, time_limit_seconds=settings.function_time_limit_seconds,
                on_subscribed=lambda rooms: sync.request_resync(rooms, "a new subscription")),
            # Its own pool: the webhook's look-ups must not wait behind sync rounds' reads (Graph wants
            # an answer within 3 s).
            notifications=NotificationInbox(calendars=calendar_rows, index=index, queue=changes_queue,
                                            parallel=Parallel(name="notifications")),
            bookings=bookings, sync=sync,
            writes=BookingWrites(graph=graph, spaces=spaces, calendars=calendar_rows, store=booking_rows,
                                 states=sync_states, feed=feed, locks=LockRows(storage.table("BookingLocks")),
                                 parallel=parallel, max_hours=settings.max_booking_hours,
                                 days_back=settings.sync_days_back, days_ahead=settings.sync_days_ahead),
            readiness=readiness,
        )


_settings: Settings | None = None
_context: AppContext | None = None
_lock = threading.Lock()


def get_settings() -> Settings:
    """The process's settings, read and validated once from the environment."""
    global _settings
    if _settings is None:
        with _lock:
            if _settings is None:
                _settings = Settings.from_environment()
    return _settings


def get_context() -> AppContext:
    """The process-wide context, built on first use."""
    global _context
    if _context is None:
        settings = get_settings()
        with _lock:
            if _context is None:
                _context = AppContext.build(settings)
    return _context
