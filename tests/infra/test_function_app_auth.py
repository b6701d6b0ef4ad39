"""Who reaches the Function App's HTTP functions: App Service Authentication (backend-link.bicep).

The app trusts `X-MS-CLIENT-PRINCIPAL` only because the platform authenticates every
request before the app sees it and strips a client's own copy of the header. That holds
as long as authentication is required (401 otherwise), the only providers are the
linked Static Web App and Microsoft Entra ID for the listed bookings clients, and the
only path left out is the blob extension's webhook (protected by its system key). The
anonymous routes (consent callback, Graph webhooks, health) are anonymous only at the
Static Web App (test_static_web_app_config.py); at the Function App the Static Web App is
the caller. These tests read the Bicep; docs/deploy.md shows the curl that checks it live.
https://learn.microsoft.com/azure/app-service/configure-authentication-provider-aad#use-a-built-in-authorization-policy
https://learn.microsoft.com/azure/static-web-apps/functions-bring-your-own#security-constraints
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest

from tests.infra.support import INFRA, bicep_files, bicep_tree, parameters, resources_of_type
from tests.infra.test_static_web_app_config import ANONYMOUS_ENDPOINTS

BACKEND_LINK = INFRA / "modules" / "backend-link.bicep"
MAIN = INFRA / "main.bicep"
PARAMETERS_FILE = INFRA / "main.parameters.json"
BLOB_WEBHOOK = "/runtime/webhooks/blobs"
LOGIN_ENDPOINT = "https://login.microsoftonline.com/"
HOME_TENANT = "11111111-1111-1111-1111-111111111111"
PRODUCT_CLIENT_ID = "22222222-2222-2222-2222-222222222222"
WORKPLACE_CLIENT_ID = "33333333-3333-3333-3333-333333333333"
OTHER_CLIENT_ID = "44444444-4444-4444-4444-444444444444"
SWA_HOSTNAME = "nice-sea-0123.azurestaticapps.net"


def auth_settings() -> dict[str, Any]:
    configs = resources_of_type(bicep_tree(BACKEND_LINK), "Microsoft.Web/sites/config")
    (resource,) = (r for r in configs.values() if r["config"]["name"] == "authsettingsV2")
    return resource["config"]


def providers() -> dict[str, Any]:
    return auth_settings()["properties"]["identityProviders"]


# --- a small evaluator for the few Bicep expressions these settings use ---------------
# pycep gives identifiers and string literals alike as plain strings; `names` says which
# strings are identifiers.


def evaluate(value: Any, names: dict[str, Any]) -> Any:
    if isinstance(value, str):
        if value in names:
            return names[value]
        return re.sub(r"\$\{([^}]+)\}", lambda match: str(evaluate(match.group(1), names)), value)
    if isinstance(value, list):
        return [evaluate(item, names) for item in value]
    if isinstance(value, bool | int) or value is None:
        return value
    if "operator" in value:
        operator = value["operator"]
        operands = operator["operands"]
        if operator["type"] == "not":
            return not evaluate(operands["bool_value"], names)
        if operator["type"] == "conditional":
            chosen = "true_value" if evaluate(operands["condition"], names) else "false_value"
            return evaluate(operands[chosen], names)
        if operator["type"] == "property_accessor":
            return f"{operands['operand_1']}.{evaluate_path(operands['operand_2'])}"
    if "function" in value:
        function = value["function"]
        arguments = function["parameters"]
        kind = function["type"]
        if kind == "empty":
            return len(evaluate(arguments["item_to_test"], names)) == 0
        if kind == "replace":
            text = evaluate(arguments["original_string"], names)
            return text.replace(arguments["old_string"], arguments["new_string"])
        if kind == "split":
            return evaluate(arguments["input_string"], names).split(arguments["delimiter"])
        if kind == "filter":
            element = arguments["input_element"]
            return [
                item
                for item in evaluate(arguments["input_array"], names)
                if evaluate(arguments["expression"], {**names, element: item})
            ]
        if kind == "subscription":
            return names["subscription()." + function["property_name"]]
    return {key: evaluate(item, names) for key, item in value.items()}


def evaluate_path(value: Any) -> str:
    if isinstance(value, str):
        return value
    operands = value["operator"]["operands"]
    return f"{operands['operand_1']}.{evaluate_path(operands['operand_2'])}"


def resolved_settings(client_ids: list[str]) -> dict[str, Any]:
    """The module's authsettingsV2 properties as deployed with these parameter values."""
    names = {
        "entraClientId": PRODUCT_CLIENT_ID,
        "entraTenantId": HOME_TENANT,
        "bookingsClientAppIds": client_ids,
        "environment().authentication.loginEndpoint": LOGIN_ENDPOINT,
    }
    properties = evaluate(auth_settings()["properties"], names)
    static_web_app = properties["identityProviders"]["azureStaticWebApps"]["registration"]
    assert static_web_app["clientId"] == "staticWebApp.properties.defaultHostname"
    static_web_app["clientId"] = SWA_HOSTNAME
    return properties


