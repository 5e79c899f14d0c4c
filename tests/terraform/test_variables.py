"""Terraform itself enforces the variable validations: what the settings refuse, plan refuses.

A configuration holding only variables.tf needs no provider, so `terraform init` and
`terraform plan` run offline; plan evaluates every validation rule. Skipped only when the
terraform binary is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.terraform import rules
from tests.terraform.configuration import TERRAFORM, load_code, load_configuration

TERRAFORM_BINARY = shutil.which("terraform")
pytestmark = pytest.mark.skipif(
    TERRAFORM_BINARY is None, reason="the terraform binary is not installed"
)

REQUIRED = {
    "project_id": "my-analytics-project",
    "gtm_server_service_account_email": "gtm-server@my-analytics-project.iam.gserviceaccount.com",
    "ga4_measurement_id": "G-ABCDE12345",
}
ENVIRONMENT = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}


def _ranges() -> dict[str, tuple[str, Any, Any, Any]]:
    """Terraform variable -> (reader, low, high, step) for each ranged setting."""
    code = load_code()
    ranges = {}
    for setting, variable in rules.setting_variables(load_configuration()).items():
        read = code.settings_reads.get(setting)
        if read is not None and read.reader in {"integer", "number"}:
            _, low, high = read.arguments
            step = 1 if read.reader == "integer" else low / 2
            ranges[variable] = (read.reader, low, high, step)
    return ranges


RANGES = _ranges()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("variables")
    shutil.copy(TERRAFORM / "variables.tf", directory / "variables.tf")
    _terraform(directory, "init", "-input=false", "-backend=false", check=True)
    return directory


def _terraform(
    directory: Path, *arguments: str, check: bool = False
) -> subprocess.CompletedProcess[str]:
    assert TERRAFORM_BINARY is not None
    return subprocess.run(
        [TERRAFORM_BINARY, *arguments, "-no-color"],
        cwd=directory,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
        env=ENVIRONMENT,
    )


def plan(directory: Path, **values: Any) -> subprocess.CompletedProcess[str]:
    (directory / "values.tfvars.json").write_text(json.dumps({**REQUIRED, **values}))
    return _terraform(directory, "plan", "-input=false", "-var-file=values.tfvars.json")


def test_required_variables_alone_are_enough(workspace: Path) -> None:
    """With only the three required variables, every default passes its own validation."""
    result = plan(workspace)
    assert result.returncode == 0, result.stderr


def test_the_settings_bounds_are_accepted(workspace: Path) -> None:
    """Each ranged setting's lowest and highest value passes plan."""
    assert RANGES, "found no ranged setting set from a variable"
    for bound in (1, 2):
        values = {variable: spec[bound] for variable, spec in RANGES.items()}
        result = plan(workspace, **values)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("variable", sorted(RANGES))
def test_values_outside_the_settings_range_are_refused(workspace: Path, variable: str) -> None:
    """Just below the settings' low bound and just above their high bound, plan fails."""
    _, low, high, step = RANGES[variable]
    for value in (low - step, high + step):
        result = plan(workspace, **{variable: value})
        assert result.returncode != 0, f"{variable}={value} was accepted"
        assert f"var.{variable}" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("max_delivery_attempts", 4),
        ("max_delivery_attempts", 101),
        ("ack_deadline_seconds", 601),
        ("topic_message_retention", "599s"),
        ("subscription_message_retention", "8d"),
        ("inline_invoker_members", ["allUsers"]),
        ("resolve_function", {"concurrency": 80, "cpu": "0.583"}),
        ("forward_function", {"min_instances": 5, "max_instances": 2}),
        ("ga4_measurement_id", "UA-12345-1"),
        ("gtm_server_service_account_email", "someone@example.com"),
        ("ip_mode", "anonymize"),
        ("log_level", "TRACE"),
        ("notification_channel_ids", ["12345"]),
        ("firestore_unindexed_fields", {"clients": ["expire_at"]}),
    ],
)
def test_invalid_values_are_refused(workspace: Path, variable: str, value: Any) -> None:
    """Values the pipeline or Google Cloud would refuse later are refused at plan time."""
    result = plan(workspace, **{variable: value})
    assert result.returncode != 0, f"{variable}={value!r} was accepted"
    assert f"var.{variable}" in result.stderr


def test_documented_example_values_are_accepted(workspace: Path) -> None:
    """The values shown in terraform.tfvars.example pass every validation."""
    example = TERRAFORM / "terraform.tfvars.example"
    shutil.copy(example, workspace / "example.auto.tfvars")
    try:
        result = _terraform(workspace, "plan", "-input=false")
    finally:
        (workspace / "example.auto.tfvars").unlink()
    assert result.returncode == 0, result.stderr
