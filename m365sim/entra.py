"""Entra ID (Microsoft identity platform v2.0) endpoints: OpenID discovery, JWKS, the
client-credentials token endpoint and the admin-consent page.

Owns Microsoft's error shapes and AADSTS codes for those endpoints
(learn.microsoft.com/entra/identity-platform/v2-admin-consent,
learn.microsoft.com/entra/identity-platform/reference-error-codes). It must never redirect to a
redirect_uri that is not registered, and never grant consent for a user who is not a tenant admin.
"""

from __future__ import annotations

import base64
import html
import json
import secrets
import time
import uuid
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from m365sim.state import SimState, Tenant
from m365sim.tokens import TOKEN_LIFETIME_SECONDS, TokenIssuer

GRAPH_DEFAULT_SCOPE = "https://graph.microsoft.com/.default"
GRAPH_APP_ID_DEFAULT_SCOPE = "00000003-0000-0000-c000-000000000000/.default"
# Tenant-independent names: `organizations` works for admin consent, `common`/`consumers` do not
# (personal accounts cannot consent for an organisation).
ORGANIZATIONS = "organizations"
_NOT_FOR_ADMIN_CONSENT = {"common", "consumers"}

PERMISSION_DESCRIPTIONS = {
    "Calendars.ReadWrite": "Read and write calendars in all mailboxes",
    "Calendars.Read": "Read calendars in all mailboxes",
    "Place.Read.All": "Read all company places",
    "User.Read.All": "Read all users' full profiles",
}


def _timestamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())


def _error_uri(request: Request, code: int) -> str:
    return f"https://{request.host}/error?code={code}"


def aad_error(request: Request, status: int, error: str, code: int, message: str) -> Response:
    """Entra's JSON error body for the token and discovery endpoints."""
    trace_id, correlation_id, timestamp = str(uuid.uuid4()), str(uuid.uuid4()), _timestamp()
    body = {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {message} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}"
        ),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": _error_uri(request, code),
    }
    return Response(json.dumps(body), status=status, content_type="application/json; charset=utf-8")


def _tenant_not_found(request: Request, name: str) -> tuple[int, str]:
    return 90002, (
        f"Tenant '{name}' not found. Check to make sure you have the correct tenant ID and are signing into the "
        "correct cloud. Check with your subscription administrator, this may happen if there are no active "
        "subscriptions for the tenant."
    )


def openid_configuration(state: SimState, request: Request, tenant_name: str) -> Response:
    base = f"https://{request.host}"
    if tenant_name.lower() in (ORGANIZATIONS, "common"):
        tid = "{tenantid}"
    else:
        tenant = state.tenant_by_name(tenant_name)
        if tenant is None:
            code, message = _tenant_not_found(request, tenant_name)
            return aad_error(request, 400, "invalid_tenant", code, message)
        tid = tenant.id
    doc = {
        "token_endpoint": f"{base}/{tid}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{base}/{tid}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base}/{tid}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base}/oidc/userinfo",
        "authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/{tid}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "roles"],
        "kerberos_endpoint": f"{base}/{tid}/kerberos",
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }
    return Response(json.dumps(doc), content_type="application/json; charset=utf-8")


def jwks(issuer: TokenIssuer) -> Response:
    return Response(json.dumps(issuer.jwks()), content_type="application/json; charset=utf-8")


def _client_credentials(request: Request) -> tuple[str | None, str | None]:
    """client_id/secret from the body (client_secret_post) or an HTTP Basic header."""
    client_id, secret = request.form.get("client_id"), request.form.get("client_secret")
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(auth[6:]).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            decoded = ""
        user, _, password = decoded.partition(":")
        client_id, secret = client_id or user or None, secret or password or None
    return client_id, secret


