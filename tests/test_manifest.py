"""data/MANIFEST.md lists every trained file this repository ships, with its sha256."""

import hashlib
import json
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


def make_target_commands(target: str) -> list[str]:
    """The training commands of a Makefile target, as ``python scripts/...`` lines (continuations joined)."""
    makefile = (DATA.parent / "Makefile").read_text().replace("\\\n", " ")
    body = makefile.split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
    return [
        "python " + " ".join(line.split("$(BIN)/python", 1)[1].split())
        for line in body.splitlines()
        if "$(BIN)/python scripts/" in line
    ]


def test_make_targets_rerun_the_recorded_recipes():
    # The JSON beside each shipped model records the command that trained it; `make backbones` and
    # `make explainers` promise to retrain the same models, so they must run those commands.
    for target in ("backbones", "explainers"):  # each target retrains the models of the data/ folder of its name
        recorded = sorted(json.loads(p.read_text())["command"] for p in (DATA / target).glob("*.json"))
        assert sorted(make_target_commands(target)) == recorded, f"`make {target}` differs from data/{target}/*.json"
