"""Rebuild data/stamps, data/backgrounds and data/MANIFEST.csv from Debian packages.

    python scripts/fetch_assets.py            # needs apt-get (Debian/Ubuntu) and dpkg

Reproducible: downloads the pinned package versions with ``apt-get download``, unpacks them
with ``dpkg -x`` into a temporary folder, and selects:

* **stamps**: photographic cut-outs with an alpha channel from ``tuxpaint-stamps-default``
  (GPL-2), grouped into classes by their folder. Clip art is rejected by a flatness test: a
  drawing has large areas where a pixel equals all four neighbours, a photograph almost
  none. Stamps are resized to at most 192 px on their longer side.
* **photos**: every other photographic stamp of ``tuxpaint-stamps-default`` (any folder, same
  flatness test and size), grouped by their top-level folder. They widen the real-photo pool
  that trains the EfficientNet-Lite0 explainer (``ttame_lib.world.photo_pool``); the composite
  scenes use only the 12 classes under ``stamps/``.
* **backgrounds**: the photographic (JPEG) backgrounds of ``scratch`` (CC-BY-SA-3.0),
  copied unchanged.

Every committed file is listed in data/MANIFEST.csv with its source package and version,
original path, license and sha256; the packages' copyright files go to data/licenses/.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
PACKAGES = {"tuxpaint-stamps-default": "2022.06.04-1", "scratch": "1.4.0.6~dfsg1-6.1"}
LICENSES = {"tuxpaint-stamps-default": "GPL-2.0-or-later", "scratch": "CC-BY-SA-3.0"}
STAMP_ROOT = "usr/share/tuxpaint/stamps"
BACKGROUND_ROOT = "usr/share/scratch/Media/Backgrounds"
MAX_STAMP_SIDE = 192
MAX_FLATNESS = 0.05
MIN_OPAQUE_PIXELS = 500
MANIFEST_COLUMNS = ["file", "source_package", "package_version", "original_path", "license", "original_sha256"]
MANIFEST_COLUMNS += ["sha256"]

# class -> stamp folders (relative to STAMP_ROOT); every class has at least 8 photographic instances.
CLASSES: dict[str, tuple[str, ...]] = {
    "bird": ("animals/birds",),
    "bovine": ("animals/mammals/bovines",),
    "fish": ("animals/fish",),
    "flower": ("plants/flowers",),
    "fruit": ("food/fruit", "food/nuts"),
    "insect": ("animals/insects",),
    "instrument": ("hobbies/music/string", "hobbies/music/percussion", "hobbies/music/brass", "hobbies/music/wind"),
    "planet": ("space/planets", "space/moon"),
    "rodent": ("animals/mammals/rodents",),
    "tool": ("household/tools", "household/arttools"),
    "vegetable": ("food/vegetables", "food/spices"),
    "vehicle": (
        "vehicles",
        "vehicles/auto",
        "vehicles/ship",
        "vehicles/race",
        "vehicles/emergency",
        "vehicles/construction",
        "vehicles/flight",
        "vehicles/flight/planes",
        "vehicles/masstransit",
        "vehicles/cycle",
        "military/vehicles",
    ),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flatness(rgba: np.ndarray) -> float:
    """Share of opaque interior pixels whose colour equals all four neighbours (drawings: high)."""
    rgb = rgba[..., :3].astype(np.int32)
    opaque = rgba[..., 3] > 200
    inner = opaque[1:-1, 1:-1] & opaque[:-2, 1:-1] & opaque[2:, 1:-1] & opaque[1:-1, :-2] & opaque[1:-1, 2:]
    centre = rgb[1:-1, 1:-1]
    same = np.ones(centre.shape[:2], dtype=bool)
    for neighbour in (rgb[:-2, 1:-1], rgb[2:, 1:-1], rgb[1:-1, :-2], rgb[1:-1, 2:]):
        same &= np.all(centre == neighbour, axis=-1)
    return float((same & inner).sum() / max(int(inner.sum()), 1))


def unpack(workdir: Path) -> dict[str, Path]:
    roots = {}
    for package, version in PACKAGES.items():
        subprocess.run(["apt-get", "download", f"{package}={version}"], cwd=workdir, check=True)
        deb = next(workdir.glob(f"{package}_*.deb"))
        roots[package] = workdir / package
        subprocess.run(["dpkg", "-x", str(deb), str(roots[package])], check=True)
    return roots


def is_photographic(png: Path) -> bool:
    """A cut-out photograph with enough opaque pixels (not clip art, not tuxpaint's pre-flipped copies)."""
    if png.stem.endswith(("_mirror", "_flip")):
        return False  # tuxpaint's pre-flipped variants: the datasets flip on their own
    rgba = np.asarray(Image.open(png).convert("RGBA"))
    return (rgba[..., 3] > 128).sum() >= MIN_OPAQUE_PIXELS and flatness(rgba) < MAX_FLATNESS


def select_stamps(root: Path) -> list[tuple[str, Path]]:
    chosen = []
    for name, folders in CLASSES.items():
        for folder in folders:
            chosen.extend(
                (name, png) for png in sorted((root / STAMP_ROOT / folder).glob("*.png")) if is_photographic(png)
            )
    return chosen


def select_photos(root: Path, taken: set[Path]) -> list[tuple[str, Path]]:
    """Every photographic stamp not already used as a scene class, as (target path under photos/, source).

    Targets keep the top-level folder and flatten the rest into the name, since names repeat
    across sub-folders (animals/mammals/lion.png, animals/.../lion.png).
    """
    stamps = root / STAMP_ROOT
    chosen = []
    for png in sorted(stamps.rglob("*.png")):
        if png not in taken and is_photographic(png):
            parts = png.relative_to(stamps).parts
            chosen.append((f"{parts[0]}/{'__'.join(parts[1:])}", png))
    return chosen


def save_stamp(png: Path, target: Path) -> None:
    image = Image.open(png).convert("RGBA")
    image.thumbnail((MAX_STAMP_SIDE, MAX_STAMP_SIDE), Image.Resampling.LANCZOS)
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target, optimize=True)


