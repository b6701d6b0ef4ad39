"""What Graph posts to our webhooks: change notifications and lifecycle notifications.

Owns checking each item (the subscription is one we know, for the calendar it
names, and its clientState matches the stored hash in constant time), putting
one message per calendar a request names on the Storage queue `calendar-changes`
(a message says "this room may have changed": the delta round reads what did, so
a POST of many changes of one room is one message), and the calendar-side effect
of lifecycle events. It never calls Graph: the work a notification asks for is
deferred (queue messages, or flags the connector acts on), so the webhook answers
within Graph's 3 seconds. Anything that does not check out is dropped and logged,
with no effect. A room's calendar read for a change notification is remembered for a minute
(`known.KnownCalendars`): a busy room's next notifications that its clientState proves cost no
read. Anyone can post, so the storage reads one request causes are
bounded (`Lookups`): each subscription it names is looked up once, side by side,
and unknown ones only while they number fewer than `MAX_UNKNOWN_PER_REQUEST` plus
the subscriptions the request has proven (known, with their clientState). Graph
batches the notifications of every room (one notificationUrl) into one POST, and
a few stale subscriptions among many known ones never stop the rest being read.
https://learn.microsoft.com/graph/change-notifications-delivery-webhooks
https://learn.microsoft.com/graph/change-notifications-lifecycle-events
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from azure.storage.queue import QueueClient

from shared.calendars import Calendar, CalendarRepository
from shared.errors import ConcurrencyConflict, Invalid, TooLarge
from shared.json_input import parse_json_object
from shared.models import CalendarStatus, iso, parse_iso, utc_now
from shared.notifications.client_state import client_state_matches
from shared.notifications.index import SubscriptionIndex
from shared.notifications.known import KnownCalendars
from shared.storage import Parallel

log = logging.getLogger("rcc.notifications")

MAX_BODY_BYTES = 1024 * 1024
MAX_ITEMS = 1000
MAX_VALIDATION_TOKEN_LENGTH = 4096
# last_notification_at (the page's "last activity") is written at most this often per calendar:
# a busy room must not turn its notifications into calendar writes that race the connector.
NOTIFICATION_STAMP_INTERVAL = timedelta(minutes=5)
# Subscriptions we do not know that one request may cost a look-up, beyond one more for each
# subscription it has proven (ours, with its clientState): a guess is stopped after the first
# few, while Graph's batch of many rooms with a few stale subscriptions among them is read whole.
MAX_UNKNOWN_PER_REQUEST = 3
CHANGE_TYPES = {"created", "updated", "deleted"}
LIFECYCLE_EVENTS = {"reauthorizationRequired", "subscriptionRemoved", "missed"}

Key = tuple[str, str]  # (tenant = account id, subscription id), lower-cased


@dataclass(frozen=True)
class Outcome:
    accepted: int  # items
    dropped: int
    queued: int = 0  # messages put on the queue


def parse_body(body: bytes | None) -> list[Any]:
    """The `value` array of a notification POST; `Invalid`/`TooLarge` for anything else."""
    document = parse_json_object(body, what="the notification body", max_bytes=MAX_BODY_BYTES)
    if not isinstance(document.get("value"), list):
        raise Invalid("the body must be an object with a value array")
    items = document["value"]
    if len(items) > MAX_ITEMS:
        raise TooLarge(f"at most {MAX_ITEMS} notifications per request")
    return items


def check_validation_token(token: str) -> str:
    if len(token) > MAX_VALIDATION_TOKEN_LENGTH:
        raise Invalid("the validation token is too long")
    return token


def _key(item: Any) -> Key | None:
    if not isinstance(item, dict):
        return None
    account_id, subscription_id = item.get("tenantId"), item.get("subscriptionId")
    if not (isinstance(account_id, str) and isinstance(subscription_id, str)):
        return None
    return account_id.lower(), subscription_id.lower()


class Lookups:
    """One request's look-ups of (tenant, subscription) → calendar: each pair read once (two reads:
    the index, then the calendar), side by side, within the request's budget of unknown ones; none
    when `known` has the calendar fresh and an item's clientState proves it (change notifications)."""

    def __init__(self, index: SubscriptionIndex, calendars: CalendarRepository, parallel: Parallel,
                 kind: str, known: KnownCalendars | None = None) -> None:
        self.index = index
        self.calendars = calendars
        self.parallel = parallel
        self.kind = kind
        self.known = known
        self.found: dict[Key, Calendar | None] = {}
        self.unknown = 0
        self.proven = 0  # subscriptions found whose clientState an item of the request gave
        self.refused = 0  # subscriptions not looked up: the budget was spent
        self.forged: set[str] = set()  # calendars whose clientState an item got wrong (logged once)

    def resolve(self, items: list[Any]) -> None:
        """Look up every subscription the items name, in waves, in the order they first appear: each
        wave as many as the unknown ones still allowed (`MAX_UNKNOWN_PER_REQUEST` + proven − unknown),
        so whatever a wave finds, the request never costs more unknown look-ups than that."""
        secrets: dict[Key, set[str]] = {}
        for item in items:
            key = _key(item)
            if key is not None:
                secrets.setdefault(key, set()).update([item["clientState"]] if isinstance(
                    item.get("clientState"), str) else [])
        pending = list(secrets)
        while pending:
            allowed = MAX_UNKNOWN_PER_REQUEST + self.proven - self.unknown
            if allowed <= 0:
                self.refused = len(pending)
                log.warning("%s notifications: %d subscriptions looked up, %d unknown; %d more are dropped unread",
                            self.kind, len(self.found), self.unknown, self.refused)
                return
            wave, pending = pending[:allowed], pending[allowed:]
            looked_up = self.parallel.run([partial(self._look_up, key, secrets[key]) for key in wave])
            for key, calendar in zip(wave, looked_up, strict=True):
                self.found[key] = calendar
                if calendar is None:
                    self.unknown += 1
                elif any(client_state_matches(secret, calendar.client_state_hash) for secret in secrets[key]):
                    self.proven += 1

    def calendar(self, item: Any) -> Calendar | None:
        """The calendar an item's subscription belongs to (None: unknown, or not looked up)."""
        key = _key(item)
        return self.found.get(key) if key is not None else None

    def gone(self, account_id: str, subscription_id: str) -> None:
        """The subscription was just removed: the request's later items for it are unknown."""
        self.found[(account_id.lower(), subscription_id.lower())] = None

    def _look_up(self, key: Key, secrets: set[str]) -> Calendar | None:
        if self.known is not None:
            calendar = self.known.get(key)
            if calendar is not None and any(client_state_matches(secret, calendar.client_state_hash)
                                            for secret in secrets):
                return calendar
        account_id, subscription_id = key
        read_at = time.monotonic()
        email = self.index.find(account_id, subscription_id)
        calendar = self.calendars.find(account_id, email) if email is not None else None
        if calendar is None or (calendar.subscription_id and calendar.subscription_id.lower() != subscription_id):
            if self.known is not None:
                self.known.forget(key)
            if email is None:
                log.warning("dropped %s items for unknown subscription %.64r", self.kind, subscription_id)
            else:
                log.warning("dropped %s items for subscription %.64s: no calendar holds it", self.kind,
                            subscription_id)
            return None
        if self.known is not None:
            self.known.put(key, calendar, read_at=read_at)
        return calendar


