"""What leaves training: the camera-side f_d program, the weights of every model, sample figures.

- `export_degrader` / `load_degrader`: f_d's per-frame function as a `torch.export` program
  (`degrader.pt2`). A camera needs nothing but torch to run it: the graph holds aten operators
  only, no raypriv classes (and TorchScript, the old route, is deprecated in torch 2.14).
  `load_degrader` checks a file against what `export_degrader` writes before torch reads it, since
  `torch.export.load` of a crafted archive runs arbitrary code.
- `save_weights` / `load_weights`: the state dicts of f_d, f_T and the budget models f_b in one
  safetensors file, so checkpoints load without unpickling.
- `save_samples`: original frames beside f_d(X), as in the paper's Fig. 4/5.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import tokenize
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.export import Dim

# Dynamic ranges of the exported program. H, W ≥ 8 is Degrader's own limit (two stride-2
# convolutions and 9×9 kernels); 4096 covers any camera frame and keeps sizes finite for export.
MIN_SIDE, MAX_SIDE = 8, 4096
MAX_BATCH = 4096
_EXAMPLE_BATCH = 2  # export specialises sizes 0 and 1, so the example batch must be ≥ 2
# A second, differently shaped input on which the exported program must match eager f_d.
# Odd sides and batch 1 are the cases a silently specialised program gets wrong.
_PROBE_SHAPE = (1, 3, 13, 11)
_WEIGHTS_METADATA_KEY = "raypriv.modules"


def export_degrader(degrader: nn.Module, path: Path, *, height: int, width: int) -> Path:
    """Export f_d's per-frame function to `path` (conventionally `degrader.pt2`) and return it.

    The program maps float32 frames `[N, 3, H, W]` in [0, 1] to `[N, C, H, W]` (C = 3, or 1 for
    a mono f_d), for any 1 ≤ N ≤ 4096 and 8 ≤ H, W ≤ 4096; clips are degraded by folding T into
    N, exactly as f_d does. `height` × `width` is only the tracing example. Load it with
    `torch.export.load(path).module()` (or `load_degrader`); it runs on the CPU.

    The caller's module is left untouched: a deep copy is exported, in eval mode, on the CPU.
    Raises `RuntimeError` if the exported program disagrees with the eager module on a frame
    size other than the example, rather than writing a program that fails on the camera.
    """
    if height < MIN_SIDE or width < MIN_SIDE:
        raise ValueError(f"example frames must be at least {MIN_SIDE}×{MIN_SIDE}, got {height}×{width}")
    path = Path(path)
    module = copy.deepcopy(degrader).to("cpu").eval()
    # A private generator: exporting must not move the caller's global RNG.
    example = torch.rand(_EXAMPLE_BATCH, 3, height, width, generator=torch.Generator().manual_seed(0))
    dynamic_shapes = (
        {
            0: Dim("batch", min=1, max=MAX_BATCH),
            2: Dim("height", min=MIN_SIDE, max=MAX_SIDE),
            3: Dim("width", min=MIN_SIDE, max=MAX_SIDE),
        },
    )
    with _size_oblivious_tracing():
        program = torch.export.export(module, (example,), dynamic_shapes=dynamic_shapes)
    _check_matches_eager(module, program.module())
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, path)
    return path


@contextlib.contextmanager
def _size_oblivious_tracing() -> Iterator[None]:
    # f_d crops its up-sampled map back to H×W (`x[..., :H, :W]`). Tracing asks whether that
    # crop is a no-op, i.e. whether 4·ceil(H/4) == H, which symbolic reasoning cannot settle for
    # a dynamic H: with plain Dims export rejects the 8..4096 range (it proposes H = 4·k), and
    # with Dim.AUTO/DYNAMIC it answers from the example and bakes in a runtime check, so the
    # program fails on every side that is not (or, from an odd example, is) a multiple of 4.
    # Size-oblivious reasoning answers such questions for the general case instead, so every
    # H, W ≥ 8 works. The torch.export tutorial documents this switch as experimental; a torch
    # without it traces as usual, and `_check_matches_eager` refuses a program that does not
    # generalise.
    import torch.fx.experimental._config as config  # private module: import it by name

    if not hasattr(config, "backed_size_oblivious"):
        yield
        return
    with config.patch(backed_size_oblivious=True):
        yield


def _check_matches_eager(module: nn.Module, exported: nn.Module) -> None:
    frames = torch.rand(_PROBE_SHAPE, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            torch.testing.assert_close(exported(frames), module(frames), atol=1e-5, rtol=1e-4)
    except Exception as error:
        raise RuntimeError(
            f"the exported degrader does not reproduce the module on frames of shape {list(_PROBE_SHAPE)}; "
            f"it is not safe to ship: {error}"
        ) from error


def load_degrader(path: Path) -> nn.Module:
    """Load an exported f_d (`export_degrader`): a module mapping `[N, 3, H, W]` -> `[N, C, H, W]`.

    Raises `RuntimeError` naming the path for anything `export_degrader` would not have written,
    before torch unpickles or evaluates any of it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no exported degrader at {path}")
    data = path.read_bytes()  # checked and loaded from the same bytes
    _check_program_archive(data, path)
    try:
        program = torch.export.load(io.BytesIO(data))
    except Exception as error:
        raise RuntimeError(f"{path} is not a readable torch.export program (corrupt or not a .pt2): "
                           f"{_first_line(error)}") from error
    # Guard code that `.module()` generates is built from the user inputs' metadata: one frame tensor.
    user_inputs = [node for node in program.graph.nodes
                   if node.op == "placeholder" and node.name in program.graph_signature.user_inputs]
    if len(user_inputs) != 1 or not isinstance(user_inputs[0].meta.get("val"), torch.Tensor) \
            or program.call_spec.in_spec != torch.utils._pytree.tree_structure(((torch.empty(0),), {})):
        raise RuntimeError(f"{path} is an exported program but not a degrader: it must take one argument, a tensor "
                           f"of frames [N, 3, H, W] (it takes {len(user_inputs)} inputs)")
    return program.module()