def token(state: SimState, issuer: TokenIssuer, request: Request, tenant_name: str) -> tuple[Response, str | None]:
    """The client-credentials grant. Returns the response and the resolved tenant id (for the log)."""
    if tenant_name.lower() in (ORGANIZATIONS, "common", "consumers"):
        return aad_error(
            request, 400, "invalid_request", 50059,
            "No tenant-identifying information found in either the request or implied by any provided credentials.",
        ), None
    tenant = state.tenant_by_name(tenant_name)
    if tenant is None:
        code, message = _tenant_not_found(request, tenant_name)
        return aad_error(request, 400, "invalid_request", code, message), None
    grant_type = request.form.get("grant_type")
    client_id, secret = _client_credentials(request)
    scope = request.form.get("scope", "")
    if not grant_type:
        return aad_error(request, 400, "invalid_request", 900144,
                         "The request body must contain the following parameter: 'grant_type'."), tenant.id
    if grant_type != "client_credentials":
        return aad_error(request, 400, "unsupported_grant_type", 70003,
                         "The app requested an unsupported grant type."), tenant.id
    if not client_id:
        return aad_error(request, 400, "invalid_request", 900144,
                         "The request body must contain the following parameter: 'client_id'."), tenant.id
    with state.lock:
        known_in_tenant = (
            client_id.lower() == state.app.client_id.lower() and tenant.consented and not tenant.knobs.consent_revoked
        )
    if not known_in_tenant:
        # What Entra answers when the app has no service principal in the tenant:
        # never consented, or consent revoked (service principal removed).
        return aad_error(
            request, 400, "unauthorized_client", 700016,
            f"Application with identifier '{client_id}' was not found in the directory '{tenant.display_name}'. "
            "This can happen if the application has not been installed by the administrator of the tenant or "
            "consented to by any user in the tenant. You may have sent your authentication request to the wrong "
            "tenant.",
        ), tenant.id
    if not secret:
        return aad_error(
            request, 401, "invalid_client", 7000216,
            "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
        ), tenant.id
    if not secrets.compare_digest(secret.encode("utf-8"), state.app.client_secret.encode("utf-8")):
        return aad_error(
            request, 401, "invalid_client", 7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
            f"value, not the client secret ID, for a secret added to app '{client_id}'.",
        ), tenant.id
    scopes = scope.split()
    if len(scopes) != 1 or scopes[0] not in (GRAPH_DEFAULT_SCOPE, GRAPH_APP_ID_DEFAULT_SCOPE):
        return aad_error(
            request, 400, "invalid_scope", 1002012,
            f"The provided value for scope {scope} is not valid. Client credential flows must have a scope value "
            "with /.default suffixed to the resource identifier (application ID URI).",
        ), tenant.id
    with state.lock:
        roles = sorted(tenant.effective_roles())
    access_token = issuer.issue(
        tenant_id=tenant.id, app_id=state.app.client_id, app_display_name=state.app.display_name,
        service_principal_id=tenant.service_principal_id, roles=roles,
    )
    body = {
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECONDS - 1,
        "ext_expires_in": TOKEN_LIFETIME_SECONDS - 1,
        "access_token": access_token,
    }
    return Response(json.dumps(body), content_type="application/json; charset=utf-8",
                    headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}), tenant.id


# ---------------------------------------------------------------------------------------------
# Admin consent


def _error_page(request: Request, code: int, message: str, status: int = 400) -> Response:
    request_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    error_uri = html.escape(_error_uri(request, code))
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to your account</title></head>
<body>
<main id="error-page">
<h1>Sorry, but we're having trouble signing you in.</h1>
<p id="error-code">AADSTS{code}: {html.escape(message)}</p>
<dl id="error-details">
<dt>Request Id</dt><dd id="request-id">{request_id}</dd>
<dt>Correlation Id</dt><dd id="correlation-id">{correlation_id}</dd>
<dt>Timestamp</dt><dd id="timestamp">{_timestamp()}</dd>
<dt>More information</dt><dd><a href="{error_uri}">{error_uri}</a></dd>
</dl>
</main>
</body></html>"""
    return Response(body, status=status, content_type="text/html; charset=utf-8")


def error_info_page(request: Request) -> Response:
    code = request.args.get("code", "")
    body = (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error code lookup</title></head>"
        f"<body><h1>Error code: AADSTS{html.escape(code)}</h1>"
        "<p>m365sim: see learn.microsoft.com/entra/identity-platform/reference-error-codes.</p></body></html>"
    )
    return Response(body, content_type="text/html; charset=utf-8")


def _consent_page(state: SimState, request: Request, tenant_label: str, params: dict[str, str],
                  error: str | None) -> Response:
    permissions = "\n".join(
        f'<li data-permission="{html.escape(p)}"><strong>{html.escape(PERMISSION_DESCRIPTIONS.get(p, p))}</strong>'
        f" <code>{html.escape(p)}</code></li>"
        for p in state.app.required_permissions
    )
    hidden = "\n".join(
        f'<input type="hidden" name="{name}" value="{html.escape(params[name])}">'
        for name in ("client_id", "scope", "redirect_uri", "state")
    )
    error_html = f'<p id="signin-error" role="alert">{html.escape(error)}</p>' if error else ""
    action = html.escape(request.full_path if request.query_string else request.path)
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Permissions requested</title>
<style>body{{font-family:sans-serif;max-width:34rem;margin:3rem auto}} #signin-error{{color:#a4262c}}</style>
</head>
<body>
<main id="consent-page">
<h1>Permissions requested</h1>
<p id="app-name"><strong>{html.escape(state.app.display_name)}</strong> ({html.escape(state.app.client_id)})</p>
<p id="tenant-label">Organisation: {html.escape(tenant_label)}</p>
<p>This app would like to:</p>
<ul id="permissions">
{permissions}
</ul>
<p>Accepting grants these permissions for your whole organisation.</p>
{error_html}
<form id="consent-form" method="post" action="{action}">
{hidden}
<label for="username">Administrator account</label>
<input id="username" name="username" type="email" autocomplete="username" placeholder="admin@contoso.onmicrosoft.com">
<button id="accept" type="submit" name="decision" value="accept">Accept</button>
<button id="cancel" type="submit" name="decision" value="cancel">Cancel</button>
</form>
</main>
</body></html>"""
    return Response(body, status=200, content_type="text/html; charset=utf-8")


