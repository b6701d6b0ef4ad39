"""What Graph posts to our webhooks: change notifications and lifecycle notifications.

Owns checking each item (the subscription is one we know, for the calendar it
names, and its clientState matches the stored hash in constant time), putting
one message per change on the Storage queue `calendar-changes` for downstream
consumers, and the calendar-side effect of lifecycle events. It never calls
Graph: the work a notification asks for is deferred (queue messages, or flags
the connector acts on), so the webhook answers within Graph's 3 seconds.
Anything that does not check out is dropped and logged, with no effect. Anyone can post, so
the storage reads one request causes are bounded (`Lookups`): each subscription is looked up
once per request, at most `MAX_LOOKUPS_PER_REQUEST` of them, and none after
`MAX_UNKNOWN_PER_REQUEST` unknown ones; Graph's batches (many changes of a few
subscriptions) stay well inside that.
https://learn.microsoft.com/graph/change-notifications-delivery-webhooks
https://learn.microsoft.com/graph/change-notifications-lifecycle-events
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from azure.storage.queue import QueueClient

from shared.calendars import Calendar, CalendarRepository
from shared.errors import ConcurrencyConflict, Invalid, TooLarge
from shared.json_input import parse_json_object
from shared.models import CalendarStatus, iso, parse_iso, utc_now
from shared.notifications.client_state import client_state_matches
from shared.notifications.index import SubscriptionIndex

log = logging.getLogger("rcc.notifications")

MAX_BODY_BYTES = 1024 * 1024
MAX_ITEMS = 1000
MAX_VALIDATION_TOKEN_LENGTH = 4096
# last_notification_at is written at most this often per calendar: a busy room must not
# turn every notification into a calendar write that races the connector.
NOTIFICATION_STAMP_INTERVAL = timedelta(seconds=30)
# Graph batches the notifications of one notificationUrl: many items, few subscriptions. A body
# naming more is not Graph's; one naming unknown ones is a guess, stopped after the first few.
MAX_LOOKUPS_PER_REQUEST = 50
MAX_UNKNOWN_PER_REQUEST = 3
CHANGE_TYPES = {"created", "updated", "deleted"}
LIFECYCLE_EVENTS = {"reauthorizationRequired", "subscriptionRemoved", "missed"}


@dataclass(frozen=True)
class Outcome:
    accepted: int
    dropped: int


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


class Lookups:
    """One request's look-ups of (tenant, subscription) → calendar: each pair read once (two
    reads: the index, then the calendar), within the request's budget."""

    def __init__(self, index: SubscriptionIndex, calendars: CalendarRepository, kind: str) -> None:
        self.index = index
        self.calendars = calendars
        self.kind = kind
        self.found: dict[tuple[str, str], Calendar | None] = {}
        self.unknown = 0
        self.refused = 0  # items not looked up: the budget was spent
        self.forged: set[str] = set()  # calendars whose clientState an item got wrong (logged once)

    def calendar(self, account_id: Any, subscription_id: Any) -> Calendar | None:
        if not (isinstance(account_id, str) and isinstance(subscription_id, str)):
            return None
        key = (account_id.lower(), subscription_id.lower())
        if key in self.found:
            return self.found[key]
        if self.unknown >= MAX_UNKNOWN_PER_REQUEST or len(self.found) >= MAX_LOOKUPS_PER_REQUEST:
            if not self.refused:
                log.warning("%s notifications: %d subscriptions looked up, %d unknown; the rest of the request "
                            "is dropped unread", self.kind, len(self.found), self.unknown)
            self.refused += 1
            return None
        calendar = self._look_up(*key)
        self.found[key] = calendar
        self.unknown += calendar is None
        return calendar

    def gone(self, account_id: str, subscription_id: str) -> None:
        """The subscription was just removed: the request's later items for it are unknown."""
        self.found[(account_id.lower(), subscription_id.lower())] = None

    def _look_up(self, account_id: str, subscription_id: str) -> Calendar | None:
        email = self.index.find(account_id, subscription_id)
        if email is None:
            log.warning("dropped %s items for unknown subscription %.64r", self.kind, subscription_id)
            return None
        calendar = self.calendars.find(account_id, email)
        if calendar is None or (calendar.subscription_id and calendar.subscription_id.lower() != subscription_id):
            log.warning("dropped %s items for subscription %.64s: no calendar holds it", self.kind, subscription_id)
            return None
        return calendar


