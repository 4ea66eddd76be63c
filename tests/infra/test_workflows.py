"""The GitHub workflows agree with the repository: `make test` on the Python and Node it needs, and an azd deployment
that signs in with OpenID Connect, stores no secret and passes every value the Bicep parameters read."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
VENV_BIN = Path(sys.executable).parent
# Azurite 3.35 is the last to run on Node 20 (package.json); the Makefile asks for Node 20+.
NODE_MAJOR = "20"
# What `azd pipeline config` stores as repository variables to sign in, and to pick the azd environment.
AZD_SIGN_IN = frozenset({"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID"})
AZD_ENVIRONMENT = frozenset({"AZURE_ENV_NAME", "AZURE_LOCATION"})
# azd substitutes these in main.parameters.json itself, with the signed-in identity, whatever the environment says.
AZD_RESOLVES_ITSELF = frozenset({"AZURE_PRINCIPAL_ID", "AZURE_PRINCIPAL_TYPE"})
# `${NAME}` or `${NAME=default}` in main.parameters.json.
AZD_REFERENCE = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+)(?:=(?P<default>[^}]*))?\}$")
# `${{ vars.NAME }}` or `${{ vars.NAME || 'default' }}` in a workflow's env.
FROM_VARS = re.compile(r"^\$\{\{ vars\.(?P<name>[A-Z0-9_]+)(?: \|\| '(?P<default>[^']*)')? \}\}$")
# owner/repo@vN: a major version tag, so fixes arrive and breaking changes do not.
MAJOR_PIN = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+@v\d+$")


def workflow(name: str) -> dict[str, Any]:
    """One workflow as data; YAML 1.1 reads the key `on` as True, so it is put back under "on"."""
    data: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in data:
        data["on"] = data.pop(True)
    return data


def steps(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every step of every job, in order."""
    return [step for job in data["jobs"].values() for step in job["steps"]]


def step_using(data: dict[str, Any], action: str) -> dict[str, Any]:
    """The one step that uses `action` (any version)."""
    found = [step for step in steps(data) if step.get("uses", "").split("@")[0] == action]
    assert len(found) == 1, f"expected one step using {action}, found {len(found)}"
    return found[0]


def run_lines(data: dict[str, Any]) -> list[str]:
    """Every command of every `run:` step, continuation lines joined."""
    scripts = [step["run"].replace("\\\n", " ") for step in steps(data) if "run" in step]
    return [" ".join(line.split()) for script in scripts for line in script.splitlines() if line.strip()]


def test_the_test_workflow_runs_make_test_on_every_push_and_pull_request() -> None:
    """test.yml runs `make test` with CI set, on Ubuntu, for every push and pull request."""
    data = workflow("test.yml")
    assert {"push", "pull_request"} <= set(data["on"])
    (job,) = data["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    assert str(job["env"]["CI"]).lower() == "true"
    assert "make test" in run_lines(data)


def test_the_test_workflow_uses_the_python_and_node_the_repo_needs() -> None:
    """setup-python gives the Makefile's PYTHON (inside requires-python) and setup-node the Node Azurite runs on."""
    data = workflow("test.yml")
    python = str(step_using(data, "actions/setup-python")["with"]["python-version"])
    makefile_python = re.search(r"^PYTHON \?= python(\d+\.\d+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert makefile_python is not None
    assert python == makefile_python[1]
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains(f"{python}.0")
    assert str(step_using(data, "actions/setup-node")["with"]["node-version"]) == NODE_MAJOR
    assert f"Node {NODE_MAJOR}" in json.loads((REPO / "package.json").read_text())["description"]


def test_the_deploy_workflow_signs_in_with_openid_connect() -> None:
    """azure-dev.yml may mint an OIDC token, reads the repo only, and hands azd the federated credential."""
    data = workflow("azure-dev.yml")
    assert data["permissions"] == {"id-token": "write", "contents": "read"}
    assert "workflow_dispatch" in data["on"]
    assert data["on"]["push"]["branches"] == ["main"]
    (job,) = data["jobs"].values()
    for name in AZD_SIGN_IN | AZD_ENVIRONMENT:
        assert job["env"][name] == f"${{{{ vars.{name} }}}}"
    lines = run_lines(data)
    login = next(line for line in lines if line.startswith("azd auth login"))
    assert '--client-id "$AZURE_CLIENT_ID"' in login
    assert '--tenant-id "$AZURE_TENANT_ID"' in login
    assert "--federated-credential-provider github" in login
    assert "--client-secret" not in login
    azd = [line for line in lines if line.startswith("azd ")]
    assert azd == [login, "azd provision --no-prompt", "azd deploy --no-prompt"]


@pytest.mark.parametrize("name", ["test.yml", "azure-dev.yml"])
def test_no_workflow_reads_a_stored_secret(name: str) -> None:
    """Nothing refers to `secrets.` at all: the deployment needs none, and the tests run without any."""
    assert "secrets." not in (WORKFLOWS / name).read_text()


def test_the_deploy_workflow_passes_every_value_the_bicep_parameters_read() -> None:
    """Each `${NAME=default}` in main.parameters.json comes from `vars.NAME`, falling back to that same default."""
    parameters = json.loads((REPO / "infra" / "main.parameters.json").read_text())["parameters"]
    wanted: dict[str, str | None] = {}
    for parameter in parameters.values():
        reference = AZD_REFERENCE.match(parameter["value"])
        assert reference is not None, parameter
        if reference["name"] not in AZD_RESOLVES_ITSELF:
            wanted[reference["name"]] = reference["default"]
    (job,) = workflow("azure-dev.yml")["jobs"].values()
    passed: dict[str, str | None] = {}
    for name, value in job["env"].items():
        source = FROM_VARS.match(value)
        assert source is not None, f"{name}: {value}"
        assert source["name"] == name
        passed[name] = source["default"]
    assert set(wanted) <= set(passed)
    assert {name: passed[name] for name in wanted} == wanted
    # Nothing else: a name the Bicep no longer reads would be a setting that silently does nothing.
    assert set(passed) - set(wanted) == AZD_SIGN_IN


@pytest.mark.parametrize("name", ["test.yml", "azure-dev.yml"])
def test_every_action_is_pinned_to_a_major_version(name: str) -> None:
    """Each `uses:` names owner/repo@vN: never a branch, never unpinned."""
    uses = [step["uses"] for step in steps(workflow(name)) if "uses" in step]
    assert uses
    assert [ref for ref in uses if not MAJOR_PIN.match(ref)] == []


def test_actionlint_passes_on_the_workflows() -> None:
    """actionlint (as `make lint` runs it, with the venv's shellcheck) reports nothing."""
    result = subprocess.run(
        [VENV_BIN / "actionlint", f"-shellcheck={VENV_BIN / 'shellcheck'}", "-pyflakes=", "-no-color"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "$(VENV)/bin/actionlint -shellcheck=$(VENV)/bin/shellcheck -pyflakes=" in (REPO / "Makefile").read_text()
