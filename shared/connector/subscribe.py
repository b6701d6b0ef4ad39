"""Subscriptions of connected rooms: reconcile then create, renew, reauthorize, and delete what no calendar knows.

Owns the rule that leaves no orphan subscription in Graph: before creating one for a room,
the app's subscriptions for that mailbox are read from the run's listing; the one whose
clientState this product derives for the room (or the one the calendar already names) is
adopted and renewed, any other is deleted, and one is created only when none is left; each
run deletes subscriptions that no calendar knows, except for rooms being connected right
now. Every Graph call goes through the tenant's gate. It never creates a calendar.
"""

from __future__ import annotations

import hmac
import logging

from shared.calendars import Calendar, CalendarRepository
from shared.connector.calls import GraphCalls
from shared.connector.claims import Claims
from shared.connector.failures import ConsentLost, Failure, transient
from shared.connector.gate import Deferred
from shared.connector.work import Settled, TenantRun
from shared.graph import GraphError, GraphSubscription, IdentityUnavailable, SubscriptionManager, subscription_expiry
from shared.models import CalendarStatus, FailureKind, iso, parse_iso, utc_now
from shared.notifications import SubscriptionIndex

log = logging.getLogger("rcc.connector")


class Subscriber:
    def __init__(self, *, calls: GraphCalls, claims: Claims, calendars: CalendarRepository,
                 subscriptions: SubscriptionManager, index: SubscriptionIndex) -> None:
        self.calls = calls
        self.claims = claims
        self.calendars = calendars
        self.subscriptions = subscriptions
        self.index = index

    def abandon(self, work: TenantRun, calendar: Calendar, subscription: GraphSubscription) -> None:
        """The calendar was removed (or the lease lost) while we subscribed: a removed calendar's
        subscription is deleted now; for a lost lease the next run's reconciliation decides."""
        if self.calendars.find(calendar.account_id, calendar.email) is None:
            try:
                self._delete(work, subscription.subscription_id)
            except (GraphError, Deferred, ConsentLost, Failure) as error:
                log.warning("could not delete the subscription of removed %s now (%s); the next run will",
                            calendar.email, error)

    def subscribe(self, work: TenantRun, calendar: Calendar, mailbox_id: str, *,
                  record: bool = True) -> GraphSubscription:
        """Reconcile, then create: adopt the room's subscription whose clientState we derive (or
        the one the calendar already names), delete any other of ours for the room, and create
        one only when none is left. `record=False` leaves the webhooks' index entry to the caller."""
        expected = self.claims.client_state(calendar)
        keys = {mailbox_id.lower(), calendar.email}
        adopted: GraphSubscription | None = None
        for existing in [s for s in work.listing if s.mailbox_key in keys]:
            ours = (existing.client_state is not None and hmac.compare_digest(existing.client_state, expected)) or (
                existing.subscription_id == calendar.subscription_id)
            if adopted is None and ours:
                adopted = existing
                continue
            try:
                self._delete(work, existing.subscription_id)
                work.counts.add("orphans_deleted")
            except GraphError as error:
                log.warning("could not delete duplicate subscription for %s (%s)", calendar.email, error.graph_code)
        if adopted is not None:
            try:
                renewed = self.calls.call(work, lambda: self.subscriptions.renew(
                    work.tenant_id, adopted.subscription_id, subscription_expiry(), max_wait_seconds=0),
                    mailbox=calendar.email, write=True)
                if record:
                    self.index.put(calendar.account_id, renewed.subscription_id, calendar.email)
                return renewed
            except GraphError as error:
                if error.status != 404:
                    raise
        created = self.calls.call(work, lambda: self.subscriptions.create(
            work.tenant_id, mailbox_id, expected, subscription_expiry(), max_wait_seconds=0),
            mailbox=calendar.email, write=True)
        if not created.subscription_id:
            raise transient("Microsoft Graph answered without a subscription id, retrying next run")
        if record:
            self.index.put(calendar.account_id, created.subscription_id, calendar.email)
        return created

    def maintain_one(self, work: TenantRun, calendar: Calendar) -> None:
        """Reauthorize when Graph asked for it, renew when the expiry is within a day; a
        subscription Graph no longer has (404) is replaced."""
        subscription_id = calendar.subscription_id or ""
        try:
            if calendar.reauthorize_requested and subscription_id:
                self.calls.call(work, lambda: self.subscriptions.reauthorize(
                    work.tenant_id, subscription_id, max_wait_seconds=0), mailbox=calendar.email, write=True)
            if subscription_id:
                subscription = self.calls.call(work, lambda: self.subscriptions.renew(
                    work.tenant_id, subscription_id, subscription_expiry(), max_wait_seconds=0),
                    mailbox=calendar.email, write=True)
            else:
                raise GraphError(404, "ResourceNotFound", "no subscription")
        except GraphError as error:
            if error.status != 404:
                self.keep_trying(work, calendar, self.calls.failure_of(work, error, calendar, "renew the subscription"))
                return
            try:
                subscription = self.subscribe(work, calendar, calendar.mailbox_id or calendar.email)
            except (GraphError, Deferred, ConsentLost, Failure, IdentityUnavailable) as failure:
                self.fail(work, calendar, self.calls.failure_of(work, failure, calendar, "subscribe again"))
                return
        except (Deferred, ConsentLost, Failure, IdentityUnavailable) as error:
            self.keep_trying(work, calendar, self.calls.failure_of(work, error, calendar, "renew the subscription"))
            return

        def renewed(current: Calendar) -> None:
            if current.subscription_id and current.subscription_id != subscription.subscription_id:
                self.index.remove(current.account_id, current.subscription_id)
            current.subscription_id = subscription.subscription_id
            current.subscription_expires_at = subscription.expires_at or current.subscription_expires_at
            current.last_error = None
            current.reauthorize_requested = False

        saved = self.claims.finish(work, calendar, renewed)
        if saved:
            work.counts.add("renewed")
            if subscription.subscription_id != subscription_id:
                self.claims.subscribed([saved])  # re-created: what the old one missed is read afresh

    def keep_trying(self, work: TenantRun, calendar: Calendar, failure: Failure) -> None:
        """A renewal that failed: transient trouble keeps the calendar connected (the next run
        tries again while the subscription lives); anything else is a failure to act on."""
        expires = parse_iso(calendar.subscription_expires_at)
        if failure.kind is FailureKind.TRANSIENT and expires is not None and expires > utc_now():
            def noted(current: Calendar) -> None:
                current.last_error = failure.reason
            self.claims.finish(work, calendar, noted)
            return
        self.fail(work, calendar, failure)

    def delete_unknown_subscriptions(self, work: TenantRun) -> None:
        """Delete subscriptions of ours that no calendar knows. Calendars are read after the
        listing, so a subscription saved meanwhile is known; rooms being connected right now
        (connecting, or holding a live lease) are left to their own reconciliation. Such a room
        may not have its mailbox id saved yet, and Graph names the mailbox by id: while one
        does, a subscription for a mailbox no calendar names waits for a later run."""
        known: set[str] = set()
        busy: set[str] = set()
        mailboxes: set[str] = set()
        busy_without_mailbox_id = False
        now = utc_now()
        for calendar in self.calendars.all_of(work.account.account_id):
            keys = {calendar.email} | ({calendar.mailbox_id.lower()} if calendar.mailbox_id else set())
            mailboxes |= keys
            if calendar.subscription_id:
                known.add(calendar.subscription_id.lower())
            if calendar.status is CalendarStatus.CONNECTING or (calendar.lease is not None
                                                                and calendar.lease.is_live(now)):
                busy |= keys
                busy_without_mailbox_id = busy_without_mailbox_id or not calendar.mailbox_id

        def may_be_in_progress(subscription: GraphSubscription) -> bool:
            return subscription.mailbox_key in busy or (busy_without_mailbox_id
                                                        and subscription.mailbox_key not in mailboxes)

        for subscription in work.listing:
            if subscription.subscription_id.lower() in known or may_be_in_progress(subscription):
                continue
            try:
                self._delete(work, subscription.subscription_id)
                work.counts.add("orphans_deleted")
                log.info("deleted subscription %s that no calendar knows", subscription.subscription_id)
            except GraphError as error:
                log.warning("could not delete unknown subscription %s (%s)", subscription.subscription_id,
                            error.graph_code)
        work.listing = [s for s in work.listing if s.subscription_id.lower() in known or may_be_in_progress(s)]

    def fail(self, work: TenantRun, calendar: Calendar, failure: Failure) -> None:
        self.claims.settle(work, failed(calendar, failure), self.abandon)

    def _delete(self, work: TenantRun, subscription_id: str) -> None:
        """Delete one of our subscriptions (gone already is fine) and forget its index entry."""
        try:
            self.calls.call(work, lambda: self.subscriptions.delete(work.tenant_id, subscription_id,
                                                                    max_wait_seconds=0), write=True)
        finally:
            self.index.remove(work.account.account_id, subscription_id)


