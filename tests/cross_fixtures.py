"""Tiny UCF-101 and VISPR folders in their official layouts, written by the tests themselves: .avi
videos encoded with PyAV (the decoder raypriv reads them with), JPEG images and JSON annotations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

UCF_CLASSES = ("ApplyEyeMakeup", "Basketball", "YoYo")
UCF_FRAMES = 20  # frames per fixture video; frame i is a flat grey of level GREY_STEP * i
GREY_STEP = 12


def write_avi(path: Path, frames: int = UCF_FRAMES, size: tuple[int, int] = (24, 32), tint: int = 0) -> None:
    """An MPEG-4 .avi whose frame i is a flat grey of level GREY_STEP * i (+ `tint` on red)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            pixels = np.full((*size, 3), GREY_STEP * i, np.uint8)
            pixels[..., 0] = np.clip(int(GREY_STEP * i) + tint, 0, 255)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_ucf101(root: Path, *, train_groups=(8, 9, 10, 11), test_groups=(1, 2), clips: int = 2,
                 videos_folder: bool = True) -> Path:
    """ROOT/ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt and ROOT/UCF-101/CLASS/*.avi."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    videos = root / "UCF-101" if videos_folder else root
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(UCF_CLASSES, 1)))
    train, test = [], []
    for index, name in enumerate(UCF_CLASSES, 1):
        for groups, out, labelled in ((train_groups, train, True), (test_groups, test, False)):
            for group in groups:
                for clip in range(1, clips + 1):
                    file = f"{name}/v_{name}_g{group:02d}_c{clip:02d}.avi"
                    write_avi(videos / file, tint=20 * index)
                    out.append(f"{file} {index}" if labelled else file)
    (lists / "trainlist01.txt").write_text("\r\n".join(train) + "\r\n")  # the official lists end lines with CRLF
    (lists / "testlist01.txt").write_text("\r\n".join(test) + "\r\n")
    return root


# (image id, split folder, labels): covers every VISPR-7 attribute, one outside VISPR-17, one
# image whose only label is outside both subsets
VISPR_ITEMS = (
    ("2017_00000001", "train2017", ["a0_safe"]),
    ("2017_00000002", "train2017", ["a4_gender", "a9_face_complete", "a12_semi_nudity"]),
    ("2017_00000003", "train2017", ["a59_sports", "a64_rel_personal", "a65_rel_social"]),
    ("2017_00000004", "train2017", ["a46_occupation", "a58_hobbies", "a17_color"]),
    ("2017_00000005", "train2017", ["a82_date_time"]),
    ("2017_00000006", "val2017", ["a0_safe"]),
    ("2017_00000007", "val2017", ["a12_semi_nudity", "a6_hair_color"]),
    ("2017_00000008", "test2017", ["a9_face_complete", "a59_sports"]),
    ("2017_00000009", "test2017", ["a0_safe"]),
)


def write_vispr(root: Path, items=VISPR_ITEMS, *, with_image_path: bool = True) -> Path:
    """ROOT/annotations/SPLIT/ID.json and ROOT/images/SPLIT/ID.jpg."""
    for n, (image_id, folder, labels) in enumerate(items):
        image = root / "images" / folder / f"{image_id}.jpg"
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((30, 40, 3), 20 * n, np.uint8)).save(image)
        annotation = {"id": image_id, "labels": labels}
        if with_image_path:
            annotation["image_path"] = f"images/{folder}/{image_id}.jpg"
        path = root / "annotations" / folder / f"{image_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(annotation))
    return root
