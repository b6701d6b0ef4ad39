"""infra/ parses, every parameter is used, and the app settings are the ones the code reads.

Parsing is pycep's (what checkov uses; there is no Bicep CLI here), run in .venv-infra.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shared.settings import SETTING_DESCRIPTIONS
from tests.infra.support import (
    INFRA,
    REPO,
    ROLE_NAMES,
    bicep_files,
    bicep_tree,
    decorator_types,
    parameters,
    parse_bicep_files,
    referenced_identifiers,
    resources_of_type,
)

MAIN = INFRA / "main.bicep"
FUNCTION_APP = INFRA / "modules" / "functionapp.bicep"
PARAMETERS_FILE = INFRA / "main.parameters.json"

# Settings the app reads (shared/settings.py) that Azure deliberately leaves unset:
NOT_SET_IN_AZURE = {
    # A connection string needs a shared key, and shared keys are off on the account;
    # the app uses DataStorage__accountName with its managed identity instead.
    "DataStorage",
    # Extra certificate authorities exist only for the local simulator's TLS.
    "CA_BUNDLE_PATH",
}

# Settings the Bicep sets that the app does not read: the Functions host reads them.
HOST_SETTINGS = {
    # The connection `DataStorage` of the blob and queue triggers, identity based (blob
    # service for the uploads, queue service for calendar-changes and the poison queues).
    "DataStorage__blobServiceUri",
    "DataStorage__queueServiceUri",
    "DataStorage__credential",
    # The host's own storage account (leases, timer schedule, keys) through the identity.
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    # Telemetry to Application Insights, authenticated with Entra ID (local auth is off).
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}

SECRET_SETTINGS = {"ENTRA_CLIENT_SECRET", "STATE_SIGNING_KEY"}
SECRET_LIKE_NAME = re.compile(r"secret|password|signingkey|token|credential", re.IGNORECASE)


def relative(path: Path) -> str:
    return str(path.relative_to(REPO))


def app_settings_resource() -> dict[str, Any]:
    configs = resources_of_type(bicep_tree(FUNCTION_APP), "Microsoft.Web/sites/config")
    settings = [resource for resource in configs.values() if resource["config"].get("name") == "appsettings"]
    assert len(settings) == 1, "functionapp.bicep must hold exactly one `appsettings` config resource"
    return settings[0]["config"]["properties"]


def test_infra_has_the_expected_templates() -> None:
    names = {relative(path) for path in bicep_files()}
    assert "infra/main.bicep" in names
    assert {"infra/modules/functionapp.bicep", "infra/modules/staticwebapp.bicep"} <= names


@pytest.mark.parametrize("path", bicep_files(), ids=relative)
def test_bicep_file_parses(path: Path) -> None:
    tree = bicep_tree(path)
    assert tree.get("resources") or tree.get("modules"), f"{relative(path)} declares nothing"


def test_parser_rejects_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "broken.bicep"
    broken.write_text("param name string\nresource site 'Microsoft.Web/sites@2024-04-01' = {\n  name: name\n")
    assert parse_bicep_files([broken])[broken]["ok"] is False


@pytest.mark.parametrize("path", bicep_files(), ids=relative)
def test_every_declared_parameter_is_used(path: Path) -> None:
    used = set(referenced_identifiers(path.read_text()))
    unused = sorted(set(parameters(bicep_tree(path))) - used)
    assert not unused, f"{relative(path)} declares parameters it never uses: {unused}"


def test_parameters_file_names_only_parameters_of_main() -> None:
    declared = set(parameters(bicep_tree(MAIN)))
    in_file = set(json.loads(PARAMETERS_FILE.read_text())["parameters"])
    assert in_file <= declared, f"main.parameters.json sets unknown parameters: {sorted(in_file - declared)}"


def test_parameters_file_takes_every_value_from_the_azd_environment() -> None:
    # A literal value here would be committed to git; secrets in particular come from azd.
    for name, entry in json.loads(PARAMETERS_FILE.read_text())["parameters"].items():
        assert re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*(=[^}]*)?\}", str(entry.get("value"))), (
            f"main.parameters.json: {name} must be an azd environment variable reference, got {entry!r}"
        )


def test_every_required_parameter_of_main_has_a_source() -> None:
    # Without a default, a value in main.parameters.json or azd's `generate` metadata,
    # azd would stop and prompt in the middle of `azd up`.
    in_file = set(json.loads(PARAMETERS_FILE.read_text())["parameters"])
    for name, parameter in parameters(bicep_tree(MAIN)).items():
        generated = "azd" in json.dumps(parameter.get("decorators")) and "generate" in json.dumps(
            parameter.get("decorators")
        )
        assert parameter.get("default") is not None or name in in_file or generated, (
            f"main.bicep parameter {name} has no default, no entry in main.parameters.json and is not generated"
        )


@pytest.mark.parametrize("path", bicep_files(), ids=relative)
def test_secret_parameters_are_secure_and_have_no_default(path: Path) -> None:
    for name, parameter in parameters(bicep_tree(path)).items():
        if "secure" in decorator_types(parameter):
            assert parameter.get("default") is None, f"{relative(path)}: secure parameter {name} has a default"
        elif SECRET_LIKE_NAME.search(name) and not name.endswith(("Uri", "Name", "Names")):
            pytest.fail(f"{relative(path)}: parameter {name} looks like a secret but is not @secure()")


def test_main_composes_every_module_and_passes_exactly_their_parameters() -> None:
    modules = bicep_tree(MAIN).get("modules") or {}
    composed = {(INFRA / module["detail"]["path"]).resolve() for module in modules.values()}
    on_disk = {path.resolve() for path in (INFRA / "modules").glob("*.bicep")}
    assert composed == on_disk, f"modules not composed by main.bicep: {sorted(map(str, on_disk - composed))}"
    for symbol, module in modules.items():
        module_parameters = parameters(bicep_tree(INFRA / module["detail"]["path"]))
        passed = set(module["config"].get("params") or {})
        required = {name for name, parameter in module_parameters.items() if parameter.get("default") is None}
        unknown = sorted(passed - set(module_parameters))
        assert not unknown, f"module {symbol}: unknown parameters {unknown}"
        assert required <= passed, f"module {symbol}: required parameters not passed {sorted(required - passed)}"


def test_resource_names_come_from_one_naming_convention() -> None:
    text = MAIN.read_text()
    assert "uniqueString(subscription().id, environmentName, location)" in text
    for symbol, module in (bicep_tree(MAIN).get("modules") or {}).items():
        for key, value in (module["config"].get("params") or {}).items():
            if key == "name" or (key.endswith("Name") and isinstance(value, str) and "${" in value):
                assert re.fullmatch(r"\$\{abbreviations\.\w+\}\$\{resourceToken\}", str(value)), (
                    f"module {symbol}: {key} = {value!r} does not follow abbreviation + resourceToken"
                )


def test_app_settings_are_exactly_the_ones_the_code_reads() -> None:
    in_bicep = set(app_settings_resource())
    expected = (set(SETTING_DESCRIPTIONS) - NOT_SET_IN_AZURE) | HOST_SETTINGS
    assert NOT_SET_IN_AZURE <= set(SETTING_DESCRIPTIONS), "NOT_SET_IN_AZURE names a setting the app no longer reads"
    missing, extra = sorted(expected - in_bicep), sorted(in_bicep - expected)
    assert not missing and not extra, (
        f"functionapp.bicep app settings differ from shared/settings.py: missing {missing}, "
        f"not read by the app nor in the host allow-list {extra}"
    )


def test_app_settings_are_set_in_one_place_only() -> None:
    for path in bicep_files():
        text = path.read_text()
        assert "appSettings: [" not in text and "appSettings:[" not in text, (
            f"{relative(path)} sets siteConfig.appSettings; set app settings in functionapp.bicep's appsettings only"
        )
        if path != FUNCTION_APP:
            assert "'appsettings'" not in text, f"{relative(path)} writes app settings"


def test_secrets_reach_the_app_as_key_vault_references() -> None:
    settings = app_settings_resource()
    for name in SECRET_SETTINGS:
        assert str(settings[name]).startswith("@Microsoft.KeyVault(SecretUri="), f"{name} must be a Key Vault reference"


def test_storage_takes_entra_id_only() -> None:
    accounts = resources_of_type(bicep_tree(INFRA / "modules" / "storage.bicep"), "Microsoft.Storage/storageAccounts")
    (account,) = accounts.values()
    properties = account["config"]["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"


def test_key_vault_is_rbac_only_and_recoverable() -> None:
    vaults = resources_of_type(bicep_tree(INFRA / "modules" / "keyvault.bicep"), "Microsoft.KeyVault/vaults")
    (vault,) = vaults.values()
    properties = vault["config"]["properties"]
    assert properties["enableRbacAuthorization"] is True
    assert properties["enableSoftDelete"] is True
    assert properties["enablePurgeProtection"] is True


def test_identity_gets_only_the_data_roles_it_needs() -> None:
    guid = re.compile(r"'([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})'")
    role_ids = {role_id for path in bicep_files() for role_id in guid.findall(path.read_text())}
    assert role_ids == set(ROLE_NAMES), f"unexpected role definitions: {sorted(role_ids - set(ROLE_NAMES))}"


def test_function_app_runs_python_311_on_flex_consumption() -> None:
    tree = bicep_tree(FUNCTION_APP)
    (plan,) = resources_of_type(tree, "Microsoft.Web/serverfarms").values()
    assert plan["config"]["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    (site,) = resources_of_type(tree, "Microsoft.Web/sites").values()
    assert site["config"]["identity"]["type"] == "SystemAssigned"
    function_app_config = site["config"]["properties"]["functionAppConfig"]
    assert function_app_config["runtime"] == {"name": "python", "version": "3.11"}
    assert function_app_config["deployment"]["storage"]["authentication"]["type"] == "SystemAssignedIdentity"
