"""Multi-step flows the integration tests share: a fresh simulated tenant taken
through admin consent to Account Verified, the way an admin's browser would."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests


def new_sim_tenant(stack: Any, rooms: int = 3, **options: Any) -> dict[str, Any]:
    """A fresh, isolated tenant in m365sim (its own GUID, domain, admin and rooms)."""
    response = requests.post(f"{stack.sim_url}/_sim/tenants", json={"rooms": rooms, **options},
                             verify=stack.ca_bundle, timeout=30)
    response.raise_for_status()
    return response.json()


def room_emails(tenant: dict[str, Any]) -> list[str]:
    rooms = tenant.get("rooms") or tenant.get("room_emails") or []
    return [room if isinstance(room, str) else room.get("email") or room.get("emailAddress") for room in rooms]


def answer_consent(stack: Any, consent_url: str, username: str, decision: str = "accept") -> str:
    """Post m365sim's consent form as the admin would click it; returns the redirect (our callback URL)."""
    query = {key: values[0] for key, values in parse_qs(urlsplit(consent_url).query).items()}
    response = requests.post(consent_url.split("?")[0] + "?" + urlsplit(consent_url).query,
                             data={**query, "username": username, "decision": decision},
                             verify=stack.ca_bundle, allow_redirects=False, timeout=30)
    assert response.status_code == 302, response.text[:500]
    return response.headers["Location"]


def follow_callback(admin: requests.Session, callback_url: str) -> dict[str, str]:
    """Open our consent callback as the admin's browser; returns the admin page's query."""
    response = admin.get(callback_url, allow_redirects=False)
    assert response.status_code == 302, response.text[:500]
    return {key: values[0] for key, values in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def verified_account(admin: requests.Session, stack: Any, rooms: int = 3, **tenant_options: Any) -> dict[str, Any]:
    """A fresh sim tenant added as an account and consented: Account Verified."""
    tenant = new_sim_tenant(stack, rooms=rooms, **tenant_options)
    domain = tenant.get("domain") or tenant["domains"][0]
    added = admin.post("/api/accounts", json={"tenant_id": domain})
    assert added.status_code == 201, added.text
    callback = answer_consent(stack, added.json()["consent_url"], tenant.get("admin") or f"admin@{domain}")
    outcome = follow_callback(admin, callback)
    assert outcome.get("consent") == "verified", outcome
    account_id = added.json()["account"]["id"]
    return {"account_id": account_id, "tenant_id": tenant.get("id") or tenant.get("tenant_id"), "domain": domain,
            "admin": tenant.get("admin") or f"admin@{domain}", "room_emails": room_emails(tenant), "tenant": tenant}
