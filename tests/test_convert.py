"""Converting the authors' released T-TAME checkpoints (ttame_lib.method.convert).

No network here, so the authors' released files (IDT-ITI/T-TAME, ``checkpoints/*_TTAME.ckpt``,
stored with git-lfs) cannot be fetched. The files below are *synthesised* in the layout their code
writes, read from their source: a PyTorch Lightning checkpoint whose ``state_dict`` holds the
backbone as ``generic.body.*`` and the mechanism as ``generic.attn_mech.{convs,bns,fuser}.*``
(``generic.attn_mech.1.*`` for the ViT, wrapped in ``nn.Sequential``), ``hyper_parameters`` with
``model_name``, ``layers`` and ``attention_version``, and a pickled scheduler object. The weights
are those of a randomly initialised explainer of ours (with randomised BatchNorm statistics),
renamed to their names; converting back must reproduce its maps exactly. That checks our reading
of their names and layout, not a real released file.
"""

from __future__ import annotations

import pytest
import torch

from ttame_lib import TTAME, load_backbone
from ttame_lib.backbones.presets import PAPER_PRESETS
from ttame_lib.errors import CheckpointError
from ttame_lib.method.convert import backbone_differences, convert_authors_checkpoint, split_authors_checkpoint

# Ours -> theirs, the inverse of convert.NAME_RULES, written out independently.
OURS_TO_THEIRS = {"conv": "convs", "bn": "bns"}


class FakeScheduler:
    """Pickled like older PyTorch's OneCycleLR: an object holding a bound method (needs unsafe globals)."""

    def __init__(self) -> None:
        self.anneal_func = self.cos
        self.last_epoch = 7

    def cos(self, x: float) -> float:
        return x


def their_name(ours: str) -> str:
    parts = ours.split(".")
    if parts[0] == "fuse":
        return "fuser." + parts[1]
    _, index, kind, param = parts  # branches.i.conv.weight
    return f"{OURS_TO_THEIRS[kind]}.{index}.{param}"


def randomised(explainer: TTAME, seed: int) -> None:
    """Give every attention tensor (BatchNorm statistics included) distinctive values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in explainer.attention.state_dict().items():
            if tensor.is_floating_point():
                values = torch.randn(tensor.shape, generator=gen) * 0.1
                tensor.copy_(values.abs() + 0.5 if name.endswith("running_var") else values)
            else:
                tensor.fill_(1234)


def authors_file(explainer: TTAME, model_name: str, layers: list[str], version: str = "TAME") -> dict:
    """A checkpoint dict laid out as the authors' Lightning module saves it."""
    wrap = "1." if explainer.backbone.family == "vit" else ""
    # A few backbone tensors stand for the whole backbone their files also hold (keeps the test fast).
    body = list(explainer.backbone.model.state_dict().items())[:4]
    state = {f"generic.body.{k}": v.clone() for k, v in body}
    state.update({f"generic.arrangement.body.{k}": v.clone() for k, v in body})
    for name, tensor in explainer.attention.state_dict().items():
        state[f"generic.attn_mech.{wrap}{their_name(name)}"] = tensor.clone()
    return {
        "epoch": 7,
        "global_step": 320296,
        "pytorch-lightning_version": "2.1.0",
        "state_dict": state,
        "hyper_parameters": {"model_name": model_name, "layers": layers, "attention_version": version},
        "lr_schedulers": [FakeScheduler()],
    }


def make_case(name: str, their_layers: list[str], version: str = "TAME", seed: int = 0):
    backbone = load_backbone(name, weights=None, seed=seed)
    gate = version == "TTAME" and backbone.family == "vit"
    original = TTAME(backbone, gate_with_class_token=gate, seed=seed)
    randomised(original, seed)
    size = 224 if backbone.family == "vit" else 128  # CNNs take any size: smaller is faster
    images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
    classes = torch.tensor([3, 917])
    reference = original.explain(images, classes)
    data = authors_file(original, name, their_layers, version)
    original.close()
    return backbone, data, images, classes, reference


@pytest.fixture(scope="module")
def resnet_case():
    return make_case("resnet50", ["layer2", "layer3", "layer4"])


def assert_same_maps(explainer: TTAME, images, classes, reference) -> None:
    try:
        maps = explainer.explain(images, classes)
        assert torch.allclose(maps, reference, atol=1e-6, rtol=0)
    finally:
        explainer.close()


