"""Calendar accounts through devhost, Azurite and m365sim with the unmodified MSAL:
admin consent to Account Verified and every way it can go wrong."""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from shared.accounts import sign_state
from tests.flows import answer_consent, follow_callback, new_sim_tenant, verified_account


def _state_of(consent_url: str) -> str:
    return parse_qs(urlsplit(consent_url).query)["state"][0]


def _sim(stack, method: str, path: str, **kwargs) -> requests.Response:
    response = requests.request(method, f"{stack.sim_url}{path}", verify=stack.ca_bundle, timeout=30, **kwargs)
    response.raise_for_status()
    return response


def test_full_round_trip_to_account_verified(admin, stack) -> None:
    tenant = new_sim_tenant(stack, rooms=2)
    added = admin.post("/api/accounts", json={"tenant_id": tenant["domain"]})
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["account"]["status"] == "pending_consent"
    assert body["consent_url"].startswith(stack.env["LOGIN_BASE_URL"] + "/")

    callback = answer_consent(stack, body["consent_url"], tenant["admin"])
    assert callback.startswith(stack.base_url + "/api/consent/callback?")
    outcome = follow_callback(admin, callback)
    assert outcome == {"consent": "verified", "account": body["account"]["id"]}

    account = admin.get(f"/api/accounts/{body['account']['id']}").json()
    assert account["status"] == "verified"
    assert account["status_label"] == "Account Verified"
    assert account["consented_by"] == "admin@contoso.onmicrosoft.com"
    assert account["verified_at"]
    assert account["missing_permissions"] == []
    assert {"Calendars.ReadWrite", "Place.Read.All", "User.Read.All"} <= set(account["granted_permissions"])
    listed = admin.get("/api/accounts").json()["items"]
    assert body["account"]["id"] in {a["id"] for a in listed}


def test_a_tenant_guid_works_as_well_as_a_domain(admin, stack) -> None:
    tenant = new_sim_tenant(stack, rooms=1)
    added = admin.post("/api/accounts", json={"tenant_id": tenant["id"].upper()})
    assert added.status_code == 201, added.text
    assert added.json()["account"]["id"] == tenant["id"]


def test_cancel_on_microsofts_page_is_shown_as_declined(admin, stack) -> None:
    tenant = new_sim_tenant(stack, rooms=1)
    added = admin.post("/api/accounts", json={"tenant_id": tenant["domain"]}).json()
    outcome = follow_callback(admin, answer_consent(stack, added["consent_url"], tenant["admin"], "cancel"))
    assert outcome["consent"] == "declined"
    account = admin.get(f"/api/accounts/{added['account']['id']}").json()
    assert account["status"] == "consent_failed"
    assert "cancelled or declined" in account["last_error"]


def test_a_non_admin_consenting_is_told_to_use_an_admin(admin, stack) -> None:
    tenant = new_sim_tenant(stack, rooms=1)
    non_admin_user = next((u for u in tenant.get("users", []) if not u.get("admin")), None)
    username = (non_admin_user or {}).get("userPrincipalName") or f"user@{tenant['domain']}"
    added = admin.post("/api/accounts", json={"tenant_id": tenant["domain"]}).json()
    outcome = follow_callback(admin, answer_consent(stack, added["consent_url"], username))
    assert outcome["consent"] == "not_admin"
    assert "Global Administrator" in admin.get(f"/api/accounts/{added['account']['id']}").json()["last_error"]


def test_replayed_consent_state_is_refused(admin, stack) -> None:
    tenant = new_sim_tenant(stack, rooms=1)
    added = admin.post("/api/accounts", json={"tenant_id": tenant["domain"]}).json()
    callback = answer_consent(stack, added["consent_url"], tenant["admin"])
    assert follow_callback(admin, callback)["consent"] == "verified"
    assert follow_callback(admin, callback)["consent"] == "replayed"


def test_tampered_state_changes_nothing(admin, stack) -> None:
    tenant = new_sim_tenant(stack, rooms=1)
    added = admin.post("/api/accounts", json={"tenant_id": tenant["domain"]}).json()
    state = _state_of(added["consent_url"])
    tampered = state[:-3] + ("AAA" if not state.endswith("AAA") else "BBB")
    query = urlencode({"admin_consent": "True", "tenant": tenant["id"], "scope": "x", "state": tampered})
    outcome = follow_callback(admin, f"{stack.base_url}/api/consent/callback?{query}")
    assert outcome == {"consent": "invalid_state"}
    assert admin.get(f"/api/accounts/{added['account']['id']}").json()["status"] == "pending_consent"