def _redirect(redirect_uri: str, params: dict[str, str]) -> Response:
    separator = "&" if "?" in redirect_uri else "?"
    return Response(status=302, headers={"Location": redirect_uri + separator + urlencode(params)})


def admin_consent(state: SimState, request: Request, tenant_name: str) -> tuple[Response, str | None]:
    """GET shows the sign-in and permissions page; POST is the admin's decision.

    Validation order follows Entra: tenant, client id, redirect URI; the first two failures and
    a bad redirect URI show an error page and never redirect.
    """
    source = request.form if request.method == "POST" else request.args
    params = {name: source.get(name, request.args.get(name, "")) for name in
              ("client_id", "scope", "redirect_uri", "state")}
    lowered = tenant_name.lower()
    tenant: Tenant | None = None
    if lowered in _NOT_FOR_ADMIN_CONSENT:
        return _error_page(request, 90130, f"Application '{params['client_id']}' is not supported over the "
                           f"/{lowered} endpoint. Use a tenant-specific or /organizations endpoint."), None
    if lowered != ORGANIZATIONS:
        tenant = state.tenant_by_name(tenant_name)
        if tenant is None:
            return _error_page(request, *_tenant_not_found(request, tenant_name)), None
    tenant_id = tenant.id if tenant else None
    if not params["client_id"]:
        return _error_page(request, 900144, "The request body must contain the following parameter: 'client_id'."), \
            tenant_id
    if params["client_id"].lower() != state.app.client_id.lower():
        where = f"the directory '{tenant.display_name}'" if tenant else "any directory"
        return _error_page(
            request, 700016,
            f"Application with identifier '{params['client_id']}' was not found in {where}. This can happen if the "
            "application has not been installed by the administrator of the tenant or consented to by any user in "
            "the tenant. You may have sent your authentication request to the wrong tenant.",
        ), tenant_id
    if params["redirect_uri"] not in state.app.redirect_uris:
        return _error_page(
            request, 50011,
            f"The redirect URI '{params['redirect_uri']}' specified in the request does not match the redirect URIs "
            f"configured for the application '{state.app.client_id}'. Make sure the redirect URI sent in the request "
            "matches one added to your application in the Azure portal.",
        ), tenant_id
    redirect_uri = params["redirect_uri"]

    def fail(error: str, code: int, message: str) -> Response:
        return _redirect(redirect_uri, {
            "error": error,
            "error_description": f"AADSTS{code}: {message}",
            "error_uri": _error_uri(request, code),
            "state": params["state"],
        })

    if not params["scope"]:
        return fail("invalid_request", 900144,
                    "The request body must contain the following parameter: 'scope'."), tenant_id
    label = tenant.display_name if tenant else "your organisation"
    if request.method == "GET":
        return _consent_page(state, request, label, params, None), tenant_id

    decision = request.form.get("decision", "")
    if decision == "cancel":
        return fail("access_denied", 65004, "User declined to consent to access the app."), tenant_id
    if decision != "accept":
        return _consent_page(state, request, label, params, "Choose Accept or Cancel."), tenant_id
    username = request.form.get("username", "").strip()
    user_tenant = tenant if tenant is not None else state.tenant_of_username(username)
    user = None
    if username and user_tenant is not None:
        user = next((u for u in user_tenant.users if not u.is_room and username.lower() in
                     (u.user_principal_name.lower(), u.mail.lower())), None)
    if user is None or user_tenant is None:
        directory = f"the {tenant.display_name} directory" if tenant else "any directory"
        message = (f"AADSTS50034: The user account {username} does not exist in {directory}. "
                   "To sign into this application, the account must be added to the directory.") if username \
            else "Enter your administrator account."
        page = _consent_page(state, request, label, params, message)
        page.status_code = 200
        return page, tenant_id
    if not user.is_admin:
        return fail(
            "consent_required", 90094,
            f"{state.app.display_name} needs permission to access resources in your organization that only an "
            "admin can grant. Please ask an admin to grant permission to this app before you can use it.",
        ), user_tenant.id
    state.grant_consent(user_tenant, True)
    granted_scopes = " ".join(f"https://graph.microsoft.com/{p}" for p in state.app.required_permissions)
    return _redirect(redirect_uri, {
        "admin_consent": "True",
        "tenant": user_tenant.id,
        "scope": granted_scopes,
        "state": params["state"],
    }), user_tenant.id

