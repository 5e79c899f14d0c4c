"""Terraform's own evaluation of the archive listing: main.py, requirements and all of shared/.

source.tf's locals use no provider, so `terraform console` evaluates them offline against a
copy of the repository layout with a bytecode cache and a hidden file planted in shared/.
Skipped only when the terraform binary is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.terraform import rules
from tests.terraform.configuration import REPO, TERRAFORM, load_configuration

TERRAFORM_BINARY = shutil.which("terraform")


def _locals_block(text: str) -> str:
    start = text.index("locals {")
    return text[start : text.index("\n}\n", start) + 3]


@pytest.mark.skipif(TERRAFORM_BINARY is None, reason="the terraform binary is not installed")
def test_terraform_zips_main_requirements_and_every_shared_module(tmp_path: Path) -> None:
    """The archive holds exactly main.py, requirements.txt and shared/, minus caches."""
    assert TERRAFORM_BINARY is not None
    (tmp_path / "functions").mkdir()
    shutil.copy(REPO / "functions" / "main.py", tmp_path / "functions" / "main.py")
    shutil.copy(REPO / "requirements.txt", tmp_path / "requirements.txt")
    shutil.copytree(
        REPO / "shared", tmp_path / "shared", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tmp_path / "shared" / "__pycache__").mkdir()
    (tmp_path / "shared" / "__pycache__" / "settings.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "shared" / ".DS_Store").write_bytes(b"\0")
    module = tmp_path / "terraform"
    module.mkdir()
    source = (TERRAFORM / "source.tf").read_text(encoding="utf-8")
    (module / "archive.tf").write_text(_locals_block(source), encoding="utf-8")
    environment = {**os.environ, "CHECKPOINT_DISABLE": "1"}
    subprocess.run(
        [TERRAFORM_BINARY, "init", "-input=false", "-backend=false"],
        cwd=module,
        capture_output=True,
        check=True,
        timeout=120,
        env=environment,
    )
    result = subprocess.run(
        [TERRAFORM_BINARY, "console"],
        cwd=module,
        input="jsonencode(keys(local.archive_files))\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=environment,
    )
    listed = set(json.loads(json.loads(result.stdout.strip())))
    config = load_configuration()
    expected = rules.archive_listing(
        config.locals["archive_single_files"], config.locals["archive_packages"], REPO
    )
    assert {"main.py", "requirements.txt", "shared/__init__.py", "shared/settings.py"} <= listed
    assert listed == set(expected)
