"""Bad inputs, one row each: the error type, and a message that names the problem and the fix.

Each row is (id, call, error type, what the message must name, the fix it must give). ``call``
takes a namespace of ready-made objects (a small CNN and ViT, an explainer, images, a folder).
"""

from __future__ import annotations

import types

import pytest
import torch
import torchvision
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ttame_lib import (
    TTAME,
    Backbone,
    CheckpointError,
    InputError,
    LayerNotFoundError,
    LayoutError,
    UnknownBackboneError,
    WeightsFileError,
    WeightsUnavailableError,
    load_backbone,
    make_explainer,
)
from ttame_lib.backbones.preprocessing import load_image, to_pil
from ttame_lib.evaluation import confidence_drop, evaluate_explainer, road
from ttame_lib.world.image_files import ImageFiles


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, small_cnn, small_vit):
    folder = tmp_path_factory.mktemp("bad-inputs")
    explainer = TTAME(small_cnn)
    explainer.save(folder / "good.ttame")
    good = torch.load(folder / "good.ttame", weights_only=True)
    for name, change in {
        "no_version": lambda c: c.pop("format_version"),
        "text_version": lambda c: c.__setitem__("format_version", "two"),
        "no_attention": lambda c: c.pop("attention"),
    }.items():
        edited = dict(good)
        change(edited)
        torch.save(edited, folder / f"{name}.ttame")
    torch.save(explainer.attention.state_dict(), folder / "state_dict_only.ttame")
    (folder / "empty.ttame").write_bytes(b"")
    torch.save(torchvision.models.resnet18(num_classes=10), folder / "whole_model.pth")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    mixed = folder / "mixed"
    (mixed / "cats").mkdir(parents=True)
    Image.new("RGB", (16, 16)).save(mixed / "cats" / "a.png")
    Image.new("RGB", (16, 16)).save(mixed / "loose.png")
    Image.new("RGB", (40, 40)).save(folder / "big.png")
    vit_explainer = TTAME(small_vit)
    vit_explainer.save(folder / "vit.ttame")
    yield types.SimpleNamespace(
        bb=small_cnn,
        vit=small_vit,
        ex=explainer,
        img=torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)),
        maps=torch.rand(2, 64, 64, generator=torch.Generator().manual_seed(1)),
        dir=folder,
    )
    explainer.close()
    vit_explainer.close()


def _fit(ctx, *tensors, **kwargs):
    loader = DataLoader(TensorDataset(*tensors), batch_size=2)
    return ctx.ex.fit(loader, **{"epochs": 1, "progress": False, **kwargs})


def _explain(backbone, method, images, classes=None):
    """Explain with a fresh explainer that is closed even when explain raises (no hooks left behind)."""
    with make_explainer(backbone, method) as explainer:
        return explainer.explain(images, classes)