def test_expired_state_is_refused(admin, stack) -> None:
    tenant = new_sim_tenant(stack, rooms=1)
    added = admin.post("/api/accounts", json={"tenant_id": tenant["domain"]}).json()
    nonce = "n" * 32
    expired = sign_state(stack.env["STATE_SIGNING_KEY"].encode(), nonce, added["account"]["id"], int(time.time()) - 1)
    query = urlencode({"admin_consent": "True", "tenant": tenant["id"], "scope": "x", "state": expired})
    assert follow_callback(admin, f"{stack.base_url}/api/consent/callback?{query}") == {"consent": "expired"}


def test_state_started_by_another_admin_is_refused(admin, second_admin, stack) -> None:
    tenant = new_sim_tenant(stack, rooms=1)
    added = admin.post("/api/accounts", json={"tenant_id": tenant["domain"]}).json()
    callback = answer_consent(stack, added["consent_url"], tenant["admin"])
    assert follow_callback(second_admin, callback)["consent"] == "wrong_admin"
    assert admin.get(f"/api/accounts/{added['account']['id']}").json()["status"] == "pending_consent"


def test_consent_returned_for_another_tenant_is_refused(admin, stack) -> None:
    first = new_sim_tenant(stack, rooms=1)
    second = new_sim_tenant(stack, rooms=1)
    first_account = admin.post("/api/accounts", json={"tenant_id": first["domain"]}).json()
    # Microsoft's redirect names the second tenant, with the first account's state.
    query = urlencode({"admin_consent": "True", "tenant": second["id"], "scope": "x",
                       "state": _state_of(first_account["consent_url"])})
    assert follow_callback(admin, f"{stack.base_url}/api/consent/callback?{query}")["consent"] == "tenant_mismatch"
    assert admin.get(f"/api/accounts/{first_account['account']['id']}").json()["status"] == "consent_failed"


def test_unexpected_callback_parameters_are_refused(admin, stack) -> None:
    tenant = new_sim_tenant(stack, rooms=1)
    added = admin.post("/api/accounts", json={"tenant_id": tenant["domain"]}).json()
    callback = answer_consent(stack, added["consent_url"], tenant["admin"])
    assert follow_callback(admin, callback + "&next=https://evil.example")["consent"] == "invalid_response"


