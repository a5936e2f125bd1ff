"""Backbone.from_model: a classifier the user built goes through load -> fit -> explain -> save ->
load -> evaluate, and checkpoints refuse a different model that carries the same name."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader

from ttame_lib import (
    EXPLAINERS,
    TTAME,
    Backbone,
    CheckpointError,
    InputError,
    LayerNotFoundError,
    load_backbone,
    make_explainer,
)
from ttame_lib.evaluation import evaluate_explainer
from ttame_lib.world.scenes import CompositeScenes

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def small_sequential(width: int = 16, classes: int = 12) -> nn.Sequential:
    """A plain CNN as a student would write it: no torchvision, no timm, a conv head (no Linear)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 32 x 32
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 16 x 16
        nn.Conv2d(2 * width, 4 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 8 x 8
        nn.Conv2d(4 * width, classes, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def test_a_hand_built_model_goes_through_the_whole_pipeline(tmp_path):
    model = small_sequential()
    scenes = CompositeScenes("train", length=64, size=64, seed=3)
    backbone = Backbone.from_model(model, input_size=64, mean=MEAN, std=STD, class_names=scenes.classes)
    assert backbone.source == "custom" and backbone.name == "Sequential" and backbone.family == "cnn"
    assert backbone.num_classes == 12 and backbone.input_size == (64, 64)
    # The probe picks one module at each of the last three resolutions (16, 8 and 1 x 1 is left out).
    assert len(backbone.default_layers) == 3 and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    state = {k: v.clone() for k, v in model.state_dict().items()}

    explainer = TTAME(backbone)
    history = explainer.fit(DataLoader(scenes, batch_size=16), epochs=1, progress=False)
    assert len(history) == 1 and torch.isfinite(torch.tensor(history[0]["loss"]))
    images = torch.stack([scenes[i][0] for i in range(4)])
    maps = explainer.explain(images)
    assert maps.shape == (4, 64, 64) and 0 <= float(maps.min()) and float(maps.max()) <= 1
    path = explainer.save(tmp_path / "mine.ttame")

    again = Backbone.from_model(small_sequential(), input_size=64, mean=MEAN, std=STD)
    loaded = make_explainer(again, "ttame", checkpoint=path)
    torch.testing.assert_close(loaded.explain(images), maps)
    test = CompositeScenes("test", length=8, size=64, seed=3)
    test_images = torch.stack([test[i][0] for i in range(8)])
    masks = torch.stack([test[i][2] for i in range(8)])
    result = evaluate_explainer(loaded, again, test_images, masks, batch_size=8, n_resamples=0, progress=False)
    assert 0 <= result["pointing_game"] <= 100 and result["latency_ratio"] > 0
    with make_explainer(again, "gradcam", layer=again.default_layers[-1]) as cam:
        assert cam.explain(test_images[:2]).shape == (2, 64, 64)
    # Nothing the explainers did changed the classifier.
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    explainer.close()
    loaded.close()

    # Same name ("Sequential"), same layer names, another width: refused by the architecture fingerprint.
    wider = Backbone.from_model(small_sequential(width=8), input_size=64, mean=MEAN, std=STD)
    with pytest.raises(CheckpointError, match="architecture"):
        TTAME.load(path, wider)


def test_train_classifier_uses_the_shared_loop_and_learns():
    from ttame_lib.world.classifier_training import train_classifier

    torch.manual_seed(0)
    model = small_sequential(width=8)
    scenes = CompositeScenes("train", length=256, size=64, seed=0)
    history = train_classifier(
        model, scenes, normalize=lambda x: (x - 0.5) / 0.25, epochs=3, batch_size=32, lr=1e-2, progress=False
    )
    assert [h["epoch"] for h in history] == [1, 2, 3] and not model.training
    assert history[-1]["loss"] < history[0]["loss"]  # it learns something from the labels
    assert all(p.requires_grad for p in model.parameters())
    frozen = Backbone.from_model(model, input_size=64, mean=MEAN, std=STD).model
    train_classifier(frozen, scenes, normalize=lambda x: x, epochs=1, batch_size=32, progress=False)
    assert not any(p.requires_grad for p in frozen.parameters())  # frozen again afterwards
    with pytest.raises(InputError, match="fewer than one batch"):
        train_classifier(model, scenes, normalize=lambda x: x, batch_size=1000, progress=False)
    with pytest.raises(InputError, match="epochs"):
        train_classifier(model, scenes, normalize=lambda x: x, epochs=0, progress=False)


def test_what_cannot_be_known_is_asked_for_by_name():
    model = small_sequential()
    with pytest.raises(InputError, match="input_size"):
        Backbone.from_model(model, mean=MEAN, std=STD)
    with pytest.raises(InputError, match="mean=.*std="):
        Backbone.from_model(model, input_size=64)
    with pytest.raises(InputError, match="3 values"):
        Backbone.from_model(model, input_size=64, mean=(0.5,), std=STD)
    with pytest.raises(InputError, match="positive int or an"):
        Backbone.from_model(model, input_size=(64, 64, 3), mean=MEAN, std=STD)
    with pytest.raises(InputError, match="fails on a .* check input_size"):
        Backbone.from_model(model, input_size=4, mean=MEAN, std=STD)  # too small for three 2x poolings
    with pytest.raises(InputError, match="returns .* logits"):
        Backbone.from_model(nn.Conv2d(3, 4, 3), input_size=32, mean=MEAN, std=STD)
    with pytest.raises(LayerNotFoundError, match="conv9"):
        Backbone.from_model(model, input_size=64, mean=MEAN, std=STD, layers=["conv9"])
    with pytest.raises(InputError, match="nn.Module"):
        Backbone.from_model("resnet18")
    with pytest.raises(InputError, match="Backbone.from_model"):
        load_backbone(model)
    with pytest.raises(InputError, match="class_names"):
        Backbone.from_model(model, input_size=64, mean=MEAN, std=STD, class_names=["a", "b"])


def test_library_models_built_by_hand_bring_what_they_know():
    # torchvision: the ResNet preset; with its weights enum, the preprocessing and class names too.
    resnet = torchvision.models.resnet18(num_classes=1000)
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    backbone = Backbone.from_model(resnet, weights=weights)
    assert backbone.default_layers == ["layer2", "layer3", "layer4"] and backbone.input_size == (224, 224)
    assert backbone.class_names[0] == "tench" and backbone.preprocessing.mean == (0.485, 0.456, 0.406)
    # timm carries its own config, and a ViT its patch grid.
    vit = timm.create_model("vit_tiny_patch16_224", img_size=64, patch_size=8, depth=4, num_classes=5)
    backbone = Backbone.from_model(vit)
    assert backbone.family == "vit" and backbone.patch_size == (8, 8) and backbone.num_prefix_tokens == 1
    assert backbone.default_layers == ["blocks.1.norm1", "blocks.2.norm1", "blocks.3.norm1"]
    with TTAME(backbone) as explainer:
        assert explainer.explain(torch.rand(2, 3, 64, 64)).shape == (2, 64, 64)


class TinyTransformer(nn.Module):
    """A transformer classifier written from scratch: patches -> class token + blocks -> head."""

    def __init__(self, patch: int = 8, dim: int = 32, depth: int = 3, classes: int = 4):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        layer = nn.TransformerEncoderLayer(dim, 2, 64, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1)
        return self.head(self.encoder(tokens)[:, 0])


def test_a_hand_built_transformer_needs_its_patch_geometry():
    torch.manual_seed(0)
    model = TinyTransformer()
    with pytest.raises(InputError, match="patch_size"):
        Backbone.from_model(model, family="vit", input_size=32, mean=MEAN, std=STD)
    with pytest.raises(InputError, match="num_prefix_tokens"):
        Backbone.from_model(model, input_size=32, mean=MEAN, std=STD, patch_size=8)
    backbone = Backbone.from_model(model, input_size=32, mean=MEAN, std=STD, patch_size=8, num_prefix_tokens=1)
    assert backbone.family == "vit" and backbone.default_layers == [f"encoder.layers.{i}" for i in range(3)]
    with TTAME(backbone) as explainer:
        maps = explainer.explain(torch.rand(2, 3, 32, 32))
    assert maps.shape == (2, 32, 32) and torch.isfinite(maps).all()


def test_every_explainer_shares_one_interface_and_releases_its_hooks(small_cnn, images_cnn):
    def hook_count() -> int:
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in small_cnn.model.modules())

    before = hook_count()
    for method in EXPLAINERS:
        if method == "rollout":  # ViTs only
            continue
        kwargs = {"n_masks": 8} if method == "rise" else {}
        with make_explainer(small_cnn, method, **kwargs) as explainer:
            assert explainer.name == method
            maps = explainer.explain(images_cnn[:1])
            assert maps.shape == (1, 64, 64) and 0 <= float(maps.min()) and float(maps.max()) <= 1
        assert hook_count() == before, method
    with pytest.raises(InputError, match="ttame"):
        make_explainer(small_cnn, "gradcam ")
    with pytest.raises(InputError, match="Backbone"):
        make_explainer(small_cnn.model, "gradcam")


def test_the_old_name_for_close_still_works_and_says_so(small_cnn):
    explainer = TTAME(small_cnn)
    with pytest.warns(DeprecationWarning, match="close"):
        explainer.remove_hooks()
    assert not explainer.extractor._handles