# What `torch.export.save` writes for one program named "model" holding plain tensors, under one
# top-level folder. Anything else (pickled weights or constants, torchbind or opaque objects,
# AOTInductor libraries, legacy formats) is refused rather than handed to torch.
_ARCHIVE_MEMBERS = re.compile(
    r"archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id|models/model\.json"
    r"|data/weights/model_weights_config\.json|data/weights/weight_\d+"
    r"|data/constants/model_constants_config\.json|data/constants/tensor_\d+|data/sample_inputs/model\.pt"
)
_REQUIRED_MEMBERS = ("archive_format", "models/model.json", "data/weights/model_weights_config.json",
                     "data/constants/model_constants_config.json", "data/sample_inputs/model.pt")


def _check_program_archive(data: bytes, path: Path) -> None:
    """Refuse a .pt2 that torch would run code from, or that is not shaped like `export_degrader`'s output.

    torch 2.14's `torch.export.load` unpickles the sample inputs (retrying with `weights_only=False`
    when the safe load fails) and every payload its config marks `use_pickle`, evaluates each
    symbolic shape expression with `sympy.sympify` (Python `eval`), and `.module()` `exec`s the
    program's guard code. So: only the members above; no pickled payload; sample inputs that
    load with `weights_only=True`; no guard code; shape expressions made of sympy classes only.
    """

    def refuse(reason: str) -> RuntimeError:
        return RuntimeError(f"{path} is not a degrader exported by raypriv (torch.export .pt2): {reason}; "
                            "refusing to load it")

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise refuse("not a zip archive") from None
    if len(set(names)) != len(names):  # which copy torch would read is not ours to guess
        raise refuse("it holds a member twice")
    roots = {name.split("/", 1)[0] for name in names}
    if len(roots) != 1 or any("/" not in name for name in names):
        raise refuse(f"expected every member under one top-level folder, found {sorted(roots)[:5]}")
    members = {name.split("/", 1)[1]: name for name in names}
    unexpected = sorted(member for member in members if not _ARCHIVE_MEMBERS.fullmatch(member))
    if unexpected:
        raise refuse(f"unexpected members {unexpected[:5]}")
    missing = [member for member in _REQUIRED_MEMBERS if member not in members]
    if missing:
        raise refuse(f"missing members {missing}")
    try:
        if archive.read(members["archive_format"]) != b"pt2":
            raise refuse("archive_format is not 'pt2'")
        for config in ("data/weights/model_weights_config.json", "data/constants/model_constants_config.json"):
            pickled = sorted(name for name, payload in json.loads(archive.read(members[config]))["config"].items()
                             if payload.get("use_pickle", True))
            if pickled:
                raise refuse(f"{config} stores {pickled[:3]} as pickles")
        try:
            torch.load(io.BytesIO(archive.read(members["data/sample_inputs/model.pt"])), weights_only=True)
        except Exception as error:
            needs = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
            raise refuse("its sample inputs are a pickle that torch.load(weights_only=True) refuses"
                         + (f" (it calls {needs[1]})" if needs else "")) from None
        program = json.loads(archive.read(members["models/model.json"]))
        if program.get("guards_code"):
            raise refuse("it carries guard code, which torch would execute")
        bad = next((e for e in _strings_under(program, "expr_str") if not _is_plain_sympy(e)), None)
        if bad is not None:
            raise refuse(f"shape expression {bad[:80]!r} is not made of sympy classes and numbers")
    except (KeyError, TypeError, AttributeError, UnicodeDecodeError, json.JSONDecodeError,
            zipfile.BadZipFile, OSError) as error:
        raise refuse(f"malformed archive ({type(error).__name__}: {_first_line(error)})") from None


