"""terraform/ is formatted as `terraform fmt` writes it (runs offline, needs no providers)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.terraform.configuration import TERRAFORM

TERRAFORM_BINARY = shutil.which("terraform")


@pytest.mark.skipif(TERRAFORM_BINARY is None, reason="the terraform binary is not installed")
def test_configuration_is_formatted() -> None:
    """`terraform fmt -check -recursive` finds nothing to rewrite."""
    assert TERRAFORM_BINARY is not None
    result = subprocess.run(
        [TERRAFORM_BINARY, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(TERRAFORM_BINARY is None, reason="the terraform binary is not installed")
def test_fmt_check_fails_on_a_misformatted_file(tmp_path: Path) -> None:
    """The check is real: a badly indented file makes `terraform fmt -check` fail."""
    assert TERRAFORM_BINARY is not None
    (tmp_path / "bad.tf").write_text('locals {\nx    =   "y"\n}\n', encoding="utf-8")
    result = subprocess.run(
        [TERRAFORM_BINARY, "fmt", "-check", "-recursive", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "CHECKPOINT_DISABLE": "1"},
    )
    assert result.returncode != 0