class NotificationInbox:
    def __init__(self, *, calendars: CalendarRepository, index: SubscriptionIndex, queue: QueueClient) -> None:
        self.calendars = calendars
        self.index = index
        self.queue = queue

    def _verified_calendar(self, item: Any, lookups: Lookups) -> Calendar | None:
        """The calendar an item is for, or None (logged) when anything does not check out."""
        if not isinstance(item, dict):
            log.warning("dropped a %s item that is not an object", lookups.kind)
            return None
        calendar = lookups.calendar(item.get("tenantId"), item.get("subscriptionId"))
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
        """Verify each item and queue one message per change; bad items are dropped."""
        items = parse_body(body)
        lookups = Lookups(self.index, self.calendars, "change")
        messages: list[str] = []
        stamped: dict[tuple[str, str], Calendar] = {}
        dropped = 0
        now = utc_now()
        for item in items:
            calendar = self._verified_calendar(item, lookups)
            change_type = item.get("changeType") if isinstance(item, dict) else None
            if calendar is None or change_type not in CHANGE_TYPES:
                dropped += 1
                continue
            messages.append(json.dumps({
                "account_id": calendar.account_id,
                "room_email": calendar.email,
                "space_id": calendar.space_id,
                "space_number": calendar.space_number,
                "change_type": change_type,
                "event_id": _event_id(item),
                "subscription_id": item.get("subscriptionId"),
                "received_at": iso(now),
            }))
            stamped[(calendar.account_id, calendar.email)] = calendar
        self._send(messages)
        for calendar in stamped.values():
            self._stamp(calendar)
        if dropped:
            log.warning("dropped %d of %d change notifications", dropped, len(items))
        return Outcome(len(messages), dropped)

    def _send(self, messages: list[str]) -> None:
        if len(messages) <= 4:
            for message in messages:
                self.queue.send_message(message)
            return
        # Graph delivers many changes in one POST under load; the queue has no batch send.
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(self.queue.send_message, messages))

    def _stamp(self, calendar: Calendar) -> None:
        last = parse_iso(calendar.last_notification_at)
        now = utc_now()
        if last is not None and now - last < NOTIFICATION_STAMP_INTERVAL:
            return
        calendar.last_notification_at = iso(now)
        try:
            self.calendars.save(calendar)
        except ConcurrencyConflict:
            pass  # written meanwhile (the connector, another notification): the next one stamps it

    # --- lifecycle notifications -----------------------------------------------------------------

    def receive_lifecycle(self, body: bytes | None) -> Outcome:
        """reauthorizationRequired: the connector reauthorizes on its next run;
        subscriptionRemoved: the calendar is queued for a new subscription;
        missed: the calendar is marked for a resync and consumers are told."""
        items = parse_body(body)
        lookups = Lookups(self.index, self.calendars, "lifecycle")
        accepted = dropped = 0
        for item in items:
            calendar = self._verified_calendar(item, lookups)
            event = item.get("lifecycleEvent") if isinstance(item, dict) else None
            if calendar is None or event not in LIFECYCLE_EVENTS:
                dropped += 1
                continue
            self._apply_lifecycle(calendar, str(event), str(item.get("subscriptionId")))
            if event == "subscriptionRemoved":
                lookups.gone(calendar.account_id, str(item.get("subscriptionId")))
            accepted += 1
        return Outcome(accepted, dropped)

    def _apply_lifecycle(self, calendar: Calendar, event: str, subscription_id: str) -> None:
        current: Calendar | None = calendar
        for _ in range(5):
            if current is None:
                return
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
            try:
                self.calendars.save(current)
                break
            except ConcurrencyConflict:
                current = self.calendars.find(calendar.account_id, calendar.email)
        log.info("lifecycle event %s for %s", event, calendar.email)
        if event == "subscriptionRemoved":
            self.index.remove(calendar.account_id, subscription_id)
        if event == "missed":
            # Some changes were not delivered: consumers re-read the room's calendar.
            self.queue.send_message(json.dumps({
                "account_id": calendar.account_id, "room_email": calendar.email, "space_id": calendar.space_id,
                "space_number": calendar.space_number, "change_type": "missed", "event_id": None,
                "subscription_id": subscription_id, "received_at": iso(utc_now()),
            }))


def _event_id(item: dict[str, Any]) -> str | None:
    data = item.get("resourceData")
    if isinstance(data, dict) and isinstance(data.get("id"), str):
        return data["id"][:512]
    resource = item.get("resource")
    if isinstance(resource, str) and "/" in resource:
        return resource.rstrip("/").rsplit("/", 1)[-1][:512] or None
    return None
