"""The simulator's in-memory world: the app registration, tenants (directory, consent, knobs),
subscriptions and the request log.

Owns the mutable state, its lock and the fixture loader (the directory records are in
directory.py, the knobs in knobs.py). It must never do I/O
on the network, and never hold `SimState.lock` while calling out (handshakes, notifications
are done by the callers after releasing it). State lives in memory and starts from the fixture
on every start and on `POST /_sim/reset`.
"""

from __future__ import annotations

import collections
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m365sim.directory import Room, RoomList, User, generate_tenant_spec, parse_directory, stable_id
from m365sim.knobs import KnobError, Knobs
from m365sim.mailbox import Mailbox

__all__ = ["AppRegistration", "KnobError", "Knobs", "Room", "RoomList", "SimState", "Subscription", "Tenant", "User",
           "generate_tenant_spec", "stable_id"]

DEFAULT_FIXTURE = Path(__file__).parent / "fixtures" / "demo.json"
# Graph's documented limits this simulator enforces (learn.microsoft.com/graph/throttling-limits).
MAX_CONCURRENT_PER_MAILBOX = 4
SUBSCRIPTION_WRITE_WINDOW_SECONDS = 20.0
REQUEST_LOG_LIMIT = 200_000

# Application permissions that grant each capability (least privileged first).
USER_READ_ROLES = frozenset({"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"})
PLACE_READ_ROLES = frozenset({"Place.Read.All", "Place.ReadWrite.All"})
CALENDAR_ROLES = frozenset({"Calendars.Read", "Calendars.ReadWrite"})
ORGANIZATION_READ_ROLES = frozenset(
    {"Organization.Read.All", "Organization.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)


@dataclass
class Subscription:
    id: str
    tenant_id: str
    application_id: str
    creator_id: str
    resource: str
    mailbox_user_id: str
    change_type: str
    notification_url: str
    lifecycle_notification_url: str | None
    expiration: float  # epoch seconds
    client_state: str | None

    def graph(self, *, include_client_state: bool) -> dict[str, Any]:
        return {
            "@odata.type": "#microsoft.graph.subscription",
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.application_id,
            "changeType": self.change_type,
            "clientState": self.client_state if include_client_state else None,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_notification_url,
            "expirationDateTime": format_graph_time(self.expiration),
            "creatorId": self.creator_id,
            "includeResourceData": None,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationQueryOptions": None,
            "notificationUrlAppId": None,
        }


def format_graph_time(epoch: float) -> str:
    """Graph's DateTimeOffset shape: seven fractional digits and Z."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))
    fraction = int(round((epoch - int(epoch)) * 10_000_000))
    fraction = min(fraction, 9_999_999)
    return f"{whole}.{fraction:07d}Z"


@dataclass
class Tenant:
    id: str
    display_name: str
    domains: list[str]
    users: list[User]
    room_lists: list[RoomList]
    rooms: list[Room]
    service_principal_id: str
    consented: bool = False
    granted: set[str] = field(default_factory=set)
    knobs: Knobs = field(default_factory=Knobs)
    subscription_writes: collections.deque[float] = field(default_factory=collections.deque)
    inflight: dict[str, int] = field(default_factory=dict)
    # Admitted mailbox requests in the last 10 minutes, per mailbox (monotonic times).
    mailbox_requests: dict[str, collections.deque[float]] = field(default_factory=dict)
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)
    _users_by_key: dict[str, User] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Users are fixed when the tenant is built; look-ups are by id, UPN or mail.
        for user in reversed(self.users):
            for name in (user.id, user.user_principal_name.lower(), user.mail.lower()):
                self._users_by_key[name] = user

    def find_user(self, key: str) -> User | None:
        """By object id or userPrincipalName/mail (case-insensitive), minus `missing_mailboxes`."""
        user = self._users_by_key.get(key.strip().lower())
        if user is None:
            return None
        missing = self.knobs.missing_mailboxes
        if user.mail.lower() in missing or user.user_principal_name.lower() in missing:
            return None
        return user

    def user_by_key(self, key: str) -> User | None:
        """By object id, UPN or mail, whatever the knobs say (the control API's view)."""
        return self._users_by_key.get(key.strip().lower())

    def is_denied(self, user: User) -> bool:
        return self.listed(user, self.knobs.denied_mailboxes)

    @staticmethod
    def listed(user: User, addresses: list[str] | dict[str, Any]) -> bool:
        return user.mail.lower() in addresses or user.user_principal_name.lower() in addresses

    def purpose(self, user: User) -> str:
        """mailboxSettings.userPurpose: `room` for room mailboxes, `user` for people, unless the
        `mailbox_purposes` knob says otherwise."""
        purposes = self.knobs.mailbox_purposes
        named = purposes.get(user.mail.lower()) or purposes.get(user.user_principal_name.lower())
        return named or ("room" if user.is_room else "user")

    def mailbox(self, user: User) -> Mailbox:
        """The user's calendar store, created on first use (call with `SimState.lock` held)."""
        mailbox = self.mailboxes.get(user.id)
        if mailbox is None:
            mailbox = self.mailboxes[user.id] = Mailbox(user.id, user.mail, user.display_name)
        return mailbox

    def effective_roles(self) -> set[str]:
        """Roles the tenant currently grants the app (consent minus the `missing_permissions` knob)."""
        if not self.consented or self.knobs.consent_revoked:
            return set()
        return self.granted - set(self.knobs.missing_permissions)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "displayName": self.display_name,
            "domains": list(self.domains),
            "consented": self.consented,
            "grantedPermissions": sorted(self.granted),
            "effectivePermissions": sorted(self.effective_roles()),
            "servicePrincipalId": self.service_principal_id,
            "knobs": self.knobs.as_dict(),
            "admins": [u.user_principal_name for u in self.users if u.is_admin],
            "users": [u.user_principal_name for u in self.users if not u.is_room],
            "rooms": [r.email for r in self.rooms],
            "roomLists": [r.email for r in self.room_lists],
            "hiddenFromPlaces": [r.email for r in self.rooms if r.hidden_from_places],
        }


@dataclass(frozen=True)
class AppRegistration:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    display_name: str
    required_permissions: tuple[str, ...]


def _tenant_from_spec(spec: dict[str, Any]) -> Tenant:
    tenant_id = spec["id"].lower()
    users, room_lists, rooms = parse_directory(spec, tenant_id)
    tenant = Tenant(
        id=tenant_id,
        display_name=spec.get("displayName", spec["domains"][0]),
        domains=list(spec["domains"]),
        users=users,
        room_lists=room_lists,
        rooms=rooms,
        service_principal_id=stable_id(tenant_id, "serviceprincipal"),
    )
    return tenant


class SimState:
    """Everything the simulator knows, guarded by one re-entrant lock."""

    def __init__(self, app: AppRegistration, fixture_path: Path, consent_file: Path | None = None) -> None:
        self.app = app
        self.fixture_path = fixture_path
        # Admin consent outlives a restart in a real tenant: with a state dir, grants are kept in it.
        self.consent_file = consent_file
        self.lock = threading.RLock()
        self.tenants: dict[str, Tenant] = {}
        self.subscriptions: dict[str, Subscription] = {}
        # Live subscriptions by (tenant id, mailbox user id): who hears of a mailbox's changes.
        self._subscriptions_by_mailbox: dict[tuple[str, str], dict[str, Subscription]] = {}
        self.requests: collections.deque[dict[str, Any]] = collections.deque(maxlen=REQUEST_LOG_LIMIT)
        self._seq = itertools.count(1)
        kept = self._kept_consents()
        self.reset()
        for tenant_id in kept:
            if tenant_id in self.tenants:
                self.grant_consent(self.tenants[tenant_id], True)

    def reset(self) -> None:
        with self.lock:
            fixture = json.loads(self.fixture_path.read_text(encoding="utf-8"))
            self.tenants = {}
            for spec in fixture["tenants"]:
                self.add_tenant(_tenant_from_spec(spec))
            self.subscriptions = {}
            self._subscriptions_by_mailbox = {}
            self.requests.clear()
            self._keep_consents()  # back to the fixture: nothing consented

    def _kept_consents(self) -> list[str]:
        if self.consent_file is None or not self.consent_file.is_file():
            return []
        try:
            return [str(tenant_id) for tenant_id in json.loads(self.consent_file.read_text(encoding="utf-8"))]
        except (ValueError, TypeError):
            return []

    def _keep_consents(self) -> None:
        if self.consent_file is not None:
            consented = sorted(tenant.id for tenant in self.tenants.values() if tenant.consented)
            self.consent_file.write_text(json.dumps(consented), encoding="utf-8")

    def add_tenant(self, tenant: Tenant) -> None:
        with self.lock:
            if tenant.id in self.tenants:
                raise ValueError(f"tenant {tenant.id} exists")
            for domain in tenant.domains:
                if self.tenant_by_name(domain) is not None:
                    raise ValueError(f"domain {domain} is taken")
            self.tenants[tenant.id] = tenant

    def create_generated_tenant(self, rooms: int, domain: str | None, consented: bool) -> Tenant:
        tenant = _tenant_from_spec(generate_tenant_spec(rooms, domain))
        if consented:
            tenant.consented = True
            tenant.granted = set(self.app.required_permissions)
        self.add_tenant(tenant)
        return tenant

    def tenant_by_name(self, name: str) -> Tenant | None:
        """A tenant by GUID or verified domain (case-insensitive)."""
        wanted = name.strip().lower()
        with self.lock:
            if wanted in self.tenants:
                return self.tenants[wanted]
            for tenant in self.tenants.values():
                if wanted in (d.lower() for d in tenant.domains):
                    return tenant
        return None

    def tenant_of_username(self, username: str) -> Tenant | None:
        _, _, domain = username.strip().rpartition("@")
        return self.tenant_by_name(domain) if domain else None

    def grant_consent(self, tenant: Tenant, granted: bool) -> None:
        with self.lock:
            tenant.consented = granted
            tenant.granted = set(self.app.required_permissions) if granted else set()
            if granted:
                tenant.knobs.consent_revoked = False
            self._keep_consents()

    # The request log: entries are appended on arrival; status and `answered` are filled in when
    # answered (null while in flight). `monotonic` (arrival) and `answered` are CLOCK_MONOTONIC,
    # comparable across processes on Linux.
    def record_request(self, method: str, path: str, tenant_id: str | None, kind: str) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "seq": next(self._seq),
            "monotonic": time.monotonic(),
            "time": time.time(),
            "method": method,
            "path": path,
            "tenant": tenant_id,
            "kind": kind,
            "status": None,
            "retry_after": None,
            "answered": None,
        }
        with self.lock:
            self.requests.append(entry)
        return entry

    @staticmethod
    def record_answer(entry: dict[str, Any], status: int) -> None:
        entry["answered"] = time.monotonic()
        entry["status"] = status

    def requests_since(self, since: int, tenant_id: str | None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                dict(e)
                for e in self.requests
                if e["seq"] > since and (tenant_id is None or e["tenant"] == tenant_id)
            ]

    def mailbox(self, tenant: Tenant, user: User) -> Mailbox:
        with self.lock:
            return tenant.mailbox(user)

    def add_subscription(self, subscription: Subscription) -> None:
        with self.lock:
            self.subscriptions[subscription.id] = subscription
            key = (subscription.tenant_id, subscription.mailbox_user_id)
            self._subscriptions_by_mailbox.setdefault(key, {})[subscription.id] = subscription

    def drop_subscription(self, subscription_id: str) -> Subscription | None:
        with self.lock:
            subscription = self.subscriptions.pop(subscription_id.lower(), None)
            if subscription is not None:
                key = (subscription.tenant_id, subscription.mailbox_user_id)
                by_id = self._subscriptions_by_mailbox.get(key, {})
                by_id.pop(subscription.id, None)
                if not by_id:
                    self._subscriptions_by_mailbox.pop(key, None)
            return subscription

    def live_subscription(self, subscription_id: str) -> Subscription | None:
        """A subscription that exists and has not expired (Graph deletes expired ones)."""
        with self.lock:
            sub = self.subscriptions.get(subscription_id.lower())
            if sub is not None and sub.expiration <= time.time():
                self.drop_subscription(sub.id)
                return None
            return sub

    def subscriptions_of_mailbox(self, tenant_id: str, user_id: str) -> list[Subscription]:
        """Live subscriptions on one mailbox's events (cost: that mailbox's subscriptions)."""
        now = time.time()
        with self.lock:
            found = list(self._subscriptions_by_mailbox.get((tenant_id, user_id), {}).values())
            expired = [s for s in found if s.expiration <= now]
            for sub in expired:
                self.drop_subscription(sub.id)
            return [s for s in found if s.expiration > now]