def _bomb(ctx, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # a 40x40 image is then > 2x the limit
    return load_image(ctx.dir / "big.png")


# fmt: off
CASES = [
    # ---- images given to explain (the same checks guard every baseline and metric)
    ("images-list", lambda c: c.ex.explain([c.img[0]]), InputError, r"torch\.Tensor", r"torch\.stack"),
    ("images-3d", lambda c: c.ex.explain(c.img[0]), InputError, r"single image", r"unsqueeze\(0\)"),
    ("images-5d", lambda c: c.ex.explain(c.img[None]), InputError, r"\(B, 3, H, W\)", r"backbone\.preprocess"),
    ("images-channels-last", lambda c: c.ex.explain(c.img.permute(0, 2, 3, 1)), InputError, r"3 channels",
     r"permute\(0, 3, 1, 2\)"),
    ("images-1-channel", lambda c: c.ex.explain(c.img[:, :1]), InputError, r"3 channels", r"dim 1"),
    ("images-empty-batch", lambda c: c.ex.explain(c.img[:0]), InputError, r"empty batch", r"B = 0"),
    ("images-uint8", lambda c: c.ex.explain((c.img * 255).byte()), InputError, r"dtype torch\.uint8",
     r"images\.float\(\) / 255"),
    ("images-int64", lambda c: c.ex.explain((c.img * 255).long()), InputError, r"dtype torch\.int64",
     r"images\.float\(\) / 255"),
    ("images-bool", lambda c: c.ex.explain(c.img > 0.5), InputError, r"dtype torch\.bool", r"images\.float\(\)"),
    ("images-complex", lambda c: c.ex.explain(c.img.to(torch.complex64)), InputError, r"complex64",
     r"real-valued"),
    ("images-meta", lambda c: c.ex.explain(torch.empty(2, 3, 64, 64, device="meta")), InputError,
     r"'meta' device", r"create them on 'cpu'"),
    ("images-nan", lambda c: c.ex.explain(c.img.clone().index_fill_(0, torch.tensor([0]), float("nan"))),
     InputError, r"NaN", r"images"),
    ("images-normalised", lambda c: c.ex.explain(c.img * 4 - 2), InputError, r"must be in \[0, 1\]",
     r"denormalize"),
    ("images-0-255", lambda c: c.ex.explain(c.img * 255), InputError, r"must be in \[0, 1\]", r"normalises images"),
    ("images-1px", lambda c: c.ex.explain(torch.rand(1, 3, 1, 1)), InputError, r"1x1 px are too small",
     r"backbone\.preprocess"),
    ("images-8px", lambda c: c.ex.explain(torch.rand(1, 3, 8, 8)), InputError, r"8x8 px are too small",
     r"smallest side 28 px"),
    ("images-vit-size", lambda c: _explain(c.vit, "ttame", torch.rand(1, 3, 64, 64)), InputError,
     r"only accepts 64x96", r"backbone\.preprocess"),
    ("images-gradcam", lambda c: _explain(c.bb, "gradcam", c.img * 255), InputError,
     r"\[0, 1\]", r"denormalize"),
    # ---- classes
    ("classes-name", lambda c: c.ex.explain(c.img, classes="tabby"), InputError, r"not names",
     r"class_names\.index"),
    ("classes-names", lambda c: c.ex.explain(c.img, classes=["a", "b"]), InputError, r"not names",
     r"class_names\.index"),
    ("classes-empty-list", lambda c: c.ex.explain(c.img, classes=[]), InputError, r"classes is empty",
     r"None for the predicted"),
    ("classes-B-by-0", lambda c: c.ex.explain(c.img, classes=torch.zeros(2, 0, dtype=torch.long)), InputError,
     r"classes is empty \(shape \(2, 0\)\)", r"one index per image"),
    ("classes-float", lambda c: c.ex.explain(c.img, classes=torch.tensor([1.0, 2.0])), InputError,
     r"integer indices", r"torch\.float32"),
    ("classes-bool", lambda c: c.ex.explain(c.img, classes=True), InputError, r"classes", r"not bool"),
    ("classes-too-big", lambda c: c.ex.explain(c.img, classes=10), InputError, r"class index 10 out of range",
     r"10 classes"),
    ("classes-negative", lambda c: c.ex.explain(c.img, classes=[-1, 0]), InputError, r"class index -1 out of range",
     r"0\.\.9"),
    ("classes-int64-overflow", lambda c: c.ex.explain(c.img, classes=[2**70, 1]), InputError, r"too large for int64",
     r"0\.\.9"),
    ("classes-wrong-batch", lambda c: c.ex.explain(c.img, classes=[1, 2, 3]), InputError, r"shape \(3,\) for 2",
     r"one index per image"),
    ("classes-3d", lambda c: c.ex.explain(c.img, classes=torch.zeros(2, 1, 1, dtype=torch.long)), InputError,
     r"shape \(2, 1, 1\)", r"k per image"),
    ("classes-baseline-2d", lambda c: _explain(c.bb, "gradcam", c.img, [[0, 1], [1, 0]]),
     InputError, r"one class per image", r"once per class"),
    # ---- layers and backbones
    ("layers-empty", lambda c: TTAME(c.bb, layers=[]), LayoutError, r"layers is empty", r"default_layers"),
    ("layers-typo", lambda c: TTAME(c.bb, layers=["layer9"]), LayerNotFoundError, r"layer9", r"Valid layer names"),
    ("layers-duplicate", lambda c: TTAME(c.bb, layers=["layer4", "layer4"]), LayoutError, r"unique", r"layer4"),
    ("layers-pooled-1x1", lambda c: TTAME(c.bb, layers=["layer4", "avgpool"]), LayoutError, r"'avgpool' outputs 1x1",
     r"before the pooling"),
    ("layers-vector", lambda c: TTAME(c.bb, layers=["fc"]), LayoutError, r"'fc' outputs shape \(1, 10\)",
     r"hook another layer"),
    ("load-layers-empty", lambda c: load_backbone("resnet18", num_classes=10, layers=[]), LayoutError,
     r"layers is empty", r"default_layers"),
    ("gradcam-pooled-layer", lambda c: make_explainer(c.bb, "gradcam", layer="avgpool"), LayoutError,
     r"gradcam cannot use this layer: layer 'avgpool' outputs 1x1", r"before the pooling"),
    ("gradcam-vector-layer", lambda c: make_explainer(c.bb, "gradcam", layer="fc"), LayoutError,
     r"not a feature map", r"hook another layer"),
    ("gradcam-unknown-layer", lambda c: make_explainer(c.bb, "gradcam", layer="layer9"), LayerNotFoundError,
     r"layer9", r"Valid layer names"),
    ("method-unknown", lambda c: make_explainer(c.bb, "gradcamm"), InputError, r"unknown method 'gradcamm'",
     r"choose one of"),
    ("explainer-not-backbone", lambda c: make_explainer(c.bb.model, "gradcam"), InputError,
     r"backbone must be a ttame_lib Backbone", r"Backbone\.from_model"),
    ("load-none", lambda c: load_backbone(None), InputError, r"got NoneType", r"such as 'resnet50'"),
    ("load-module", lambda c: load_backbone(nn.Linear(2, 2)), InputError, r"Linear", r"Backbone\.from_model"),
    ("load-unknown-name", lambda c: load_backbone("resnet_18"), UnknownBackboneError, r"resnet_18",
     r"resnet18"),
    ("weights-int", lambda c: load_backbone("resnet18", weights=123), InputError, r"got int 123",
     r"'DEFAULT' or True"),
    ("weights-int-timm", lambda c: load_backbone("resnet18.a1_in1k", weights=123), InputError, r"got int 123",
     r"path to a local file"),
    ("weights-unknown-name", lambda c: load_backbone("resnet18", weights="IMAGENET9K"), WeightsUnavailableError,
     r"unknown weights 'IMAGENET9K'", r"IMAGENET1K_V1"),
    ("weights-missing-file", lambda c: load_backbone("resnet18", weights=str(c.dir / "nope.pth")), WeightsFileError,
     r"not found", r"Check the path"),
    ("weights-whole-model", lambda c: load_backbone("resnet18", weights=str(c.dir / "whole_model.pth"),
                                                    num_classes=10),
     WeightsFileError, r"whole model", r"model\.state_dict\(\)"),
    ("from-model-no-size", lambda c: Backbone.from_model(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1),
                                                                       nn.Flatten())),
     InputError, r"input_size", r"input_size="),
    # ---- checkpoints
    ("checkpoint-missing", lambda c: TTAME.load(c.dir / "nope.ttame", c.bb), CheckpointError, r"no T-TAME checkpoint",
     r"explainer\.save"),
    ("checkpoint-empty", lambda c: TTAME.load(c.dir / "empty.ttame", c.bb), CheckpointError, r"corrupt, truncated",
     r"earlier copy or retrain"),
    ("checkpoint-state-dict", lambda c: TTAME.load(c.dir / "state_dict_only.ttame", c.bb), CheckpointError,
     r"not a T-TAME checkpoint", r"explainer\.save\(PATH\)"),
    ("checkpoint-no-version", lambda c: TTAME.load(c.dir / "no_version.ttame", c.bb), CheckpointError,
     r"no format_version", r"save the explainer again"),
    ("checkpoint-text-version", lambda c: TTAME.load(c.dir / "text_version.ttame", c.bb), CheckpointError,
     r"non-integer \('two'\) format_version", r"save the explainer again"),
    ("checkpoint-missing-keys", lambda c: TTAME.load(c.dir / "no_attention.ttame", c.bb), CheckpointError,
     r"lacks \['attention'\]", r"earlier copy"),
    ("checkpoint-other-backbone", lambda c: TTAME.load(c.dir / "vit.ttame", c.bb), CheckpointError,
     r"was trained for backbone 'vit_tiny", r"Load it with load_backbone\('vit_tiny"),
    # ---- training
    ("epochs-fraction", lambda c: _fit(c, c.img, epochs=1.5), InputError, r"epochs", r"whole number"),
    ("epochs-zero", lambda c: _fit(c, c.img, epochs=0), InputError, r"epochs", r"e\.g\. epochs=8"),
    ("batches-label-first", lambda c: _fit(c, torch.zeros(2, dtype=torch.long), c.img), InputError,
     r"first item of each batch must be the images", r"Yield \(images, labels\)"),
    ("batches-no-images", lambda c: c.ex.fit([["a", "b"]], epochs=1, progress=False), InputError,
     r"cannot find images", r"\(images, labels\)"),
    # ---- metrics
    ("orders-string", lambda c: road(c.bb, c.img, c.maps, percents=[50], orders="morf"), InputError,
     r"orders must be a list", r"\['morf', 'lerf'\]"),
    ("orders-unknown", lambda c: road(c.bb, c.img, c.maps, percents=[50], orders=["most"]), InputError,
     r"orders", r"'morf' and 'lerf'"),
    ("percents-fractions", lambda c: confidence_drop(c.bb, c.img, c.maps, percents=[0.5]), InputError,
     r"below 1 %", r"Pass \[50\.0\]"),
    ("percents-string", lambda c: confidence_drop(c.bb, c.img, c.maps, percents="15"), InputError,
     r"percents must be a list", r"\[100, 50, 15\]"),
    ("percents-over-100", lambda c: confidence_drop(c.bb, c.img, c.maps, percents=[150]), InputError,
     r"percentages", r"\(0, 100\]"),
    ("road-100-percent", lambda c: road(c.bb, c.img, c.maps, percents=[100]), InputError, r"percentages",
     r"\(0, 100\)"),
    ("road-negative-noise", lambda c: road(c.bb, c.img, c.maps, percents=[50], noise=-1), InputError,
     r"noise", r"ROAD: 0\.01"),
    ("maps-fewer-than-images", lambda c: confidence_drop(c.bb, c.img, c.maps[:1]), InputError,
     r"maps \(1, 64, 64\) do not match", r"ttame_lib\.upsample"),
    ("maps-out-of-range", lambda c: confidence_drop(c.bb, c.img, c.maps * 3), InputError,
     r"maps must be in \[0, 1\]", r"minmax_normalize"),
    ("maps-nan", lambda c: confidence_drop(c.bb, c.img, c.maps.clone().fill_(float("nan"))), InputError,
     r"maps contain NaN", r"images \[0, 1\]"),
    ("evaluate-fewer-masks", lambda c: evaluate_explainer(c.ex, c.bb, c.img, c.maps[:1] > 0.5, n_resamples=0,
                                                          progress=False),
     InputError, r"masks must hold one true-object mask per image", r"shape \(2, H, W\)"),
    # ---- image files
    ("image-missing", lambda c: load_image(c.dir / "nope.jpg"), FileNotFoundError, r"image file not found",
     r"Check the path"),
    ("image-corrupt", lambda c: load_image(c.dir / "broken.jpg"), InputError, r"could not decode", r"re-download"),
    ("image-array-range", lambda c: to_pil(torch.rand(8, 8, 3).numpy() * 9), InputError, r"range",
     r"float in \[0, 1\]"),
    ("image-folder-missing", lambda c: ImageFiles(c.dir / "nope", lambda x: x), InputError, r"not found",
     r"nope"),
    ("image-folder-loose-files", lambda c: ImageFiles(c.dir / "mixed", lambda x: x), InputError,
     r"lie directly in .* next to class folders", r"Move them into a class folder"),
    ("image-folder-check", lambda c: ImageFiles(c.dir / "mixed", lambda x: x, check="full"), InputError,
     r"check must be", r"'decode' or 'header'"),
]
# fmt: on


def test_the_table_is_large_and_its_ids_unique():
    ids = [case[0] for case in CASES]
    assert len(ids) >= 50 and len(set(ids)) == len(ids)


@pytest.mark.parametrize(("call", "error", "names", "fix"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_a_clear_error(ctx, call, error, names, fix):
    with pytest.raises(error) as raised:
        call(ctx)
    message = str(raised.value)
    assert raised.type.__module__.startswith("ttame_lib") or error is FileNotFoundError, raised.type
    assert __import__("re").search(names, message), f"message does not name the problem ({names!r}): {message}"
    assert __import__("re").search(fix, message), f"message does not give the fix ({fix!r}): {message}"


def test_an_image_over_the_pixel_limit_says_too_large_and_how_to_allow_it(ctx, monkeypatch):
    with pytest.raises(InputError, match=r"too large to open safely.*MAX_IMAGE_PIXELS = None"):
        _bomb(ctx, monkeypatch)
