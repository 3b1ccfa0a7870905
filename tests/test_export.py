"""Tests of what leaves training: the f_d program a camera loads, weight files, sample figures."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from raypriv.method.export import export_degrader, load_degrader, load_weights, save_samples, save_weights
from raypriv.method.models import create_model

# Frame sizes unlike the export example (2 × 32×32): another batch, non-square, odd sides
# (not multiples of 4, which f_d's crop makes the hard case for torch.export), batch 1.
CAMERA_SHAPES = [(3, 3, 20, 28), (1, 3, 48, 48), (2, 3, 13, 21)]

# Runs on the "camera": loads the program with torch alone and writes f_d's outputs.
# It is started with `python -I -S`. -I alone is not enough: it drops PYTHONPATH, the user site
# and the working directory, but still processes the venv's .pth files, and raypriv's editable
# install is such a file, so `import raypriv` would work. -S skips site-packages altogether;
# the script then puts back only the directory torch was installed into, passed in argv, which
# brings torch and its own dependencies but no editable-install hook. So the assertion that
# raypriv cannot be found is a real one, and the final check shows loading did not import it.
CAMERA_SCRIPT = textwrap.dedent(
    """
    import importlib.util
    import sys

    site_packages, program_path, inputs_path, outputs_path = sys.argv[1:]
    sys.path.append(site_packages)
    assert importlib.util.find_spec("raypriv") is None, "raypriv is importable: the check proves nothing"
    try:
        import raypriv
    except ImportError:
        pass
    else:
        raise AssertionError("import raypriv succeeded")

    import torch

    torch.set_num_threads(1)
    degrader = torch.export.load(program_path).module()
    inputs = torch.load(inputs_path, weights_only=True)
    outputs = [degrader(frames) for frames in inputs]
    torch.save(outputs, outputs_path)
    assert not [name for name in sys.modules if name.split(".")[0] == "raypriv"], "loading imported raypriv"
    """
)


def _degrader(name: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("degrader", name).eval()


@pytest.mark.parametrize("name", ["degrader_tiny", "degrader_mono", "degrader_lite_bin"])
def test_exported_degrader_runs_with_torch_alone_on_other_frame_sizes(tmp_path: Path, name: str) -> None:
    degrader = _degrader(name, seed=0)
    before = {key: value.clone() for key, value in degrader.state_dict().items()}
    program = export_degrader(degrader, tmp_path / "degrader.pt2", height=32, width=32)
    assert program == tmp_path / "degrader.pt2" and program.is_file()
    assert degrader.training is False and all(torch.equal(v, before[k]) for k, v in degrader.state_dict().items())

    generator = torch.Generator().manual_seed(1)
    inputs = [torch.rand(shape, generator=generator) for shape in CAMERA_SHAPES]
    torch.save(inputs, tmp_path / "inputs.pt")
    script = tmp_path / "camera.py"
    script.write_text(CAMERA_SCRIPT)
    site_packages = Path(torch.__file__).resolve().parents[1]
    completed = subprocess.run(
        [sys.executable, "-I", "-S", str(script), str(site_packages), str(program),
         str(tmp_path / "inputs.pt"), str(tmp_path / "outputs.pt")],
        cwd=tmp_path,  # outside the repository, so the checkout is not on the path either
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

    outputs = torch.load(tmp_path / "outputs.pt", weights_only=True)
    channels = degrader.out_channels
    with torch.no_grad():
        for frames, output in zip(inputs, outputs):
            assert output.shape == (frames.shape[0], channels, *frames.shape[-2:])
            torch.testing.assert_close(output, degrader(frames), atol=1e-5, rtol=1e-4)


def test_load_degrader_matches_module_in_process(tmp_path: Path) -> None:
    degrader = _degrader("degrader_tiny", seed=2)
    loaded = load_degrader(export_degrader(degrader, tmp_path / "f_d.pt2", height=16, width=24))
    frames = torch.rand(1, 3, 9, 31, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(loaded(frames), degrader(frames), atol=1e-5, rtol=1e-4)


def test_load_degrader_names_a_missing_or_corrupt_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "degrader.pt2"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_degrader(missing)
    corrupt = tmp_path / "corrupt.pt2"
    corrupt.write_bytes(b"not a pt2 archive")
    with pytest.raises(RuntimeError, match=str(corrupt)):
        load_degrader(corrupt)


def test_export_rejects_frames_smaller_than_the_degrader_allows(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 8"):
        export_degrader(_degrader("degrader_tiny", seed=0), tmp_path / "d.pt2", height=4, width=32)


def _modules(seed: int) -> dict[str, nn.Module]:
    torch.manual_seed(seed)
    return {
        "degrader": create_model("degrader", "degrader_tiny"),
        "target": nn.Sequential(nn.Conv3d(3, 4, 3), nn.BatchNorm3d(4)),  # has buffers too
        "budget.0": nn.Linear(5, 2),
        "budget.1": nn.Linear(5, 2),
    }


def _states(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    return {f"{name}.{key}": value for name, module in modules.items() for key, value in module.state_dict().items()}


def test_weights_round_trip(tmp_path: Path) -> None:
    saved = _modules(seed=0)
    saved["target"][1].running_mean.add_(0.5)  # a buffer that differs from a fresh module's
    save_weights(tmp_path / "weights.safetensors", saved)
    loaded = _modules(seed=1)
    assert not torch.equal(loaded["budget.0"].weight, saved["budget.0"].weight)
    load_weights(tmp_path / "weights.safetensors", loaded)
    expected, actual = _states(saved), _states(loaded)
    assert expected.keys() == actual.keys()
    for key, value in expected.items():
        assert torch.equal(actual[key], value), key


def test_weights_with_tied_tensors_round_trip(tmp_path: Path) -> None:
    tied = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    tied[1].weight = tied[0].weight  # shared storage, which safetensors refuses unless copied
    save_weights(tmp_path / "tied.safetensors", {"degrader": tied})
    fresh = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    load_weights(tmp_path / "tied.safetensors", {"degrader": fresh})
    assert torch.equal(fresh[0].weight, tied[0].weight) and torch.equal(fresh[1].weight, tied[0].weight)


def test_weights_mismatch_names_the_keys(tmp_path: Path) -> None:
    save_weights(tmp_path / "weights.safetensors", {"degrader": nn.Linear(5, 2), "budget.0": nn.Linear(5, 2)})
    other = {"degrader": nn.Linear(5, 2, bias=False), "target": nn.Linear(5, 2)}
    before = other["degrader"].weight.clone()
    with pytest.raises(ValueError) as error:
        load_weights(tmp_path / "weights.safetensors", other)
    message = str(error.value)
    assert "missing: target.bias, target.weight" in message
    assert "unexpected: budget.0.bias, budget.0.weight, degrader.bias" in message
    assert torch.equal(other["degrader"].weight, before)  # nothing loaded when anything is wrong

    with pytest.raises(ValueError, match=r"wrong shape: .*degrader\.weight \(file \[2, 5\], module \[3, 5\]\)"):
        load_weights(tmp_path / "weights.safetensors", {"degrader": nn.Linear(5, 3), "budget.0": nn.Linear(5, 2)})


def test_weights_reject_names_that_prefix_each_other(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="prefix"):
        save_weights(tmp_path / "w.safetensors", {"budget": nn.Linear(2, 2), "budget.0": nn.Linear(2, 2)})


def test_load_weights_names_a_missing_or_corrupt_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="absent.safetensors"):
        load_weights(tmp_path / "absent.safetensors", {"degrader": nn.Linear(2, 2)})
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 3)
    with pytest.raises(ValueError, match="corrupt.safetensors"):
        load_weights(corrupt, {"degrader": nn.Linear(2, 2)})


@pytest.mark.parametrize("channels", [3, 1])
def test_save_samples_writes_a_png_of_the_expected_size(tmp_path: Path, channels: int) -> None:
    generator = torch.Generator().manual_seed(0)
    raw = torch.rand(5, 3, 6, 12, 10, generator=generator)
    degraded = torch.rand(5, channels, 6, 12, 10, generator=generator) * 1.4 - 0.2  # out of [0, 1] on purpose
    path = tmp_path / "figures" / "samples.png"
    save_samples(raw, degraded, path, clips=4, frames=3)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        assert image.size == (2 * 3 * 10 + 4, 4 * 12 + 3 * 4)  # (width, height) with 4-px gaps
        pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)
    # First clip, first frame: raw on the left, degraded right after the gap, clamped.
    expected_raw = (raw[0, :, 0] * 255).round().to(torch.uint8)
    expected_degraded = (degraded[0, :, 0].clamp(0, 1) * 255).round().to(torch.uint8).expand(3, -1, -1)
    assert torch.equal(pixels[:, :12, :10], expected_raw)
    assert torch.equal(pixels[:, :12, 34:44], expected_degraded)


def test_save_samples_caps_clips_and_frames_and_enlarges_low_resolution(tmp_path: Path) -> None:
    raw = torch.rand(2, 3, 2, 8, 8)
    low_resolution = torch.rand(2, 1, 2, 2, 2)  # e.g. a 4x downsampling baseline
    save_samples(raw, low_resolution, tmp_path / "small.png", clips=4, frames=4, gap=0)
    with Image.open(tmp_path / "small.png") as image:
        assert image.size == (2 * 2 * 8, 2 * 8)
        pixels = np.asarray(image)
    block = pixels[:4, 16:20, 0]  # first degraded frame's top-left source pixel, enlarged 4x
    assert (block == block[0, 0]).all()