def test_callback_always_redirects_to_our_own_page(anonymous, stack) -> None:
    response = anonymous.get(f"{stack.base_url}/api/consent/callback?state=x&redirect=https://evil.example",
                             allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"].startswith(stack.env.get("ADMIN_PAGE_URL") or stack.base_url)


def _anonymous_refusals(admin) -> tuple[int, int]:
    """(entries, refusals they count) of refused anonymous consent callbacks."""
    listed = admin.get("/api/audit", params={"actor": "anonymous", "action": "consent.callback", "page_size": 200})
    assert listed.status_code == 200, listed.text
    assert listed.json()["continuation_token"] is None
    entries = listed.json()["items"]
    assert {(e["actor"], e["action"]) for e in entries} <= {("anonymous", "consent.callback")}
    return len(entries), sum(e["count"] for e in entries)


def test_refused_callbacks_are_counted_and_cannot_push_the_admins_entries_off_the_first_page(
        admin, anonymous, stack) -> None:
    tenant = new_sim_tenant(stack, rooms=1)
    assert admin.post("/api/accounts", json={"tenant_id": tenant["domain"]}).status_code == 201
    rows_before, before = _anonymous_refusals(admin)
    refusals = 60

    def refused(index: int) -> int:
        return anonymous.get("/api/consent/callback", params={"state": f"forged-{index}", "admin_consent": "True"},
                             allow_redirects=False).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:  # several at once: the counter's ETag races
        assert set(pool.map(refused, range(refusals))) == {302}
    first_page = admin.get("/api/audit", params={"page_size": 10}).json()["items"]
    assert ("account.add", tenant["domain"]) in {(e["action"], e["target"]) for e in first_page}
    rows_after, after = _anonymous_refusals(admin)
    assert after - before == refusals
    assert rows_after - rows_before <= 2  # a row a minute (the loop may straddle a minute's end)
    mine = admin.get("/api/audit", params={"actor": "admin@contoso.onmicrosoft.com", "action": "account.add"})
    assert mine.status_code == 200
    assert tenant["domain"] in {e["target"] for e in mine.json()["items"]}
    assert {e["actor"] for e in mine.json()["items"]} == {"admin@contoso.onmicrosoft.com"}


def test_missing_permission_is_shown(admin, stack) -> None:
    tenant = new_sim_tenant(stack, rooms=1)
    _sim(stack, "PATCH", f"/_sim/tenants/{tenant['id']}/knobs", json={"missing_permissions": ["Place.Read.All"]})
    added = admin.post("/api/accounts", json={"tenant_id": tenant["domain"]}).json()
    outcome = follow_callback(admin, answer_consent(stack, added["consent_url"], tenant["admin"]))
    assert outcome["consent"] == "verified"
    account = admin.get(f"/api/accounts/{added['account']['id']}").json()
    assert account["missing_permissions"] == ["Place.Read.All"]


def test_revoked_consent_needs_reauth_and_reauthorizing_fixes_it(admin, stack) -> None:
    account = verified_account(admin, stack, rooms=1)
    _sim(stack, "POST", f"/_sim/tenants/{account['tenant_id']}/consent", json={"granted": False})
    checked = admin.post(f"/api/accounts/{account['account_id']}/check")
    assert checked.status_code == 200, checked.text
    assert checked.json()["status"] == "needs_reauth"

    again = admin.post(f"/api/accounts/{account['account_id']}/reauthorize").json()
    outcome = follow_callback(admin, answer_consent(stack, again["consent_url"], account["admin"]))
    assert outcome["consent"] == "verified"
    assert admin.get(f"/api/accounts/{account['account_id']}").json()["status"] == "verified"


def test_remove_account(admin, stack) -> None:
    account = verified_account(admin, stack, rooms=1)
    removed = admin.delete(f"/api/accounts/{account['account_id']}")
    assert removed.status_code == 200, removed.text
    assert admin.get(f"/api/accounts/{account['account_id']}").status_code == 404
    assert admin.post("/api/accounts", json={"tenant_id": account["domain"]}).status_code == 201


def test_the_same_tenant_twice_is_a_conflict(admin, stack) -> None:
    tenant = new_sim_tenant(stack, rooms=1)
    assert admin.post("/api/accounts", json={"tenant_id": tenant["domain"]}).status_code == 201
    again = admin.post("/api/accounts", json={"tenant_id": tenant["id"]})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"


def test_an_admin_body_nested_too_deep_is_a_400_not_a_server_error(admin) -> None:
    for body in (b"[" * 200_000, b'{"tenant_id": ' + b"[" * 200_000, b'{"tenant_id": NaN}'):
        response = admin.post("/api/accounts", data=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid"
    token = base64.urlsafe_b64encode(b"[" * 1500).decode().rstrip("=")
    listed = admin.get("/api/audit", params={"continuation_token": token})
    assert listed.status_code == 400, listed.text


@pytest.mark.parametrize("tenant_id", ["", "x" * 10_000, "<script>alert(1)</script>", "cоntoso.onmicrosoft.com",
                                       "common", 42, None])
def test_malformed_tenant_ids_are_a_400(admin, tenant_id) -> None:
    response = admin.post("/api/accounts", json={"tenant_id": tenant_id})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert response.json()["error"]["message"]


def test_an_unknown_tenant_is_a_400(admin) -> None:
    response = admin.post("/api/accounts", json={"tenant_id": "no-such-tenant.onmicrosoft.com"})
    assert response.status_code == 400
    assert "no Microsoft 365 tenant" in response.json()["error"]["message"]


ACCOUNT_ENDPOINTS = [
    ("GET", "/api/accounts"),
    ("POST", "/api/accounts"),
    ("GET", "/api/accounts/6f1c2a4e-8b3d-4e5f-9a7b-0c1d2e3f4a5b"),
    ("DELETE", "/api/accounts/6f1c2a4e-8b3d-4e5f-9a7b-0c1d2e3f4a5b"),
    ("POST", "/api/accounts/6f1c2a4e-8b3d-4e5f-9a7b-0c1d2e3f4a5b/reauthorize"),
    ("POST", "/api/accounts/6f1c2a4e-8b3d-4e5f-9a7b-0c1d2e3f4a5b/check"),
]


@pytest.mark.parametrize("method, path", ACCOUNT_ENDPOINTS)
def test_account_endpoints_need_a_signed_in_principal(anonymous, stack, method, path) -> None:
    response = anonymous.request(method, stack.base_url + path, json={}, headers={"X-Requested-With": "x"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize("method, path", ACCOUNT_ENDPOINTS)
def test_account_endpoints_need_the_administrator_role(non_admin, method, path) -> None:
    response = non_admin.request(method, path, json={})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


def test_state_changing_requests_need_the_anti_forgery_header(admin, stack) -> None:
    response = requests.post(stack.base_url + "/api/accounts", json={"tenant_id": "contoso.onmicrosoft.com"},
                             cookies=admin.cookies, timeout=30)
    assert response.status_code == 403
    form = admin.post("/api/accounts", data={"tenant_id": "contoso.onmicrosoft.com"})
    assert form.status_code == 415
