"""The `raypriv` command line, driven in-process (click's runner) and once as the installed script."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from raypriv.cli import cli
from raypriv.method.models import list_models


def test_installed_script_lists_commands():
    # The script pip installed beside this interpreter (the venv need not be activated).
    exe = shutil.which("raypriv", path=str(Path(sys.executable).parent))
    assert exe, "the raypriv console script is not installed (pip install -e .)"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    assert "data" in out and "models" in out


def test_data_summarises_the_synthetic_set_and_writes_a_contact_sheet(tmp_path):
    sheet = tmp_path / "sheet.png"
    result = CliRunner().invoke(cli, ["data", "sbu", "--synthetic", "--preset", "tiny", "--out", str(sheet)])
    assert result.exit_code == 0, result.output
    for split in ("train", "val", "test"):
        assert f"{split:5s}   104 clips of [3, 8, 16, 16]; 8 actions x 13-13 clips, 13 identities x 8-8 clips" in result.output
    with Image.open(sheet) as image:  # 8 actions as rows, 6 frames as columns, zoom 3
        assert image.size == (6 * 16 * 3, 8 * 16 * 3)


def test_data_without_synthetic_and_without_data_suggests_synthetic(tmp_path, monkeypatch):
    monkeypatch.delenv("RAYPRIV_SBU_ROOT", raising=False)
    missing = tmp_path / "nowhere"
    result = CliRunner().invoke(cli, ["data", "sbu", "--root", str(missing)])
    assert result.exit_code != 0
    assert str(missing) in result.output and "--synthetic" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("role", ["degrader", "target", "budget"])
def test_models_lists_every_registered_model_of_a_role(role):
    result = CliRunner().invoke(cli, ["models", "--role", role, "--preset", "tiny"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[1:]}
    specs = list_models(role)
    assert set(rows) == {spec.name for spec in specs}
    for spec in specs:
        name, row_role, family, params = rows[spec.name][:4]
        assert (row_role, family) == (role, spec.family)
        assert int(params.replace(",", "")) > 0


def test_bad_option_values_name_the_option():
    result = CliRunner().invoke(cli, ["data", "sbu", "--synthetic", "--preset", "huge"])
    assert result.exit_code == 2 and "--preset" in result.output
