import pickle

import pytest
import torch

from ttame_lib import TTAME, CheckpointError, CheckpointNotFoundError, InputError, LayoutError, load_backbone


def count_forwards(model):
    calls = []
    handle = model.register_forward_pre_hook(lambda module, args: calls.append(1))
    return calls, handle


@pytest.mark.parametrize("which", ["cnn", "vit"])
def test_explain_runs_exactly_one_backbone_forward_and_no_backward(which, request):
    explainer = request.getfixturevalue(f"{which}_explainer")
    images = request.getfixturevalue(f"images_{which}")
    calls, handle = count_forwards(explainer.backbone.model)
    with torch.enable_grad():
        maps = explainer.explain(images)
    handle.remove()
    assert len(calls) == 1
    assert not maps.requires_grad and maps.grad_fn is None
    assert maps.shape == (images.shape[0], *images.shape[-2:])
    assert maps.min() >= 0 and maps.max() <= 1
    # Min-max happens at attention resolution; bilinear upsampling then blends the extremes with their
    # neighbours, so each map spans most, not necessarily all, of [0, 1] (the paper's order of operations).
    flat = maps.flatten(1)
    assert (flat.max(1).values > 0.5).all() and (flat.min(1).values < 0.5).all()


def test_explain_predicted_class_by_default_and_any_class_on_request(cnn_explainer, images_cnn):
    maps, logits = cnn_explainer.explain(images_cnn, return_logits=True)
    predicted = logits.argmax(1)
    assert torch.equal(maps, cnn_explainer.explain(images_cnn, classes=predicted))
    other = (predicted + 1) % 10
    other_maps = cnn_explainer.explain(images_cnn, classes=other.tolist())
    assert not torch.allclose(maps, other_maps)
    single = cnn_explainer.explain(images_cnn[:2], classes=[3, 7])
    assert torch.allclose(single[1], cnn_explainer.explain(images_cnn[1:2], classes=7)[0], atol=1e-5)


def test_k_classes_per_image(cnn_explainer, images_cnn):
    classes = torch.tensor([[0, 1, 2]] * 4)
    maps = cnn_explainer.explain(images_cnn, classes=classes)
    assert maps.shape == (4, 3, 64, 64)
    assert torch.allclose(maps[:, 2], cnn_explainer.explain(images_cnn, classes=2), atol=1e-6)


def test_explain_is_batch_independent(cnn_explainer, images_cnn):
    batched = cnn_explainer.explain(images_cnn, classes=1)
    alone = torch.cat([cnn_explainer.explain(images_cnn[i : i + 1], classes=1) for i in range(4)])
    assert torch.allclose(batched, alone, atol=1e-5)


@pytest.mark.parametrize(
    "bad,match",
    [
        (lambda x: x.numpy(), "torch.Tensor"),
        (lambda x: x[0], "unsqueeze"),
        (lambda x: x.permute(0, 2, 3, 1), "permute"),
        (lambda x: (x * 255).to(torch.uint8), r"float\(\) / 255"),
        (lambda x: (x - 0.5) / 0.25, "denormalize"),
        (lambda x: x.index_fill(0, torch.tensor([0]), float("nan")), "NaN"),
        (lambda x: x[:0], "empty"),
        (lambda x: x[:, :1], "3 channels"),
    ],
)
def test_bad_images_get_clear_errors(cnn_explainer, images_cnn, bad, match):
    with pytest.raises(InputError, match=match):
        cnn_explainer.explain(bad(images_cnn))


def test_vit_input_size_errors(vit_explainer):
    with pytest.raises(InputError, match="only accepts 64x96"):
        vit_explainer.explain(torch.rand(1, 3, 64, 64))


@pytest.mark.parametrize(
    "classes,match",
    [
        (10, "out of range.*valid indices 0..9"),
        ([1, 2], "for 4 image"),
        ([-1, 0, 0, 0], "out of range"),
        (1.5, "integer"),
    ],
)
def test_bad_classes_get_clear_errors(cnn_explainer, images_cnn, classes, match):
    with pytest.raises(InputError, match=match):
        cnn_explainer.explain(images_cnn, classes=classes)


def test_seed_makes_initialisation_deterministic_without_touching_global_rng(small_cnn):
    state = torch.get_rng_state()
    a, b, c = TTAME(small_cnn, seed=0), TTAME(small_cnn, seed=0), TTAME(small_cnn, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    sa, sb, sc = (x.attention.state_dict() for x in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["fuse.weight"], sc["fuse.weight"])
    for x in (a, b, c):
        x.close()


def test_class_token_gating_option(small_vit):
    explainer = TTAME(small_vit, gate_with_class_token=True)
    assert explainer.explain(torch.rand(1, 3, 64, 96)).shape == (1, 64, 96)
    explainer.close()
    with pytest.raises(LayoutError, match="token"):
        TTAME(load_backbone("resnet18", num_classes=10), gate_with_class_token=True)


def _trained(explainer, images):
    """One SGD step so the BatchNorm statistics and weights are not at their initial values."""
    explainer.fit([images], epochs=1, progress=False)
    return explainer


def test_checkpoint_round_trip_reproduces_maps_exactly(tmp_path, small_cnn, images_cnn):
    explainer = _trained(TTAME(small_cnn), images_cnn)
    before = explainer.explain(images_cnn)
    path = explainer.save(tmp_path / "runs" / "cnn.ttame")
    explainer.close()
    loaded = TTAME.load(path, small_cnn)
    assert torch.equal(loaded.explain(images_cnn), before)
    assert loaded.history == explainer.history and len(loaded.history) == 1
    loaded.close()
    assert not list(path.parent.glob(".*tmp"))


def test_checkpoint_is_loaded_with_weights_only(tmp_path, small_cnn):
    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    path = tmp_path / "evil.ttame"
    with open(path, "wb") as f:
        torch.save({"format": "ttame-checkpoint", "payload": Evil()}, f, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="could not read"):
        TTAME.load(path, small_cnn)


def test_checkpoint_errors(tmp_path, small_cnn, small_vit, images_cnn):
    with pytest.raises(CheckpointNotFoundError, match="no T-TAME checkpoint"):
        TTAME.load(tmp_path / "missing.ttame", small_cnn)
    corrupt = tmp_path / "corrupt.ttame"
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="corrupt"):
        TTAME.load(corrupt, small_cnn)
    explainer = TTAME(small_cnn)
    path = explainer.save(tmp_path / "cnn.ttame")
    explainer.close()
    with pytest.raises(CheckpointError, match="trained for backbone 'resnet18'"):
        TTAME.load(path, small_vit)
    other_layers = TTAME(small_cnn, layers=["layer3", "layer4"])
    with pytest.raises(CheckpointError, match="layers"):
        other_layers.load_state(torch.load(path, weights_only=True), path)
    other_layers.close()
    other_classes = load_backbone("resnet18", num_classes=7)
    with pytest.raises(CheckpointError, match="10 classes"):
        TTAME.load(path, other_classes)
