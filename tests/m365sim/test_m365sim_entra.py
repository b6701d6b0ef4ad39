"""Entra behaviour of m365sim: discovery + tokens through unmodified MSAL, token errors,
and the admin-consent page and its redirects."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import msal
import pytest
from conftest import CONTOSO_ID, GRAPH_SCOPE, Sim

CONTOSO_ADMIN = "admin@contoso.onmicrosoft.com"


def _msal_app(sim: Sim, tenant: str, host: str = "127.0.0.1") -> msal.ConfidentialClientApplication:
    authority = sim.base.replace("127.0.0.1", host) + f"/{tenant}"
    return msal.ConfidentialClientApplication(
        sim.client_id, client_credential=sim.client_secret, authority=authority,
        instance_discovery=False, http_client=sim.session(),
    )


def _token_request(sim: Sim, tenant: str, **overrides: str) -> Any:
    data = {"grant_type": "client_credentials", "client_id": sim.client_id, "client_secret": sim.client_secret,
            "scope": GRAPH_SCOPE, **overrides}
    with sim.session() as session:
        return session.post(f"{sim.base}/{tenant}/oauth2/v2.0/token", data=data, timeout=30)


def _consent_url(sim: Sim, tenant: str, **overrides: str) -> tuple[str, dict[str, str]]:
    params = {"client_id": sim.client_id, "scope": GRAPH_SCOPE, "redirect_uri": sim.redirect_uri,
              "state": "st-123", **overrides}
    return f"{sim.base}/{tenant}/v2.0/adminconsent", params


def _submit_consent(sim: Sim, tenant: str, username: str, decision: str, **overrides: str) -> Any:
    url, params = _consent_url(sim, tenant, **overrides)
    with sim.session() as session:
        return session.post(url, params=params, data={**params, "username": username, "decision": decision},
                            allow_redirects=False, timeout=30)


def _redirect_query(response: Any, sim: Sim) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(sim.redirect_uri + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_unmodified_msal_gets_a_graph_token_for_a_consented_tenant(sim: Sim, tenant: dict[str, Any], host: str) -> None:
    result = _msal_app(sim, tenant["id"], host=host).acquire_token_for_client([GRAPH_SCOPE])
    assert result.get("token_type") == "Bearer", result
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["tid"] == tenant["id"]
    assert claims["appid"] == sim.client_id
    assert sorted(claims["roles"]) == ["Calendars.ReadWrite", "MailboxSettings.Read", "Place.Read.All", "User.Read.All"]
    assert claims["exp"] - claims["iat"] == 3600


def test_msal_accepts_a_verified_domain_as_authority(sim: Sim, tenant: dict[str, Any]) -> None:
    result = _msal_app(sim, tenant["domain"]).acquire_token_for_client([GRAPH_SCOPE])
    assert jwt.decode(result["access_token"], options={"verify_signature": False})["tid"] == tenant["id"]


def test_token_is_refused_before_consent(sim: Sim, new_tenant: Any) -> None:
    unconsented = new_tenant(consented=False)
    response = _token_request(sim, unconsented["id"])
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "unauthorized_client"
    assert body["error_codes"] == [700016]
    assert {"error_description", "timestamp", "trace_id", "correlation_id"} <= set(body)


def test_token_is_refused_after_consent_is_revoked(sim: Sim, tenant: dict[str, Any]) -> None:
    assert _token_request(sim, tenant["id"]).status_code == 200
    assert sim.control("POST", f"tenants/{tenant['id']}/consent", json={"granted": False}).status_code == 200
    response = _token_request(sim, tenant["id"])
    assert (response.status_code, response.json()["error_codes"]) == (400, [700016])


def test_consent_revoked_knob_refuses_tokens_until_cleared(sim: Sim, tenant: dict[str, Any]) -> None:
    sim.knobs(tenant["id"], consent_revoked=True)
    assert _token_request(sim, tenant["id"]).json()["error"] == "unauthorized_client"
    sim.knobs(tenant["id"], consent_revoked=False)
    assert _token_request(sim, tenant["id"]).status_code == 200


def test_bad_secret_is_invalid_client(sim: Sim, tenant: dict[str, Any]) -> None:
    response = _token_request(sim, tenant["id"], client_secret="wrong")
    assert response.status_code == 401
    assert (response.json()["error"], response.json()["error_codes"]) == ("invalid_client", [7000215])


def test_unknown_tenant_is_invalid_request(sim: Sim) -> None:
    response = _token_request(sim, "nosuchtenant.onmicrosoft.com")
    assert response.status_code == 400
    assert (response.json()["error"], response.json()["error_codes"]) == ("invalid_request", [90002])
    with sim.session() as session:
        discovery = session.get(f"{sim.base}/nosuchtenant.onmicrosoft.com/v2.0/.well-known/openid-configuration")
    assert discovery.status_code == 400


def test_missing_permissions_knob_drops_roles_from_new_tokens(sim: Sim, tenant: dict[str, Any]) -> None:
    sim.knobs(tenant["id"], missing_permissions=["Place.Read.All"])
    claims = jwt.decode(sim.token(tenant["id"]), options={"verify_signature": False})
    assert sorted(claims["roles"]) == ["Calendars.ReadWrite", "MailboxSettings.Read", "User.Read.All"]


def test_consent_page_is_a_form_with_the_permissions(sim: Sim) -> None:
    url, params = _consent_url(sim, "contoso.onmicrosoft.com")
    with sim.session() as session:
        response = session.get(url, params=params, timeout=30)
    assert response.status_code == 200
    page = response.text
    for needle in ('name="username"', 'name="decision" value="accept"', 'name="decision" value="cancel"',
                   "Calendars.ReadWrite", "MailboxSettings.Read", "Place.Read.All", "User.Read.All",
                   'name="state" value="st-123"'):
        assert needle in page


def test_admin_accept_grants_consent_and_redirects_with_the_tenant(sim: Sim, new_tenant: Any) -> None:
    created = new_tenant(consented=False)
    query = _redirect_query(_submit_consent(sim, created["domain"], created["admin"], "accept"), sim)
    assert query["admin_consent"] == "True"
    assert query["tenant"] == created["id"]
    assert query["state"] == "st-123"
    assert "Calendars.ReadWrite" in query["scope"]
    assert _token_request(sim, created["id"]).status_code == 200


def test_organizations_consent_grants_the_tenant_of_the_username(sim: Sim) -> None:
    query = _redirect_query(_submit_consent(sim, "organizations", CONTOSO_ADMIN, "accept"), sim)
    assert query["tenant"] == CONTOSO_ID
    assert _token_request(sim, CONTOSO_ID).status_code == 200


def test_cancel_redirects_with_access_denied(sim: Sim) -> None:
    query = _redirect_query(_submit_consent(sim, CONTOSO_ID, CONTOSO_ADMIN, "cancel"), sim)
    assert query["error"] == "access_denied"
    assert query["error_description"].startswith("AADSTS65004: User declined to consent to access the app.")
    assert query["state"] == "st-123"
    assert "admin_consent" not in query


def test_non_admin_gets_consent_required(sim: Sim) -> None:
    query = _redirect_query(_submit_consent(sim, CONTOSO_ID, "megan@contoso.onmicrosoft.com", "accept"), sim)
    assert query["error"] == "consent_required"
    assert query["error_description"].startswith("AADSTS90094:")
    assert query["state"] == "st-123"


def test_generated_tenant_user_is_not_an_admin(sim: Sim, new_tenant: Any) -> None:
    created = new_tenant(consented=False)
    query = _redirect_query(_submit_consent(sim, created["id"], created["user"], "accept"), sim)
    assert query["error"] == "consent_required"


def test_username_outside_the_tenant_shows_the_page_again(sim: Sim) -> None:
    response = _submit_consent(sim, CONTOSO_ID, "admin@fabrikam.onmicrosoft.com", "accept")
    assert response.status_code == 200
    assert "AADSTS50034" in response.text
    assert 'name="username"' in response.text


@pytest.mark.parametrize(
    ("tenant", "overrides", "code"),
    [
        ("nosuchtenant.onmicrosoft.com", {}, "AADSTS90002"),
        ("contoso.onmicrosoft.com", {"redirect_uri": "https://evil.example/cb"}, "AADSTS50011"),
        ("contoso.onmicrosoft.com", {"client_id": "00000000-0000-0000-0000-000000000001"}, "AADSTS700016"),
        ("common", {}, "AADSTS90130"),
    ],
)
def test_consent_errors_show_an_error_page_and_never_redirect(sim: Sim, tenant: str, overrides: dict[str, str],
                                                               code: str) -> None:
    url, params = _consent_url(sim, tenant, **overrides)
    with sim.session() as session:
        shown = session.get(url, params=params, allow_redirects=False, timeout=30)
    posted = _submit_consent(sim, tenant, CONTOSO_ADMIN, "accept", **overrides)
    for response in (shown, posted):
        assert response.status_code == 400
        assert "Location" not in response.headers
        assert code in response.text
