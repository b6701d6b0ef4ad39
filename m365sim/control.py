"""The simulator's control API under `/_sim/`: health, reset, tenant generator, knobs, consent
shortcut, the request log, and subscription tools (drop, deliver a change or lifecycle
notification); mailbox calendars and the notification log are control_mailboxes.py's.

Owns test-only operations that have no Microsoft counterpart. It answers loopback callers only
and must never be reachable under the Entra or Graph paths.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from typing import Any

from werkzeug.wrappers import Request, Response

from m365sim import delivery
from m365sim.control_mailboxes import MailboxControl
from m365sim.notifier import Notifier
from m365sim.state import KnobError, SimState, format_graph_time

LIFECYCLE_EVENTS = {"reauthorizationRequired", "subscriptionRemoved", "missed"}


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _json(status, {"error": {"code": code, "message": message}})


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def _body(request: Request) -> dict[str, Any] | None:
    if not request.get_data():
        return {}
    try:
        body = json.loads(request.get_data(as_text=True))
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


class ControlApi:
    def __init__(self, state: SimState, notifier: Notifier, outbound_ca_bundle: str | None = None) -> None:
        self.state = state
        self.notifier = notifier
        self.mailboxes = MailboxControl(state, notifier)
        self.outbound_ca_bundle = outbound_ca_bundle

    def handle(self, request: Request) -> Response:
        if not _is_loopback(request.remote_addr):
            return _error(403, "forbidden", "the control API answers loopback callers only")
        segments = [s for s in request.path.split("/") if s][1:]
        body = _body(request)
        if body is None:
            return _error(400, "bad_request", "the body must be a JSON object")
        method = request.method
        state = self.state
        if segments == ["health"] and method == "GET":
            return _json(200, {"status": "ok"})
        if segments == ["reset"] and method == "POST":
            state.reset()  # tenants go, and their mailboxes, events and delta state with them
            self.notifier.reset()
            return _json(200, {"status": "reset"})
        if segments == ["tenants"]:
            if method == "GET":
                with state.lock:
                    return _json(200, {"value": [t.summary() for t in state.tenants.values()]})
            if method == "POST":
                return self._create_tenant(body)
        if len(segments) >= 2 and segments[0] == "tenants":
            tenant = state.tenant_by_name(segments[1])
            if tenant is None:
                return _error(404, "not_found", f"no tenant {segments[1]}")
            if len(segments) == 2 and method == "GET":
                with state.lock:
                    return _json(200, tenant.summary())
            if segments[2:] == ["knobs"] and method in ("PATCH", "POST"):
                try:
                    with state.lock:
                        tenant.knobs.update(body)
                        return _json(200, tenant.knobs.as_dict())
                except KnobError as exc:
                    return _error(400, "bad_knob", str(exc))
            if segments[2:] == ["consent"] and method == "POST":
                granted = body.get("granted")
                if not isinstance(granted, bool):
                    return _error(400, "bad_request", "granted must be a boolean")
                state.grant_consent(tenant, granted)
                with state.lock:
                    return _json(200, tenant.summary())
        if segments == ["requests"] and method == "GET":
            since_text = request.args.get("since", "0")
            if not since_text.isdigit():
                return _error(400, "bad_request", "since must be a sequence number")
            tenant_id = request.args.get("tenant")
            if tenant_id:
                tenant = state.tenant_by_name(tenant_id)
                tenant_id = tenant.id if tenant else tenant_id.lower()
            return _json(200, {"value": state.requests_since(int(since_text), tenant_id or None)})
        if segments == ["subscriptions"] and method == "GET":
            tenant_id = request.args.get("tenant")
            tenant = state.tenant_by_name(tenant_id) if tenant_id else None
            with state.lock:
                ids = [s.id for s in state.subscriptions.values() if tenant_id is None or
                       (tenant is not None and s.tenant_id == tenant.id)]
            live = [state.live_subscription(i) for i in ids]
            return _json(200, {"value": [
                {**s.graph(include_client_state=True), "tenantId": s.tenant_id, "mailboxUserId": s.mailbox_user_id}
                for s in live if s is not None]})
        if len(segments) >= 2 and segments[0] == "subscriptions":
            subscription = state.live_subscription(segments[1])
            if subscription is None:
                return _error(404, "not_found", f"no subscription {segments[1]}")
            if len(segments) == 2 and method == "DELETE":
                state.drop_subscription(subscription.id)
                return Response(status=204)
            if segments[2:] == ["notify"] and method == "POST":
                return self._notify(subscription.id, body)
            if segments[2:] == ["lifecycle"] and method == "POST":
                return self._lifecycle(subscription.id, body)
        answered = self.mailboxes.handle(request, segments, body)
        if answered is not None:
            return answered
        return _error(404, "not_found", f"no control operation {method} {request.path}")

    def _create_tenant(self, body: dict[str, Any]) -> Response:
        rooms, domain, consented = body.get("rooms", 0), body.get("domain"), body.get("consented", False)
        if isinstance(rooms, bool) or not isinstance(rooms, int) or not 0 <= rooms <= 200_000:
            return _error(400, "bad_request", "rooms must be an integer from 0 to 200000")
        if domain is not None and (not isinstance(domain, str) or "." not in domain):
            return _error(400, "bad_request", "domain must be a DNS name")
        if not isinstance(consented, bool):
            return _error(400, "bad_request", "consented must be a boolean")
        try:
            tenant = self.state.create_generated_tenant(rooms, domain, consented)
        except ValueError as exc:
            return _error(409, "conflict", str(exc))
        with self.state.lock:
            return _json(201, {
                "id": tenant.id,
                "domain": tenant.domains[0],
                "admin": f"admin@{tenant.domains[0]}",
                "user": f"user@{tenant.domains[0]}",
                "consented": tenant.consented,
                "rooms": [r.email for r in tenant.rooms],
                "roomLists": [r.email for r in tenant.room_lists],
            })

    def _notify(self, subscription_id: str, body: dict[str, Any]) -> Response:
        change_type = body.get("changeType", "created")
        if change_type not in ("created", "updated", "deleted"):
            return _error(400, "bad_request", "changeType must be created, updated or deleted")
        event_id = body.get("eventId") or "AAMkA" + uuid.uuid4().hex
        with self.state.lock:
            sub = self.state.subscriptions.get(subscription_id)
            if sub is None:
                return _error(404, "not_found", f"no subscription {subscription_id}")
            resource = f"Users/{sub.mailbox_user_id}/Events/{event_id}"
            # Graph's change notification shape (learn.microsoft.com/graph/change-notifications-delivery-webhooks).
            payload = {"value": [{
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": format_graph_time(sub.expiration),
                "changeType": change_type,
                "resource": resource,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Event",
                    "@odata.id": resource,
                    "@odata.etag": f'W/"{uuid.uuid4().hex}"',
                    "id": event_id,
                },
                "clientState": sub.client_state,
                "tenantId": sub.tenant_id,
            }]}
            url = sub.notification_url
        return _json(200, delivery.post_json(url, payload, self.outbound_ca_bundle))

    def _lifecycle(self, subscription_id: str, body: dict[str, Any]) -> Response:
        event = body.get("lifecycleEvent")
        if event not in LIFECYCLE_EVENTS:
            return _error(400, "bad_request", f"lifecycleEvent must be one of {sorted(LIFECYCLE_EVENTS)}")
        with self.state.lock:
            sub = self.state.subscriptions.get(subscription_id)
            if sub is None:
                return _error(404, "not_found", f"no subscription {subscription_id}")
            if not sub.lifecycle_notification_url:
                return _error(409, "conflict", "the subscription has no lifecycleNotificationUrl")
            payload = {"value": [{
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": format_graph_time(sub.expiration),
                "tenantId": sub.tenant_id,
                "clientState": sub.client_state,
                "lifecycleEvent": event,
            }]}
            url = sub.lifecycle_notification_url
            if event == "subscriptionRemoved":
                # Graph removed it: it is gone whatever the subscriber answers.
                self.state.drop_subscription(sub.id)
        return _json(200, delivery.post_json(url, payload, self.outbound_ca_bundle))
