"""azure.yaml, the postdeploy hook and docs/deploy.md agree with infra/.

azd finds each service's resource by its `azd-service-name` tag and hands the hook the
outputs of main.bicep as environment variables; a name that drifts breaks `azd up`
only in Azure, so it is checked here.
"""

from __future__ import annotations

import json
import re
import subprocess

import yaml

from shared.settings import SETTING_DESCRIPTIONS
from tests.infra.support import INFRA, REPO, bicep_tree, parameters
from tests.infra.test_storage_roles import EXPECTED_GRANTS

AZURE_YAML = yaml.safe_load((REPO / "azure.yaml").read_text())
HOOK = INFRA / "hooks" / "postdeploy.sh"
BLOB_EVENTS = INFRA / "hooks" / "blob-events.bicep"
# Set by azd itself for every hook, not by main.bicep's outputs.
AZD_BUILT_IN = {"AZURE_SUBSCRIPTION_ID", "AZURE_ENV_NAME"}


def test_services_are_the_function_app_and_the_static_web_app() -> None:
    services = AZURE_YAML["services"]
    assert services["api"] == {"project": ".", "language": "python", "host": "function", "remoteBuild": True}
    assert services["web"]["project"] == "web" and services["web"]["host"] == "staticwebapp"
    assert (REPO / services["web"]["project"] / "staticwebapp.config.json").is_file()
    assert AZURE_YAML["infra"]["path"] == "infra"
    assert (REPO / "infra" / f"{AZURE_YAML['infra']['module']}.bicep").is_file()


def test_every_service_has_a_tagged_resource() -> None:
    tagged = set()
    for path in (INFRA / "modules").glob("*.bicep"):
        tagged |= set(re.findall(r"'azd-service-name':\s*'([\w-]+)'", path.read_text()))
    assert tagged == set(AZURE_YAML["services"])


def test_postdeploy_hook_is_a_valid_script() -> None:
    hook = AZURE_YAML["hooks"]["postdeploy"]["posix"]
    assert (REPO / hook["run"]) == HOOK and hook["shell"] == "sh"
    completed = subprocess.run(["sh", "-n", str(HOOK)], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr


def test_hook_uses_only_variables_azd_provides() -> None:
    outputs = set(bicep_tree(INFRA / "main.bicep").get("outputs") or {})
    required = set(re.findall(r'\$\{(\w+):\?', HOOK.read_text()))
    assert required, "the hook should name the azd environment values it needs"
    assert required - AZD_BUILT_IN <= outputs, f"not outputs of main.bicep: {sorted(required - AZD_BUILT_IN - outputs)}"


def test_hook_passes_exactly_the_parameters_of_the_subscription_template() -> None:
    declared = parameters(bicep_tree(BLOB_EVENTS))
    passed = set(re.findall(r"^\s+(\w+)=\"\$", HOOK.read_text(), re.MULTILINE))
    required = {name for name, parameter in declared.items() if parameter.get("default") is None}
    assert required <= passed <= set(declared), f"passed {sorted(passed)}, declared {sorted(declared)}"


def test_deploy_guide_lists_every_setting() -> None:
    guide = (REPO / "docs" / "deploy.md").read_text()
    missing = [name for name in SETTING_DESCRIPTIONS if f"`{name}`" not in guide]
    assert not missing, f"docs/deploy.md's settings table lacks {missing}"


def test_deploy_guide_reads_only_values_the_azd_environment_has() -> None:
    # `azd env get-value X` in the guide must be an output of main.bicep, a value azd sets
    # itself, or one the guide has the reader set; otherwise the command prints nothing.
    guide = (REPO / "docs" / "deploy.md").read_text()
    outputs = set(bicep_tree(INFRA / "main.bicep").get("outputs") or {})
    set_by_reader = set(re.findall(r"azd env set ([A-Z][A-Z0-9_]*)", guide))
    read = set(re.findall(r"azd env get-value ([A-Z][A-Z0-9_]*)", guide))
    unknown = read - outputs - set_by_reader - AZD_BUILT_IN
    assert not unknown, f"docs/deploy.md reads azd values nothing sets: {sorted(unknown)}"


def test_deploy_guide_role_table_names_every_granted_role() -> None:
    guide = (REPO / "docs" / "deploy.md").read_text()
    section = guide[guide.index("## Roles of the app's identity"):]
    section = section[: section.index("\n## ", 1)]
    for role in set().union(*EXPECTED_GRANTS.values()):
        assert f"| {role} |" in section, f"the role table in docs/deploy.md lacks {role}"


def test_deploy_guide_has_the_bypass_check_and_the_bookings_settings() -> None:
    guide = (REPO / "docs" / "deploy.md").read_text()
    assert re.search(r'curl [^\n]*-H "X-MS-CLIENT-PRINCIPAL: \$FORGED" "\$FUNC/api/', guide)
    assert "# 401" in guide
    in_parameters_file = json.dumps(json.loads((INFRA / "main.parameters.json").read_text()))
    for name in ("BOOKINGS_CLIENT_APP_IDS", "ENTRA_TENANT_ID"):
        assert f"${{{name}=" in in_parameters_file
        assert f"azd env set {name}" in guide
