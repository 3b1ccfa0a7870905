"""VISPR (Orekondy et al., 2017): images annotated with privacy attributes, the privacy set of the
paper's second setting (Wu et al. section 4.2 and appendix C.1), as one-frame clips with multi-hot labels.

Expected layout (what VISPR's image and annotation archives unpack to):

    ROOT/
      annotations/
        train2017/2017_10001018.json   {"id": "2017_10001018", "image_path": "images/train2017/2017_10001018.jpg",
        val2017/ ...                    "labels": ["a4_gender", "a9_face_complete", ...]}
        test2017/ ...
      images/
        train2017/2017_10001018.jpg    (where `image_path`, relative to ROOT, points; else
        ...                             images/SPLIT/ID.jpg)

ROOT is the `root` argument, else `$RAYPRIV_VISPR_ROOT`; a local folder or `s3://bucket/prefix`,
possibly holding the layout in a `vispr/` folder (a root shared with UCF-101).

Labels: `subset` picks the attributes: `vispr17`, the 17 that occur most in UCF-101 (appendix C.1),
`vispr7`, the 7 of them that fit a smart home, or `all` 68 of VISPR. Every label of an annotation
must be one of VISPR's 68 attribute ids (an unknown id is an error naming the file); labels outside
the subset are ignored, and an image with none of the subset's attributes is left out ("the 17
attributes and their associated images"). `a0_safe` (nothing private) belongs to both subsets.
The text of appendix C.1 lists six attributes for VISPR-7; the seventh, `a0_safe`, is the one
the authors' code adds (`legacy/visualization/adversarial_comp.ipynb` of
VITA-Group/Privacy-AdversarialLearning).

Splits: VISPR's own train2017 / val2017 / test2017. Images are resized (bilinear, antialiased)
to `preset.height x preset.width` and become clips of one frame, `[3, 1, H, W]`.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from raypriv.method.data.presets import Preset, get_preset
from raypriv.method.data.roots import resolve_root
from raypriv.method.data.transforms import resize_frames
from raypriv.method.data.types import SPLITS, Sample

ROOT_ENV = "RAYPRIV_VISPR_ROOT"
SPLIT_FOLDERS = {"train": "train2017", "val": "val2017", "test": "test2017"}
_LAYOUT = "ROOT/annotations/{train2017,val2017,test2017}/ID.json and ROOT/images/SPLIT/ID.jpg (see raypriv.method.data.vispr)"
_READ_THREADS = min(4, os.cpu_count() or 1)

# VISPR's 68 privacy attributes, in its own order (attributes.tsv of the data set).
VISPR_ATTRIBUTES = (
    "a0_safe", "a1_age_approx", "a2_weight_approx", "a3_height_approx", "a4_gender", "a5_eye_color",
    "a6_hair_color", "a7_fingerprint", "a8_signature", "a9_face_complete", "a10_face_partial", "a11_tattoo",
    "a12_semi_nudity", "a13_full_nudity", "a16_race", "a17_color", "a18_ethnic_clothing", "a19_name_full",
    "a20_name_first", "a21_name_last", "a23_birth_city", "a24_birth_date", "a25_nationality", "a26_handwriting",
    "a27_marital_status", "a29_ausweis", "a30_credit_card", "a31_passport", "a32_drivers_license", "a33_student_id",
    "a35_mail", "a37_receipt", "a38_ticket", "a39_disability_physical", "a41_injury", "a43_medicine",
    "a46_occupation", "a48_occassion_work", "a49_phone", "a55_religion", "a56_sexual_orientation", "a57_culture",
    "a58_hobbies", "a59_sports", "a60_occassion_personal", "a61_opinion_general", "a62_opinion_political",
    "a70_education_history", "a99_legal_involvement", "a64_rel_personal", "a65_rel_social", "a66_rel_professional",
    "a67_rel_competitors", "a68_rel_spectators", "a69_rel_views", "a73_landmark", "a74_address_current_complete",
    "a75_address_current_partial", "a78_address_home_complete", "a79_address_home_partial", "a82_date_time",
    "a85_username", "a90_email", "a92_email_content", "a97_online_conversation", "a102_vehicle_ownership",
    "a103_license_plate_complete", "a104_license_plate_partial",
)
# Appendix C.1 of Wu et al.: age, weight, height, gender, eye colour, hair colour, complete and
# partial face, semi-nudity, race, (skin) colour, occupation, hobbies, sports, personal and social
# relationship, safe.
VISPR17 = (
    "a0_safe", "a1_age_approx", "a2_weight_approx", "a3_height_approx", "a4_gender", "a5_eye_color",
    "a6_hair_color", "a9_face_complete", "a10_face_partial", "a12_semi_nudity", "a16_race", "a17_color",
    "a46_occupation", "a58_hobbies", "a59_sports", "a64_rel_personal", "a65_rel_social",
)
VISPR7 = ("a0_safe", "a12_semi_nudity", "a46_occupation", "a58_hobbies", "a59_sports", "a64_rel_personal",
          "a65_rel_social")
SUBSETS = {"vispr17": VISPR17, "vispr7": VISPR7, "all": VISPR_ATTRIBUTES}


@dataclass(frozen=True)
class VISPRImage:
    annotation: Path
    image: Path
    labels: frozenset[str]


class VISPR(Dataset):
    """VISPR images of one split as one-frame clips with multi-hot `attributes` (float32 `[N, K]`).

    Reads and checks every annotation at construction; decodes images in `__getitem__`, or all at
    once in `tensors()` (kept in memory as uint8).
    """

    def __init__(self, split: str, *, preset: str | Preset = "laptop", root: str | Path | None = None,
                 subset: str = "vispr17") -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        if subset not in SUBSETS:
            raise ValueError(f"unknown VISPR subset {subset!r}; choose one of {', '.join(SUBSETS)}")
        self.split, self.subset, self.preset = split, subset, get_preset(preset)
        self.root = resolve_root(root, env=ROOT_ENV, name="VISPR", layout=_LAYOUT, subfolder="vispr")
        self.attribute_names = SUBSETS[subset]
        self.num_attributes = len(self.attribute_names)
        wanted = set(self.attribute_names)
        self.images = [image for image in _read_annotations(self.root, SPLIT_FOLDERS[split]) if image.labels & wanted]
        if not self.images:
            raise ValueError(f"split {split!r} of VISPR in {self.root} has no image with an attribute of {subset}")
        self.attributes = torch.tensor([[name in image.labels for name in self.attribute_names] for image in self.images],
                                       dtype=torch.float32)
        self._clips: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Sample:
        clip = self._clips[index] if self._clips is not None else self._read(self.images[index])
        return Sample(clip=clip.float().div_(255), action=-1, identity=-1, attributes=self.attributes[index])

    def tensors(self) -> tuple[torch.Tensor]:
        """The whole split as uint8 one-frame clips `[N, 3, 1, H, W]`."""
        if self._clips is None:
            with ThreadPoolExecutor(_READ_THREADS) as pool:
                self._clips = torch.stack(list(pool.map(self._read, self.images)))
        return (self._clips,)

    def _read(self, image: VISPRImage) -> torch.Tensor:
        try:
            with Image.open(image.image) as opened:
                pixels = np.array(opened.convert("RGB"))
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot read image {image.image} of {image.annotation} ({err})") from err
        frame = torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255)
        frame = resize_frames(frame[None], (self.preset.height, self.preset.width))[0].clamp_(0, 1)
        return (frame * 255).round_().to(torch.uint8).unsqueeze(1)

    def __repr__(self) -> str:
        return (f"VISPR(split={self.split!r}, subset={self.subset!r}, root={str(self.root)!r}, images={len(self)}, "
                f"preset={self.preset.name!r})")


def _read_annotations(root: Path, folder: str) -> list[VISPRImage]:
    """Every annotation of one split folder, its labels checked against VISPR's 68 attribute ids."""
    annotations = root / "annotations" / folder
    if not annotations.is_dir():
        raise FileNotFoundError(f"VISPR annotation folder {annotations} does not exist; expected {_LAYOUT}")
    known = set(VISPR_ATTRIBUTES)
    images = []
    for path in sorted(annotations.glob("*.json")):
        try:
            annotation = json.loads(path.read_text())
            labels = annotation["labels"]
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"VISPR annotation {path} is not JSON with a 'labels' list ({err!r})") from None
        if not isinstance(labels, list):
            raise ValueError(f"VISPR annotation {path}: 'labels' must be a list of attribute ids, got {labels!r}")
        unknown = sorted(set(map(str, labels)) - known)
        if unknown:
            raise ValueError(f"VISPR annotation {path} has unknown attribute(s) {unknown}; VISPR's attribute ids "
                             "are a0_safe ... a104_license_plate_partial (raypriv.method.data.vispr.VISPR_ATTRIBUTES)")
        image = root / annotation["image_path"] if annotation.get("image_path") else \
            root / "images" / folder / f"{path.stem}.jpg"
        if not image.is_file():
            raise FileNotFoundError(f"VISPR annotation {path}: image {image} does not exist")
        images.append(VISPRImage(path, image, frozenset(labels)))
    return images