def failed(calendar: Calendar, failure: Failure) -> Settled:
    """The outcome of a room that failed: its status, reason and (transient only) next attempt."""
    def change(current: Calendar) -> None:
        current.set_status(CalendarStatus.FAILED, failure.reason, failure.kind)
        current.last_error = failure.reason
        current.next_attempt_at = iso(failure.retry_at) if failure.kind is FailureKind.TRANSIENT else None

    return Settled(calendar, change, "failed")


def delete_subscription_quietly(subscriptions: SubscriptionManager, index: SubscriptionIndex,
                                calendar: Calendar) -> None:
    """Delete the calendar's subscription in Graph and its index entry; gone already is fine. When
    Graph cannot be reached the removal goes on: the connector's reconciliation deletes
    subscriptions Graph reports that we no longer know."""
    if not calendar.subscription_id:
        return
    try:
        subscriptions.delete(calendar.account_id, calendar.subscription_id)
    except GraphError as error:
        log.warning("could not delete subscription of %s now (%s); reconciliation will",
                    calendar.email, error.graph_code)
    except Exception as error:  # noqa: BLE001 - token refused etc.: same fallback as above
        log.warning("could not delete subscription of %s now (%s); reconciliation will",
                    calendar.email, type(error).__name__)
    finally:
        index.remove(calendar.account_id, calendar.subscription_id)