def test_resnet50_lightning_file_converts_to_the_same_maps_and_saves(resnet_case, tmp_path):
    backbone, data, images, classes, reference = resnet_case
    path = tmp_path / "resnet50_TTAME.ckpt"
    torch.save(data, path)  # holds a pickled object: weights_only alone refuses the file
    explainer = convert_authors_checkpoint(path, backbone)
    assert explainer.layers == PAPER_PRESETS["resnet50"] and not explainer.gate_with_class_token
    explainer.save(tmp_path / "resnet50.ttame")
    assert_same_maps(explainer, images, classes, reference)
    assert_same_maps(TTAME.load(tmp_path / "resnet50.ttame", backbone), images, classes, reference)
    assert backbone_differences(split_authors_checkpoint(data), backbone) == []


def test_vgg16_converts_to_the_same_maps():
    backbone, data, images, classes, reference = make_case("vgg16", ["features.16", "features.23", "features.30"])
    explainer = convert_authors_checkpoint(data, backbone)
    assert explainer.layers == PAPER_PRESETS["vgg16"]
    assert_same_maps(explainer, images, classes, reference)


def test_a_bare_state_dict_converts_too(resnet_case):
    backbone, data, images, classes, reference = resnet_case
    bare = {k.removeprefix("generic.attn_mech."): v for k, v in data["state_dict"].items() if "attn_mech" in k}
    assert_same_maps(convert_authors_checkpoint(bare, backbone), images, classes, reference)


@pytest.mark.parametrize("version", ["TAME", "TTAME"])
def test_vit_names_layers_and_class_token_gate(version, tmp_path):
    their_layers = [f"encoder.layers.encoder_layer_{i}.ln" for i in (9, 10, 11)]
    backbone, data, images, classes, reference = make_case("vit_b_16", their_layers, version, seed=1)
    assert any(k.startswith("generic.attn_mech.1.convs.") for k in data["state_dict"])
    torch.save(data, tmp_path / "vit.ckpt")
    explainer = convert_authors_checkpoint(tmp_path / "vit.ckpt", backbone)
    assert explainer.layers == PAPER_PRESETS["vit_b_16"]
    assert explainer.gate_with_class_token == (version == "TTAME")
    assert_same_maps(explainer, images, classes, reference)


def test_a_file_for_another_backbone_is_refused(resnet_case):
    backbone, data, *_ = resnet_case
    with pytest.raises(CheckpointError, match="trained on 'vgg16'.*--backbone vgg16"):
        convert_authors_checkpoint({**data, "hyper_parameters": {"model_name": "vgg16"}}, backbone)


def test_without_hyper_parameters_the_shapes_refuse_and_name_the_backbone(resnet_case):
    _, data, *_ = resnet_case
    state = {k.replace("generic.attn_mech.", ""): v for k, v in data["state_dict"].items() if "attn_mech" in k}
    with pytest.raises(CheckpointError, match="fit 'resnet50': convert with --backbone resnet50"):
        convert_authors_checkpoint(
            state, load_backbone("resnet18", weights=None, layers=["layer2", "layer3", "layer4"])
        )


def test_missing_and_extra_keys_are_named(resnet_case):
    backbone, data, *_ = resnet_case
    state = dict(data["state_dict"])
    del state["generic.attn_mech.bns.1.running_var"]
    with pytest.raises(CheckpointError, match=r"missing keys: \['branches.1.bn.running_var'\]"):
        convert_authors_checkpoint({"state_dict": state}, backbone)
    state = {**data["state_dict"], "generic.attn_mech.op.weight": torch.zeros(1000, 512, 1, 1)}
    with pytest.raises(CheckpointError, match=r"unexpected keys .*\['op.weight'\]"):
        convert_authors_checkpoint({"state_dict": state}, backbone)


def test_other_mechanisms_and_non_checkpoints_are_refused(resnet_case, tmp_path):
    backbone, data, *_ = resnet_case
    lcam = {**data, "hyper_parameters": {"model_name": "resnet50", "attention_version": "lcam"}}
    with pytest.raises(CheckpointError, match="'lcam' mechanism"):
        convert_authors_checkpoint(lcam, backbone)
    with pytest.raises(CheckpointError, match="no attention-mechanism weights"):
        convert_authors_checkpoint({"state_dict": {"generic.body.fc.weight": torch.zeros(2)}}, backbone)
    pointer = tmp_path / "resnet50_TTAME.ckpt"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:3084\nsize 175458421\n")
    with pytest.raises(CheckpointError, match="git-lfs pointer.*git lfs pull"):
        convert_authors_checkpoint(pointer, backbone)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        convert_authors_checkpoint(tmp_path / "absent.ckpt", backbone)