@dataclass(frozen=True)
class Caller:
    """What a request carries: a Static Web App's proxied call, or an Entra ID access token."""

    static_web_app: str | None = None
    token_issuer: str | None = None
    token_audience: str | None = None
    token_app_id: str | None = None  # the appid / azp claim


def admitted(settings: dict[str, Any], caller: Caller, path: str = "/api/spaces/3-014/bookings") -> bool:
    """App Service Authentication's decision, as Microsoft documents it, for these settings."""
    validation = settings["globalValidation"]
    if path.startswith(tuple(validation.get("excludedPaths") or [])):
        return True  # left to the Functions host (the blob webhook's system key)
    assert validation["requireAuthentication"] is True
    assert validation["unauthenticatedClientAction"] == "Return401"
    swa = settings["identityProviders"]["azureStaticWebApps"]
    if caller.static_web_app and swa["enabled"] and caller.static_web_app == swa["registration"]["clientId"]:
        return True
    entra = settings["identityProviders"]["azureActiveDirectory"]
    if not (entra["enabled"] and caller.token_issuer):
        return False
    audiences = {entra["registration"]["clientId"], *entra["validation"]["allowedAudiences"]}
    applications = entra["validation"]["defaultAuthorizationPolicy"]["allowedApplications"]
    return (
        caller.token_issuer == entra["registration"]["openIdIssuer"]
        and caller.token_audience in audiences
        # An empty list admits any application: that is why the provider is off without one.
        and (not applications or caller.token_app_id in applications)
    )


HOME_ISSUER = f"{LOGIN_ENDPOINT}{HOME_TENANT}/v2.0"
OTHER_TENANT_ISSUER = f"{LOGIN_ENDPOINT}55555555-5555-5555-5555-555555555555/v2.0"


def token(issuer: str = HOME_ISSUER, audience: str = PRODUCT_CLIENT_ID, app_id: str = WORKPLACE_CLIENT_ID) -> Caller:
    """A caller with an access token; by default the workplace system's, for the product's API."""
    return Caller(token_issuer=issuer, token_audience=audience, token_app_id=app_id)


WORKPLACE_TOKEN = token()


# --- the settings themselves -------------------------------------------------------


def test_one_authentication_configuration_exists_and_it_is_v2() -> None:
    names = [
        resource["config"]["name"]
        for path in bicep_files()
        for resource in resources_of_type(bicep_tree(path), "Microsoft.Web/sites/config").values()
        if "auth" in str(resource["config"]["name"]).lower()
    ]
    # A Static Web App's linked backend needs version 2 of App Service Authentication.
    assert names == ["authsettingsV2"]


def test_authentication_is_required_and_the_unauthenticated_get_401() -> None:
    properties = auth_settings()["properties"]
    assert properties["platform"]["enabled"] is True
    validation = properties["globalValidation"]
    assert validation["requireAuthentication"] is True
    assert validation["unauthenticatedClientAction"] == "Return401"
    assert "redirectToProvider" not in validation
    assert properties["httpSettings"]["requireHttps"] is True


def test_only_the_blob_webhook_is_left_out_of_authentication() -> None:
    assert auth_settings()["properties"]["globalValidation"]["excludedPaths"] == [BLOB_WEBHOOK]


def test_the_anonymous_routes_are_anonymous_at_the_static_web_app_only() -> None:
    # Microsoft's redirect, Graph's webhooks and the health probe go through the Static Web
    # App (PUBLIC_BASE_URL is its URL); on *.azurewebsites.net they need authentication too.
    assert ANONYMOUS_ENDPOINTS == {
        ("GET", "/api/consent/callback"),
        ("POST", "/api/notifications"),
        ("POST", "/api/notifications/lifecycle"),
        ("GET", "/api/health"),
    }
    settings = resolved_settings([WORKPLACE_CLIENT_ID])
    for _, path in ANONYMOUS_ENDPOINTS:
        assert not admitted(settings, Caller(), path), f"{path} must not be anonymous on the Function App"


def test_the_settings_are_written_after_the_link() -> None:
    # Linking writes its own authentication settings; ours must come last to win.
    assert auth_settings()["dependsOn"] == ["link"]
    (link,) = resources_of_type(bicep_tree(BACKEND_LINK), "Microsoft.Web/staticSites/linkedBackends").values()
    assert link["config"]["properties"]["backendResourceId"] == {
        "operator": {"type": "property_accessor", "operands": {"operand_1": "functionApp", "operand_2": "id"}}
    }


def test_the_only_providers_are_the_static_web_app_and_entra_id() -> None:
    assert set(providers()) == {"azureStaticWebApps", "azureActiveDirectory"}


def test_the_static_web_app_provider_is_this_static_web_app() -> None:
    swa = providers()["azureStaticWebApps"]
    assert swa["enabled"] is True
    assert evaluate_path(swa["registration"]["clientId"]) == "staticWebApp.properties.defaultHostname"


