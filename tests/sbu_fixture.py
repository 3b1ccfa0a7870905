"""A tiny SBU Kinect Interaction tree (see `raypriv.method.data.sbu`) for tests of loading and S3 sync.

Every frame is one flat colour: red encodes the pair folder, green the frame number and blue the
action, so a test can read back which frame landed where after resizing.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

FRAME_SIZE = (20, 16)  # (width, height) as PIL spells it

# (pair folder, action folder, sequence folder, number of frames). Identity 0 has sequences in
# both s01s02 and s02s01; identities 0, 1 and 12 have >= 3 sequences, so they reach every split.
DEFAULT_SEQUENCES = (
    ("s01s02", "01", "001", 10),
    ("s01s02", "01", "002", 3),
    ("s01s02", "05", "001", 6),
    ("s02s01", "08", "001", 5),
    ("s01s03", "02", "001", 4),
    ("s01s03", "02", "002", 7),
    ("s01s03", "03", "001", 9),
    ("s04s06", "06", "001", 3),
    ("s04s06", "06", "002", 8),
    ("s04s06", "07", "001", 4),
)
PAIR_RED = {"s01s02": 40, "s02s01": 80, "s01s03": 120, "s04s06": 200}
IDENTITY = {"s01s02": 0, "s02s01": 0, "s01s03": 1, "s04s06": 12}


def frame_colour(pair: str, action: str, frame: int) -> tuple[int, int, int]:
    """The RGB colour of frame number `frame` (1-based) of a sequence."""
    return PAIR_RED[pair], 10 * frame, 25 * int(action)


def write_sbu_fixture(root: Path, sequences=DEFAULT_SEQUENCES) -> dict[str, tuple[int, int, int]]:
    """Write the tree under `root`; returns {"s01s02/01/001": (action, identity, n_frames), ...}."""
    written = {}
    for pair, action, sequence, n_frames in sequences:
        folder = root / pair / action / sequence
        folder.mkdir(parents=True, exist_ok=True)
        for frame in range(1, n_frames + 1):
            colour = frame_colour(pair, action, frame)
            Image.new("RGB", FRAME_SIZE, colour).save(folder / f"rgb_{frame:06d}.png")
        # Siblings the loader must ignore.
        Image.new("I;16", FRAME_SIZE, 1234).save(folder / "depth_000001.png")
        (folder / "skeleton_pos.txt").write_text("1,0.5,0.5,2.0\n")
        written[f"{pair}/{action}/{sequence}"] = (int(action) - 1, IDENTITY[pair], n_frames)
    return written