def _strings_under(node, key: str) -> Iterator[str]:
    """Every string stored under `key` anywhere in parsed JSON."""
    if isinstance(node, dict):
        for name, value in node.items():
            if name == key and isinstance(value, str):
                yield value
            else:
                yield from _strings_under(value, key)
    elif isinstance(node, list):
        for value in node:
            yield from _strings_under(value, key)


_PLAIN_STRING = re.compile(r"'[A-Za-z_][A-Za-z0-9_]*'|'[-+0-9.e]+'")


def _is_plain_sympy(expression: str) -> bool:
    """True for a `sympy.srepr`-style expression, e.g. `Add(Symbol('s0', integer=True), Integer(-1))`:
    calls of sympy classes (no builtins such as eval or __import__) on numbers, names and other calls."""
    import sympy
    from torch.utils._sympy import functions

    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(expression).readline))
    except (tokenize.TokenError, SyntaxError):
        return False
    for index, token in enumerate(tokens):
        following = tokens[index + 1].string if index + 1 < len(tokens) else ""
        if token.type in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.NUMBER):
            continue
        if token.type == tokenize.OP and token.string in {"(", ")", ",", "=", "-", "+", "*", "/"}:
            continue
        if token.type == tokenize.STRING and _PLAIN_STRING.fullmatch(token.string):
            continue
        if token.type == tokenize.NAME:
            name = token.string
            if name in ("True", "False") or (following == "=" and re.fullmatch(r"[a-z][a-z_]*", name)):
                continue  # a constant, or a keyword argument such as positive=True
            cls = getattr(functions, name, None) or getattr(sympy, name, None)
            if not name.startswith("_") and isinstance(cls, type) and issubclass(cls, sympy.Basic):
                continue
        return False
    return True


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def save_weights(path: Path, modules: Mapping[str, nn.Module]) -> None:
    """Write the state dicts of `modules` to one safetensors file, each key prefixed `<name>.`.

    Names are how `load_weights` finds each module again, e.g. `{"degrader": f_d, "target": f_T,
    "budget.0": f_b0}`. Tensors are stored contiguous and on the CPU.
    """
    path = Path(path)
    _check_names(modules)
    tensors: dict[str, torch.Tensor] = {}
    seen_storages: set[tuple[str, int]] = set()
    for name, module in modules.items():
        for key, tensor in module.state_dict().items():
            tensor = tensor.detach().to("cpu").contiguous()
            # safetensors refuses tensors that share memory (tied weights, views into one
            # buffer); a copy of each repeat keeps the file self-describing at a small cost.
            storage = (str(tensor.device), tensor.untyped_storage().data_ptr())
            if storage in seen_storages and tensor.numel() > 0:
                tensor = tensor.clone()
            seen_storages.add(storage)
            tensors[f"{name}.{key}"] = tensor
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": "pt", _WEIGHTS_METADATA_KEY: json.dumps(list(modules))})


