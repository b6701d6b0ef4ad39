"""Calendar accounts: a Microsoft 365 tenant each, from admin consent to Account Verified.

Owns the account model and its table, the consent flow and its signed state, the probes of
what the app can do in the tenant, and what an administrator does with accounts (add,
re-authorize, check, remove).
"""

from __future__ import annotations

from shared.accounts.capabilities import REQUIRED_PERMISSIONS, probe_capabilities
from shared.accounts.consent import ConsentOutcome, ConsentService
from shared.accounts.consent_state import ConsentStates, InvalidState, sign_state, verify_state_signature
from shared.accounts.model import Account, Capability, change_status, new_account, parse_tenant
from shared.accounts.repository import AccountRepository
from shared.accounts.service import AccountService

__all__ = [
    "REQUIRED_PERMISSIONS", "Account", "AccountRepository", "AccountService", "Capability", "ConsentOutcome",
    "ConsentService", "ConsentStates", "InvalidState", "change_status", "new_account", "parse_tenant",
    "probe_capabilities", "sign_state", "verify_state_signature",
]