def test_entra_id_is_only_for_tokens_the_listed_clients_obtain() -> None:
    entra = providers()["azureActiveDirectory"]
    assert evaluate(entra["enabled"], {"bookingsClientAppIds": []}) is False
    assert evaluate(entra["enabled"], {"bookingsClientAppIds": [WORKPLACE_CLIENT_ID]}) is True
    policy = entra["validation"]["defaultAuthorizationPolicy"]
    assert policy == {"allowedApplications": "bookingsClientAppIds"}
    # No client secret: the Function App never signs anyone in; it only validates tokens.
    assert set(entra["registration"]) == {"clientId", "openIdIssuer"}
    # The module has no default: main.bicep must say which clients (possibly none).
    assert parameters(bicep_tree(BACKEND_LINK))["bookingsClientAppIds"].get("default") is None


def test_entra_tokens_must_come_from_the_home_tenant_for_the_products_api() -> None:
    entra = providers()["azureActiveDirectory"]
    issuer = entra["registration"]["openIdIssuer"]
    # The app registration is multitenant (for customers' admin consent): a common or
    # organizations issuer would accept tokens that any customer tenant issues.
    assert issuer == "${environment().authentication.loginEndpoint}${entraTenantId}/v2.0"
    assert entra["registration"]["clientId"] == "entraClientId"
    assert entra["validation"]["allowedAudiences"] == ["api://${entraClientId}"]


# --- the decision, for the callers that matter ----------------------------------------


def test_the_static_web_app_is_admitted_with_or_without_bookings_clients() -> None:
    for client_ids in ([], [WORKPLACE_CLIENT_ID]):
        assert admitted(resolved_settings(client_ids), Caller(static_web_app=SWA_HOSTNAME))


def test_a_listed_client_is_admitted_with_a_token_for_the_products_api() -> None:
    settings = resolved_settings([WORKPLACE_CLIENT_ID])
    assert admitted(settings, WORKPLACE_TOKEN)
    assert admitted(settings, token(audience=f"api://{PRODUCT_CLIENT_ID}"))  # a v1.0 token's audience


@pytest.mark.parametrize(
    ("caller", "why"),
    [
        (Caller(), "no credential at all"),
        (Caller(static_web_app="other-site.azurestaticapps.net"), "another Static Web App"),
        (token(app_id=OTHER_CLIENT_ID), "an unlisted client"),
        (token(issuer=OTHER_TENANT_ISSUER), "a listed client's token from another tenant (a customer's, say)"),
        (token(audience="https://graph.microsoft.com"), "a token for another API"),
    ],
)
def test_every_other_caller_is_refused(caller: Caller, why: str) -> None:
    assert not admitted(resolved_settings([WORKPLACE_CLIENT_ID]), caller), why


def test_no_token_is_accepted_while_no_client_is_listed() -> None:
    assert not admitted(resolved_settings([]), WORKPLACE_TOKEN)


# --- main.bicep and azd ---------------------------------------------------------------


def test_main_passes_the_clients_tenant_and_audience_from_the_azd_environment() -> None:
    main = bicep_tree(MAIN)
    assert parameters(main)["bookingsClientAppIds"]["default"] == ""
    assert parameters(main)["entraTenantId"]["default"] == ""
    in_file = json.loads(PARAMETERS_FILE.read_text())["parameters"]
    assert in_file["bookingsClientAppIds"] == {"value": "${BOOKINGS_CLIENT_APP_IDS=}"}
    assert in_file["entraTenantId"] == {"value": "${ENTRA_TENANT_ID=}"}
    params = main["modules"]["backendLink"]["config"]["params"]
    assert params["bookingsClientAppIds"] == "bookingsClientIds"
    assert params["entraTenantId"] == "homeTenantId"
    assert params["entraClientId"] == "entraClientId"


@pytest.mark.parametrize(
    ("environment_value", "client_ids"),
    [
        ("", []),
        (WORKPLACE_CLIENT_ID, [WORKPLACE_CLIENT_ID]),
        (f" {WORKPLACE_CLIENT_ID} , {OTHER_CLIENT_ID},", [WORKPLACE_CLIENT_ID, OTHER_CLIENT_ID]),
    ],
)
def test_the_client_list_is_read_from_a_comma_separated_value(environment_value: str, client_ids: list[str]) -> None:
    expression = bicep_tree(MAIN)["variables"]["bookingsClientIds"]["value"]
    assert evaluate(expression, {"bookingsClientAppIds": environment_value}) == client_ids


@pytest.mark.parametrize(("environment_value", "tenant"), [("", "subscription-tenant"), (HOME_TENANT, HOME_TENANT)])
def test_the_home_tenant_defaults_to_the_subscriptions(environment_value: str, tenant: str) -> None:
    expression = bicep_tree(MAIN)["variables"]["homeTenantId"]["value"]
    names = {"entraTenantId": environment_value, "subscription().tenantId": "subscription-tenant"}
    assert evaluate(expression, names) == tenant
