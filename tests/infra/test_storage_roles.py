"""What the Function App's identity may do in storage, read from the Bicep (roles.bicep, main.bicep).

The host and the app's code share one managed identity, so the split is by account: the
Functions host's own account (AzureWebJobsStorage) gets the account-wide roles Microsoft
documents for host storage; the app's data account gets Table Data Contributor on the
account (the app creates its tables at run time) and, for blobs and queues, roles on each
container and queue only, which the Bicep therefore creates.
https://learn.microsoft.com/azure/azure-functions/functions-reference#connecting-to-host-storage-with-an-identity
"""

from __future__ import annotations

import re
from typing import Any

from tests.infra.support import INFRA, REPO, ROLE_NAMES, bicep_tree, resources_of_type

MAIN = INFRA / "main.bicep"
ROLES = INFRA / "modules" / "roles.bicep"
ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments"


# Every grant, by the scope it is made on (the `existing` resource symbol in roles.bicep).
EXPECTED_GRANTS = {
    "hostStorage": {"Storage Blob Data Owner", "Storage Queue Data Contributor", "Storage Table Data Contributor"},
    "dataStorage": {"Storage Table Data Contributor"},
    "dataContainers[]": {"Storage Blob Data Contributor"},
    "readWriteQueues[]": {"Storage Queue Data Contributor"},
    "sendOnlyQueues[]": {"Storage Queue Data Message Sender"},
    "secrets[]": {"Key Vault Secrets User"},
    "applicationInsights": {"Monitoring Metrics Publisher"},
}


def roles_tree() -> dict[str, Any]:
    return bicep_tree(ROLES)


def variable_values(tree: dict[str, Any]) -> dict[str, Any]:
    return {name: variable["value"] for name, variable in (tree.get("variables") or {}).items()}


def scope_symbol(scope: Any) -> str:
    """`hostStorage`, or `dataContainers[]` for `dataContainers[index]`."""
    if isinstance(scope, str):
        return scope
    operator = scope["operator"]
    assert operator["type"] == "index_accessor", f"unexpected role scope {scope!r}"
    return f"{operator['operands']['operand_1']}[]"


