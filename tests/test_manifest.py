"""data/MANIFEST.md lists every trained file this repository ships, with its sha256."""

import hashlib
import re
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
ROW = re.compile(r"^\| `((?:backbones|explainers)/[^`]+)` \|.*\| `([0-9a-f]{64})` \|$")


def trained_rows() -> dict[str, str]:
    rows = {}
    for line in (DATA / "MANIFEST.md").read_text().splitlines():
        match = ROW.match(line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def test_every_trained_file_is_listed_with_its_sha256():
    rows = trained_rows()
    shipped = {
        str(p.relative_to(DATA)) for folder in ("backbones", "explainers") for p in (DATA / folder).iterdir()
        if p.suffix in (".pth", ".ttame")
    }  # fmt: skip
    assert set(rows) == shipped, f"not in MANIFEST.md: {shipped - set(rows)}; listed but missing: {set(rows) - shipped}"
    for name, digest in rows.items():
        actual = hashlib.sha256((DATA / name).read_bytes()).hexdigest()
        assert actual == digest, f"{name}: sha256 {actual} does not match MANIFEST.md ({digest}); update the manifest"
