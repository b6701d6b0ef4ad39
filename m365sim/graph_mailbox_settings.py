"""`GET /users/{id}/mailboxSettings` and one of its properties (`…/mailboxSettings/userPurpose`),
in Graph's shape (learn.microsoft.com/graph/api/user-get-mailboxsettings).

Owns the settings a mailbox answers: `userPurpose` (`room` for room mailboxes, `user` for
people, or what the `mailbox_purposes` knob says), its time zone and working hours. It must
never check permissions or policy (graph_calendar.py has done so) and never change state.
"""

from __future__ import annotations

from typing import Any

from m365sim.odata import Call, GraphResult, segment_not_found, select
from m365sim.state import SimState, Tenant, User

MAILBOX_TIME_ZONE = "UTC"


def settings_of(purpose: str, user: User) -> dict[str, Any]:
    return {
        "archiveFolder": "AQMkA" + user.id.replace("-", "")[:24] + "AAAAEJAAAA",
        "timeZone": MAILBOX_TIME_ZONE,
        "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
        "dateFormat": "M/d/yyyy",
        "timeFormat": "h:mm tt",
        "userPurpose": purpose,
        "automaticRepliesSetting": {
            "status": "disabled", "externalAudience": "all", "internalReplyMessage": "", "externalReplyMessage": "",
            "scheduledStartDateTime": {"dateTime": "2026-01-01T00:00:00.0000000", "timeZone": "UTC"},
            "scheduledEndDateTime": {"dateTime": "2026-01-02T00:00:00.0000000", "timeZone": "UTC"},
        },
        "language": {"locale": "en-US", "displayName": "English (United States)"},
        "workingHours": {
            "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
            "startTime": "08:00:00.0000000", "endTime": "17:00:00.0000000",
            "timeZone": {"name": MAILBOX_TIME_ZONE},
        },
    }


def mailbox_settings(state: SimState, tenant: Tenant, user: User, rest: list[str], call: Call) -> GraphResult:
    """`rest` is what follows mailboxSettings/ (lower-cased): nothing, or one property name."""
    with state.lock:
        purpose = tenant.purpose(user)
    settings = settings_of(purpose, user)
    context = f"https://graph.microsoft.com/v1.0/$metadata#users('{user.id}')/mailboxSettings"
    if not rest:
        return GraphResult(200, {"@odata.context": context, **select(settings, call.query)})
    names = {name.lower(): name for name in settings}
    name = names.get(rest[0])
    if name is None:
        return segment_not_found(rest[0])
    return GraphResult(200, {"@odata.context": f"{context}/{name}", "value": settings[name]})
