"""Graph's change and lifecycle notifications: the secret that proves them ours, the index that finds
their calendar, and the inbox that checks each one and defers the work it asks for.
"""

from __future__ import annotations

from shared.notifications.client_state import client_state_for, client_state_hash, client_state_matches, new_nonce
from shared.notifications.inbox import MAX_BODY_BYTES, NotificationInbox, check_validation_token, parse_body
from shared.notifications.index import SubscriptionIndex

__all__ = ["MAX_BODY_BYTES", "NotificationInbox", "SubscriptionIndex", "check_validation_token", "client_state_for",
           "client_state_hash", "client_state_matches", "new_nonce", "parse_body"]