def role_variables_of(assignment: dict[str, Any]) -> list[str]:
    """The role variables one role-assignment resource grants (a loop may grant several)."""
    config = assignment["config"]
    inner = config.get("config", config)
    role = inner["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
    loop = config.get("loop_type") or {}
    if loop.get("type") == "array" and loop["detail"]["item_name"] == role:
        return list(loop["detail"]["array_name"])
    return [role]


def granted_roles() -> dict[str, set[str]]:
    tree = roles_tree()
    guids = variable_values(tree)
    grants: dict[str, set[str]] = {}
    for assignment in resources_of_type(tree, ROLE_ASSIGNMENT).values():
        config = assignment["config"]
        inner = config.get("config", config)
        names = {ROLE_NAMES[guids[variable]] for variable in role_variables_of(assignment)}
        grants.setdefault(scope_symbol(inner["scope"]), set()).update(names)
    return grants


def resolve(value: str, variables: dict[str, Any], parameters: dict[str, Any]) -> str:
    """A main.bicep name: a variable or parameter (default) holding a string, or `${...}` built from them."""
    if value in variables:
        return resolve(variables[value], variables, parameters)
    if value in parameters:
        return resolve(parameters[value]["default"], variables, parameters)
    return re.sub(r"\$\{(\w+)\}", lambda match: resolve(match.group(1), variables, parameters), value)


def main_module_params(symbol: str) -> dict[str, Any]:
    return bicep_tree(MAIN)["modules"][symbol]["config"]["params"]


def resolved_main_names(names: list[str]) -> list[str]:
    tree = bicep_tree(MAIN)
    return [resolve(name, variable_values(tree), tree["parameters"]) for name in names]


def app_source_uses(literal: str) -> bool:
    """Whether the app's code (shared/, blueprints/) names this container or queue."""
    quoted = (f'"{literal}"', f"'{literal}'")
    for folder in ("shared", "blueprints"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text()
            if any(q in text for q in quoted):
                return True
    return False


def test_every_grant_is_the_expected_role_on_the_expected_scope() -> None:
    assert granted_roles() == EXPECTED_GRANTS


def test_the_data_account_gets_no_account_wide_blob_or_queue_role() -> None:
    # Blob and queue roles on the data account go to each container and queue only; an
    # account-wide one would reach every container (the host's too, were it there).
    on_data_account = granted_roles()["dataStorage"]
    assert not {role for role in on_data_account if role.startswith(("Storage Blob", "Storage Queue"))}


def test_container_and_queue_scopes_are_children_of_the_data_account() -> None:
    existing = {
        symbol: resource
        for symbol, resource in roles_tree()["resources"].items()
        if resource["existing"]
    }

    def parent(symbol: str) -> str | None:
        config = existing[symbol]["config"]
        return config.get("config", config).get("parent")

    for symbol in ("dataContainers", "readWriteQueues", "sendOnlyQueues"):
        service = parent(symbol)
        assert service in {"dataBlobService", "dataQueueService"}, f"{symbol} is under {service}"
        assert parent(service) == "dataStorage", f"{symbol} is not in the data account"


def module_of_output(value: Any) -> str:
    """`hostStorage` for the expression `hostStorage.outputs.name`."""
    return value["operator"]["operands"]["operand_1"]


def test_the_host_and_the_app_use_different_accounts() -> None:
    function_app = main_module_params("functionApp")
    roles = main_module_params("roles")
    for params in (function_app, roles):
        assert module_of_output(params["hostStorageAccountName"]) == "hostStorage"
        assert module_of_output(params["dataStorageAccountName"]) == "storage"
    assert function_app["deploymentContainerUrl"].startswith("${hostStorage.outputs.blobEndpoint}")
    settings_text = (INFRA / "modules" / "functionapp.bicep").read_text()
    assert re.search(r"AzureWebJobsStorage__accountName:\s*hostStorageAccountName\b", settings_text)
    assert re.search(r"DataStorage__accountName:\s*dataStorageAccountName\b", settings_text)


def test_every_container_and_queue_granted_is_created_in_the_data_account() -> None:
    storage = main_module_params("storage")
    roles = main_module_params("roles")
    assert set(roles["dataContainerNames"]) == set(storage["containerNames"])
    assert set(roles["readWriteQueueNames"]) | set(roles["sendOnlyQueueNames"]) == set(storage["queueNames"])
    assert not set(roles["readWriteQueueNames"]) & set(roles["sendOnlyQueueNames"])


def test_the_data_account_holds_the_apps_containers_and_queues() -> None:
    storage = main_module_params("storage")
    roles = main_module_params("roles")
    assert sorted(resolved_main_names(storage["containerNames"])) == ["calendar-uploads", "import-reports"]
    assert resolved_main_names(roles["readWriteQueueNames"]) == ["calendar-changes"]
    # The host's names for poison messages: `<queue>-poison`, and the blob trigger's own.
    assert sorted(resolved_main_names(roles["sendOnlyQueueNames"])) == [
        "calendar-changes-poison",
        "webjobs-blobtrigger-poison",
    ]


def test_the_app_still_uses_the_names_the_bicep_creates() -> None:
    # If the app renames a container or queue, the Bicep must follow, or the app gets 403.
    for name in ("calendar-uploads", "import-reports", "calendar-changes"):
        assert app_source_uses(name), f"no code in shared/ or blueprints/ names {name!r} any more"


def test_the_host_account_holds_only_the_deployment_package() -> None:
    host = main_module_params("hostStorage")
    assert resolved_main_names(host["containerNames"]) == ["app-package"]
    assert host["queueNames"] == []