def main() -> int:
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        print("this script needs apt-get and dpkg (Debian or Ubuntu)", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        roots = unpack(Path(tmp))
        for sub in ("stamps", "photos", "backgrounds", "licenses"):
            shutil.rmtree(DATA / sub, ignore_errors=True)
            (DATA / sub).mkdir(parents=True)
        stamp_pkg = "tuxpaint-stamps-default"
        scene_stamps = select_stamps(roots[stamp_pkg])
        photos = select_photos(roots[stamp_pkg], {png for _, png in scene_stamps})
        targets = [(DATA / "stamps" / name / png.name, png) for name, png in scene_stamps]
        targets += [(DATA / "photos" / name, png) for name, png in photos]
        for target, png in targets:
            save_stamp(png, target)
            rows.append((target, stamp_pkg, "/" + str(png.relative_to(roots[stamp_pkg])), sha256(png)))
        bg_pkg = "scratch"
        for jpg in sorted((roots[bg_pkg] / BACKGROUND_ROOT).glob("*/*.jpg")):
            target = DATA / "backgrounds" / f"{jpg.parent.name.lower()}-{jpg.name}"
            shutil.copyfile(jpg, target)
            rows.append((target, bg_pkg, "/" + str(jpg.relative_to(roots[bg_pkg])), sha256(jpg)))
        for package, root in roots.items():
            shutil.copyfile(root / f"usr/share/doc/{package}/copyright", DATA / "licenses" / f"{package}.copyright")
        gpl = Path("/usr/share/common-licenses/GPL-2")
        if gpl.is_file():
            shutil.copyfile(gpl, DATA / "licenses" / "GPL-2")
    with open(DATA / "MANIFEST.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_COLUMNS)
        for target, package, original, original_sha in rows:
            writer.writerow(
                [
                    str(target.relative_to(DATA)),
                    package,
                    PACKAGES[package],
                    original,
                    LICENSES[package],
                    original_sha,
                    sha256(target),
                ]
            )
    stamps = sum(1 for r in rows if str(r[0].relative_to(DATA)).startswith("stamps/"))
    photos = sum(1 for r in rows if str(r[0].relative_to(DATA)).startswith("photos/"))
    backgrounds = len(rows) - stamps - photos
    print(f"wrote {stamps} stamps ({len(CLASSES)} classes), {photos} other photos, {backgrounds} backgrounds to {DATA}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