def load_weights(path: Path, modules: Mapping[str, nn.Module]) -> None:
    """Load a `save_weights` file into `modules` in place; every key and shape must match.

    Raises `ValueError` listing the missing, unexpected and mis-shaped keys (all of them, across
    all modules) before any module is changed.
    """
    path = Path(path)
    _check_names(modules)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    try:
        stored = load_file(str(path), device="cpu")
    except SafetensorError as error:
        raise ValueError(f"{path} is not a readable safetensors file: {error}") from error

    expected = {
        f"{name}.{key}": value for name, module in modules.items() for key, value in module.state_dict().items()
    }
    missing = sorted(expected.keys() - stored.keys())
    unexpected = sorted(stored.keys() - expected.keys())
    mis_shaped = sorted(
        f"{key} (file {list(stored[key].shape)}, module {list(expected[key].shape)})"
        for key in expected.keys() & stored.keys()
        if stored[key].shape != expected[key].shape
    )
    if missing or unexpected or mis_shaped:
        problems = [
            f"{label}: {', '.join(keys)}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mis_shaped))
            if keys
        ]
        raise ValueError(f"weights in {path} do not match the modules {list(modules)}; " + "; ".join(problems))

    for name, module in modules.items():
        prefix = f"{name}."
        module.load_state_dict({key[len(prefix):]: value for key, value in stored.items() if key.startswith(prefix)})


def _check_names(modules: Mapping[str, nn.Module]) -> None:
    names = list(modules)
    if not names:
        raise ValueError("no modules given")
    for name in names:
        if not name or name.startswith(".") or name.endswith("."):
            raise ValueError(f"module name {name!r} cannot be a key prefix")
    # "budget" and "budget.0" would both claim the key "budget.0.weight".
    clashes = [(a, b) for a in names for b in names if a != b and b.startswith(f"{a}.")]
    if clashes:
        raise ValueError(f"module names must not prefix one another: {clashes}")


def save_samples(
    raw: torch.Tensor,
    degraded: torch.Tensor,
    path: Path,
    *,
    clips: int = 4,
    frames: int = 4,
    gap: int = 4,
) -> None:
    """Write a PNG of original frames beside f_d(X) (the paper's Fig. 4/5).

    `raw` is `[B, 3, T, H, W]`, `degraded` `[B, C, T, H', W']` with C = 3 or 1 (shown grey); both
    float, degraded values clamped to [0, 1] and, if H'×W' differs (a downsampling baseline),
    enlarged by nearest neighbour to H×W. One row per clip (the first `clips`): `frames` frames
    spread over T, then the same frames degraded. White gaps of `gap` pixels separate rows and
    the two halves, so the image is `n·H + (n-1)·gap` high and `2·k·W + gap` wide for n clips and
    k frames shown.
    """
    if raw.dim() != 5 or raw.shape[1] != 3:
        raise ValueError(f"raw clips must be [B, 3, T, H, W], got shape {tuple(raw.shape)}")
    if degraded.dim() != 5 or degraded.shape[1] not in (1, 3):
        raise ValueError(f"degraded clips must be [B, 1 or 3, T, H, W], got shape {tuple(degraded.shape)}")
    if degraded.shape[0] != raw.shape[0] or degraded.shape[2] != raw.shape[2]:
        raise ValueError(f"raw {tuple(raw.shape)} and degraded {tuple(degraded.shape)} differ in clips or frames")
    if clips < 1 or frames < 1 or gap < 0:
        raise ValueError(f"need clips ≥ 1, frames ≥ 1, gap ≥ 0; got {clips}, {frames}, {gap}")

    num_clips, num_steps = min(clips, raw.shape[0]), raw.shape[2]
    steps = torch.linspace(0, num_steps - 1, min(frames, num_steps)).round().long().unique()
    height, width = raw.shape[-2:]
    raw = raw[:num_clips, :, steps].detach().float().cpu().clamp(0, 1)
    degraded = degraded[:num_clips, :, steps].detach().float().cpu().clamp(0, 1).expand(-1, 3, -1, -1, -1)
    if degraded.shape[-2:] != raw.shape[-2:]:
        flat = degraded.transpose(1, 2).flatten(0, 1)
        flat = F.interpolate(flat, size=(height, width), mode="nearest")
        degraded = flat.unflatten(0, (num_clips, len(steps))).transpose(1, 2)

    shown = len(steps)
    canvas = torch.ones(3, num_clips * height + (num_clips - 1) * gap, 2 * shown * width + gap)
    for row in range(num_clips):
        top = row * (height + gap)
        for column in range(shown):
            left = column * width
            canvas[:, top : top + height, left : left + width] = raw[row, :, column]
            left += shown * width + gap
            canvas[:, top : top + height, left : left + width] = degraded[row, :, column]
    pixels = (canvas * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(pixels)).save(path)
