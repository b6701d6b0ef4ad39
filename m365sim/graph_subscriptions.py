"""Graph change-notification subscriptions: create (with the validation handshake), list, get,
renew, delete and reauthorize (learn.microsoft.com/graph/api/resources/subscription,
learn.microsoft.com/graph/change-notifications-delivery-webhooks).

Owns `/subscriptions` and its validation rules. It must never hold `SimState.lock` while calling
the subscriber, and never deliver change notifications (notifier.py does).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from m365sim import delivery
from m365sim.access import resolve_mailbox
from m365sim.odata import (
    Call,
    Context,
    GraphResult,
    graph_error,
    insufficient_privileges,
    json_body,
    page,
    parse_graph_time,
)
from m365sim.state import CALENDAR_ROLES, SimState, Subscription

# Outlook event subscriptions live at most 10,080 minutes (learn.microsoft.com/graph/api/resources/subscription).
MAX_SUBSCRIPTION_MINUTES = 10080
MAX_CLIENT_STATE_LENGTH = 128
VALID_CHANGE_TYPES = {"created", "updated", "deleted"}


class SubscriptionsApi:
    def __init__(self, state: SimState, outbound_ca_bundle: str | None = None) -> None:
        self.state = state
        self.outbound_ca_bundle = outbound_ca_bundle

    def handle(self, call: Call, ctx: Context, segments: list[str], lowered: list[str]) -> GraphResult:
        method = call.method
        if len(segments) == 1:
            if method == "POST":
                return self._create_subscription(call, ctx)
            if method == "GET":
                with self.state.lock:
                    subs = [s for s in self.state.subscriptions.values()
                            if s.tenant_id == ctx.tenant.id and s.application_id == ctx.claims.app_id]
                live = [s.graph(include_client_state=False) for s in subs
                        if self.state.live_subscription(s.id) is not None]
                return page(call, live, "subscriptions")
            return graph_error(405, "BadRequest", "Method not allowed.")
        subscription = self.state.live_subscription(segments[1])
        if subscription is None or subscription.tenant_id != ctx.tenant.id:
            return graph_error(404, "ResourceNotFound",
                               f"The object was not found. subscription '{segments[1]}' does not exist.")
        if len(segments) == 3 and lowered[2] == "reauthorize" and method == "POST":
            if not ctx.has_any(self.state, CALENDAR_ROLES):
                return insufficient_privileges()
            return GraphResult(204)
        if len(segments) != 2:
            return graph_error(400, "BadRequest", f"Resource not found for the segment '{segments[2]}'.")
        if method == "GET":
            return GraphResult(200, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/"
                                     "$entity", **subscription.graph(include_client_state=False)})
        if not ctx.has_any(self.state, CALENDAR_ROLES):
            return insufficient_privileges()
        if method == "DELETE":
            self.state.drop_subscription(subscription.id)
            return GraphResult(204)
        if method == "PATCH":
            body = json_body(call)
            if not isinstance(body, dict):
                return graph_error(400, "BadRequest", "Unable to read JSON request payload.")
            unsupported = set(body) - {"expirationDateTime", "notificationUrl", "@odata.type"}
            if unsupported:
                names = ", ".join(sorted(unsupported))
                return graph_error(400, "InvalidRequest", f"Properties cannot be updated: {names}.")
            expiration = _check_expiration(body.get("expirationDateTime"))
            if isinstance(expiration, GraphResult):
                return expiration
            with self.state.lock:
                if subscription.id not in self.state.subscriptions:
                    return graph_error(404, "ResourceNotFound", "The object was not found.")
                subscription.expiration = expiration
                answer = subscription.graph(include_client_state=False)
            return GraphResult(200, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/"
                                     "$entity", **answer})
        return graph_error(405, "BadRequest", "Method not allowed.")

    def _create_subscription(self, call: Call, ctx: Context) -> GraphResult:
        body = json_body(call)
        if not isinstance(body, dict):
            return graph_error(400, "BadRequest", "Unable to read JSON request payload.")
        change_type = body.get("changeType")
        if not isinstance(change_type, str) or not change_type or not set(change_type.split(",")) <= VALID_CHANGE_TYPES:
            return graph_error(400, "InvalidRequest", "changeType must be a comma-separated list of created, updated, "
                                                      "deleted.")
        notification_url = body.get("notificationUrl")
        lifecycle_url = body.get("lifecycleNotificationUrl")
        for name, url in (("notificationUrl", notification_url), ("lifecycleNotificationUrl", lifecycle_url)):
            if url is None and name == "lifecycleNotificationUrl":
                continue
            if not isinstance(url, str) or not delivery.is_allowed_notification_url(url):
                # Graph accepts only https; the simulator also accepts http on loopback.
                return graph_error(400, "InvalidRequest", f"The {name} must be an https URL.")
        client_state = body.get("clientState")
        if client_state is not None and (
            not isinstance(client_state, str) or len(client_state) > MAX_CLIENT_STATE_LENGTH
        ):
            return graph_error(400, "InvalidRequest", "clientState must be a string of at most 128 characters.")
        expiration = _check_expiration(body.get("expirationDateTime"))
        if isinstance(expiration, GraphResult):
            return expiration
        resource = body.get("resource")
        parts = resource.strip("/").split("/") if isinstance(resource, str) else []
        if len(parts) != 3 or parts[0].lower() != "users" or parts[2].lower() != "events" or not parts[1]:
            return graph_error(400, "InvalidRequest",
                               f"Resource '{resource}' is not supported. Use /users/{{id}}/events.")
        if not ctx.has_any(self.state, CALENDAR_ROLES):
            return graph_error(403, "ExtensionError", "Operation: Create; Exception: [Status Code: Forbidden; Reason: "
                                                      "Insufficient privileges to complete the operation.]")
        user = resolve_mailbox(self.state, ctx.tenant, parts[1])
        if isinstance(user, GraphResult):
            return user
        for url in (notification_url, lifecycle_url):
            if url is None:
                continue
            failure = delivery.validation_handshake(url, self.outbound_ca_bundle)
            if failure is not None:
                return graph_error(400, "ValidationError", "Subscription validation request failed. Notification "
                                   f"endpoint must respond with 200 OK to validation request. ({failure})")
        subscription = Subscription(
            id=str(uuid.uuid4()),
            tenant_id=ctx.tenant.id,
            application_id=ctx.claims.app_id,
            creator_id=ctx.tenant.service_principal_id,
            resource=resource,
            mailbox_user_id=user.id,
            change_type=change_type,
            notification_url=notification_url,
            lifecycle_notification_url=lifecycle_url,
            expiration=expiration,
            client_state=client_state,
        )
        self.state.add_subscription(subscription)
        return GraphResult(201, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
                                 **subscription.graph(include_client_state=True)})


def _check_expiration(value: Any) -> float | GraphResult:
    expiration = parse_graph_time(value)
    if expiration is None:
        return graph_error(400, "InvalidRequest", "expirationDateTime is required and must be a DateTimeOffset.")
    now = time.time()
    if expiration <= now:
        return graph_error(400, "InvalidRequest", "Subscription expiration time must be in the future.")
    if expiration > now + MAX_SUBSCRIPTION_MINUTES * 60:
        return graph_error(400, "InvalidRequest", "Subscription expiration can only be 10080 minutes in the future.")
    return expiration