@dataclass
class _Room:
    """What one request said of one calendar: the message it becomes."""

    calendar: Calendar
    subscription_id: str  # as the item gave it
    key: Key
    change_types: list[str] = field(default_factory=list)
    changes: int = 0

    def message(self, received_at: str) -> str:
        types = self.change_types
        return json.dumps({
            "account_id": self.calendar.account_id, "room_email": self.calendar.email,
            "space_id": self.calendar.space_id, "space_number": self.calendar.space_number,
            # One word for readers of a single change; all of them in change_types.
            "change_type": types[0] if len(types) == 1 else "updated", "change_types": types,
            "changes": self.changes, "subscription_id": self.subscription_id, "received_at": received_at,
        })


class NotificationInbox:
    def __init__(self, *, calendars: CalendarRepository, index: SubscriptionIndex, queue: QueueClient,
                 parallel: Parallel, known: KnownCalendars | None = None) -> None:
        self.calendars = calendars
        self.index = index
        self.queue = queue
        self.parallel = parallel
        self.known = known if known is not None else KnownCalendars()

    def _lookups(self, items: list[Any], kind: str) -> Lookups:
        lookups = Lookups(self.index, self.calendars, self.parallel, kind,
                          known=self.known if kind == "change" else None)
        lookups.resolve(items)
        return lookups

    def _verified_calendar(self, item: Any, lookups: Lookups) -> Calendar | None:
        """The calendar an item is for, or None (logged) when anything does not check out."""
        if not isinstance(item, dict):
            log.warning("dropped a %s item that is not an object", lookups.kind)
            return None
        calendar = lookups.calendar(item)
        if calendar is None:
            return None
        if not client_state_matches(item.get("clientState"), calendar.client_state_hash):
            if calendar.email not in lookups.forged:
                lookups.forged.add(calendar.email)
                log.warning("dropped %s items for %s: clientState does not match", lookups.kind, calendar.email)
            return None
        return calendar

    # --- change notifications ----------------------------------------------------------------

    def receive_changes(self, body: bytes | None) -> Outcome:
        """Verify each item and queue one message per calendar with verified changes (the round reads
        Graph's delta, so which events changed is not needed); bad items are dropped."""
        received_at = iso(utc_now()) or ""
        items = parse_body(body)
        lookups = self._lookups(items, "change")
        rooms: dict[tuple[str, str], _Room] = {}
        accepted = dropped = 0
        for item in items:
            calendar = self._verified_calendar(item, lookups)
            change_type = item.get("changeType") if isinstance(item, dict) else None
            if calendar is None or change_type not in CHANGE_TYPES:
                dropped += 1
                continue
            accepted += 1
            room = rooms.setdefault((calendar.account_id, calendar.email),
                                    _Room(calendar, str(item.get("subscriptionId")), _key(item) or ("", "")))
            room.changes += 1
            if change_type not in room.change_types:
                room.change_types.append(str(change_type))
        self._send([room.message(received_at) for room in rooms.values()])
        self.parallel.run([partial(self._stamp, room.calendar, room.key) for room in rooms.values()])
        if dropped:
            log.warning("dropped %d of %d change notifications", dropped, len(items))
        return Outcome(accepted, dropped, len(rooms))

    def _send(self, messages: list[str]) -> None:
        # Graph delivers many rooms' changes in one POST under load; the queue has no batch send.
        self.parallel.run([partial(self.queue.send_message, message) for message in messages])

    def _stamp(self, calendar: Calendar, key: Key) -> None:
        last = parse_iso(calendar.last_notification_at)
        now = utc_now()
        if last is not None and now - last < NOTIFICATION_STAMP_INTERVAL:
            return
        calendar.last_notification_at = iso(now)
        try:
            self.known.saved(key, self.calendars.save(calendar))
        except ConcurrencyConflict:
            # Written meanwhile (the connector, another notification): the next one reads it and stamps it.
            self.known.forget(key)

    # --- lifecycle notifications -----------------------------------------------------------------

    def receive_lifecycle(self, body: bytes | None) -> Outcome:
        """reauthorizationRequired: the connector reauthorizes on its next run;
        subscriptionRemoved: the calendar is queued for a new subscription;
        missed: the calendar is marked for a resync and consumers are told."""
        items = parse_body(body)
        lookups = self._lookups(items, "lifecycle")
        accepted = dropped = 0
        for item in items:
            calendar = self._verified_calendar(item, lookups)
            event = item.get("lifecycleEvent") if isinstance(item, dict) else None
            if calendar is None or event not in LIFECYCLE_EVENTS:
                dropped += 1
                continue
            self._apply_lifecycle(calendar, str(event), str(item.get("subscriptionId")))
            self.known.forget(_key(item) or ("", ""))  # the calendar changed: the next change reads it
            if event == "subscriptionRemoved":
                lookups.gone(calendar.account_id, str(item.get("subscriptionId")))
            accepted += 1
        return Outcome(accepted, dropped)

    def _apply_lifecycle(self, calendar: Calendar, event: str, subscription_id: str) -> None:
        def apply(current: Calendar) -> bool:
            if event == "reauthorizationRequired":
                current.reauthorize_requested = True
            elif event == "subscriptionRemoved":
                if current.status is not CalendarStatus.QUEUED:
                    current.set_status(CalendarStatus.QUEUED,
                                       "Microsoft Graph removed the subscription: reconnecting on the next run")
                current.subscription_id = None
                current.subscription_expires_at = None
                current.next_attempt_at = None
                current.reauthorize_requested = False
            else:
                current.resync_needed = True
            return True

        self.calendars.change(calendar, apply)
        log.info("lifecycle event %s for %s", event, calendar.email)
        if event == "subscriptionRemoved":
            self.index.remove(calendar.account_id, subscription_id)
        if event == "missed":
            # Some changes were not delivered: consumers re-read the room's calendar.
            self.queue.send_message(json.dumps({
                "account_id": calendar.account_id, "room_email": calendar.email, "space_id": calendar.space_id,
                "space_number": calendar.space_number, "change_type": "missed", "change_types": ["missed"],
                "changes": 1, "subscription_id": subscription_id, "received_at": iso(utc_now()),
            }))

