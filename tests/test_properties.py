"""Property tests over random valid inputs: every explainer's maps are finite, in [0, 1] and of the
right shape, and nothing (explain, fit, a baseline, a metric) changes the backbone's weights,
buffers, modes or requires_grad flags, whatever mode the user left it in.

Hypothesis draws the inputs; ``derandomize=True`` makes the examples the same on every machine,
so CI never meets an example a developer has not.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset

from ttame_lib import EXPLAINERS, load_backbone, make_explainer
from ttame_lib.evaluation import confidence_drop, pointing_game, road

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# Kept small so that every draw stays quick on a 2-core CPU.
SETTINGS_OF = {"rise": {"n_masks": 8}, "scorecam": {"batch_size": 64}, "ablationcam": {"batch_size": 64}}


@pytest.fixture(scope="module")
def models(small_vit):
    """A CNN with BatchNorm (its running statistics would show any update) and a ViT with a fixed size."""
    return {"cnn": load_backbone("resnet18", num_classes=5, seed=0), "vit": small_vit}


def _snapshot(backbone):
    model = backbone.model
    return (
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
    )


def _assert_unchanged(backbone, before, what):
    state, modes, grads = _snapshot(backbone)
    changed = [k for k in state if not torch.equal(state[k], before[0][k])]
    assert not changed, f"{what} changed {changed[:3]}"
    assert modes == before[1], f"{what} changed a module's train/eval mode"
    assert grads == before[2], f"{what} changed requires_grad"


@st.composite
def requests(draw, family: str | None = None, method: str = "ttame"):
    """Images of a valid size and dtype for a backbone family, and a classes argument for ``method``."""
    family = family or draw(st.sampled_from(["cnn", "vit"]))
    batch = draw(st.integers(1, 3))
    size = (64, 96) if family == "vit" else (draw(st.integers(28, 72)), draw(st.integers(28, 72)))
    content = draw(st.sampled_from(["random", "zeros", "ones", "binary"]))
    seed = draw(st.integers(0, 2**16))
    images = torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(seed))
    images = {"random": images, "zeros": images * 0, "ones": images * 0 + 1, "binary": (images > 0.5).float()}[content]
    images = images.to(draw(st.sampled_from(DTYPES)))
    num_classes = 5 if family == "cnn" else 10
    per_image = st.lists(st.integers(0, num_classes - 1), min_size=batch, max_size=batch)
    choice = draw(st.sampled_from(["predicted", "int", "per-image", "several"]))
    if method != "ttame" and choice == "several":
        choice = "per-image"  # baselines explain one class per image
    classes = {
        "predicted": None,
        "int": draw(st.integers(0, num_classes - 1)),
        "per-image": draw(per_image),
        "several": [[c, (c + 1) % num_classes] for c in draw(per_image)],
    }[choice]
    return family, images, classes, draw(st.booleans())


METHODS = [(family, m) for family in ("cnn", "vit") for m in EXPLAINERS if family == "vit" or m != "rollout"]


@pytest.mark.parametrize(("family", "method"), METHODS, ids=[f"{f}-{m}" for f, m in METHODS])
def test_maps_are_finite_in_unit_range_and_shaped_and_the_backbone_never_changes(models, family, method):
    @settings(SETTINGS, max_examples=4)
    @given(request=requests(family, method))
    def check(request):
        _check_explainer(models, method, request)

    check()


def _check_explainer(models, method, request):
    family, images, classes, train_mode = request
    backbone = models[family]
    backbone.model.train(train_mode)
    try:
        before = _snapshot(backbone)
        with make_explainer(backbone, method, **SETTINGS_OF.get(method, {})) as explainer:
            maps = explainer.explain(images, classes)
        _assert_unchanged(backbone, before, f"{method}.explain")
        several = isinstance(classes, list) and isinstance(classes[0], list)
        expected = (images.shape[0], len(classes[0])) if several else (images.shape[0],)
        assert maps.shape == (*expected, *images.shape[-2:])
        assert maps.dtype == torch.float32 and torch.isfinite(maps).all()
        assert float(maps.min()) >= 0 and float(maps.max()) <= 1
    finally:
        backbone.model.eval()


@SETTINGS
@given(request=requests(), metric=st.sampled_from(["confidence_drop", "road-morf", "road-lerf", "pointing_game"]))
def test_metrics_never_change_the_backbone(models, request, metric):
    family, images, _, train_mode = request
    backbone = models[family]
    maps = torch.rand(images.shape[0], *images.shape[-2:], generator=torch.Generator().manual_seed(0))
    backbone.model.train(train_mode)
    try:
        before = _snapshot(backbone)
        if metric == "confidence_drop":
            result = confidence_drop(backbone, images, maps, percents=[50])
            values = torch.cat([result.original, *result.masked.values()])
            assert torch.isfinite(values).all() and float(values.min()) >= 0 and float(values.max()) <= 1
        elif metric.startswith("road"):
            result = road(backbone, images, maps, percents=[30], orders=[metric[5:]])
            assert all(0 <= v <= 100 for v in result.summary().values())
        else:
            hits = pointing_game(maps, maps > 0.5)
            assert hits.shape == (images.shape[0],)
        _assert_unchanged(backbone, before, metric)
    finally:
        backbone.model.eval()


@pytest.mark.parametrize("train_mode", [False, True])
def test_fitting_trains_only_the_attention_mechanism(models, train_mode):
    backbone = models["cnn"]
    backbone.model.train(train_mode)
    try:
        before = _snapshot(backbone)
        images = torch.rand(4, 3, 40, 48, generator=torch.Generator().manual_seed(0))
        with make_explainer(backbone, "ttame") as explainer:
            start = [p.detach().clone() for p in explainer.attention.parameters()]
            explainer.fit(DataLoader(TensorDataset(images), batch_size=2), epochs=1, progress=False)
            moved = any(not torch.equal(a, p) for a, p in zip(start, explainer.attention.parameters()))
        assert moved, "the attention mechanism did not train"
        _assert_unchanged(backbone, before, "fit")
    finally:
        backbone.model.eval()
