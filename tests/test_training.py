import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ttame_lib import TTAME, CheckpointError, InputError, load_backbone


def loader(images, batch_size=4, seed=0):
    labels = torch.zeros(len(images), dtype=torch.long)
    return DataLoader(
        TensorDataset(images, labels),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )


@pytest.fixture
def data():
    return torch.rand(12, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("which", ["cnn", "vit"])
def test_backbone_is_bit_identical_after_training_and_gets_no_gradients(which, request):
    explainer = request.getfixturevalue(f"{which}_explainer")
    images = torch.rand(8, 3, *explainer.backbone.input_size[-2:]) if which == "vit" else torch.rand(8, 3, 64, 64)
    model = explainer.backbone.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    attention_before = {k: v.clone() for k, v in explainer.attention.state_dict().items()}
    history = explainer.fit(loader(images), epochs=1, progress=False)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    assert not model.training
    changed = [k for k, v in explainer.attention.state_dict().items() if not torch.equal(v, attention_before[k])]
    assert "fuse.weight" in changed and "branches.0.bn.running_mean" in changed
    assert set(history[0]) >= {"epoch", "loss", "ce", "area", "tv", "lr", "seconds"}


def test_loss_targets_are_the_backbone_predictions(cnn_explainer, data):
    # Labels in the loader are ignored: a batch with wrong labels gives the same loss as without labels.
    with torch.no_grad():
        a, _ = cnn_explainer.loss(data[:4])
    assert torch.isfinite(a)


def test_validation_terms_are_logged(cnn_explainer, data):
    history = cnn_explainer.fit(loader(data), epochs=2, val_loader=loader(data[:4]), progress=False)
    assert len(history) == 2
    assert {"val_loss", "val_ce", "val_area", "val_tv"} <= set(history[1])


def test_resume_after_interruption_gives_the_same_result(tmp_path, small_cnn, data):
    reference = TTAME(small_cnn)
    reference.fit(loader(data), epochs=3, progress=False)
    reference.close()

    class Crash(Exception):
        pass

    class CrashingLoader:
        """A DataLoader that dies at the first batch of its third pass."""

        def __init__(self, inner):
            self.inner, self.passes = inner, 0
            self.generator = inner.generator

        def __len__(self):
            return len(self.inner)

        def __iter__(self):
            self.passes += 1
            for i, batch in enumerate(self.inner):
                if self.passes == 3 and i == 0:
                    raise Crash
                yield batch

    path = tmp_path / "run.ttame"
    interrupted = TTAME(small_cnn)
    with pytest.raises(Crash):
        interrupted.fit(CrashingLoader(loader(data)), epochs=3, checkpoint=path, progress=False)
    interrupted.close()
    assert torch.load(path, weights_only=True)["training"]["epoch"] == 2

    resumed = TTAME(small_cnn, seed=123)  # different init: everything must come from the checkpoint
    history = resumed.fit(loader(data), epochs=3, checkpoint=path, resume=True, progress=False)
    ref_state, new_state = reference.attention.state_dict(), resumed.attention.state_dict()
    assert all(torch.equal(ref_state[k], new_state[k]) for k in ref_state)
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in history]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in reference.history]
    resumed.close()


def test_existing_checkpoint_is_never_overwritten_silently(tmp_path, cnn_explainer, data):
    path = tmp_path / "run.ttame"
    cnn_explainer.fit(loader(data), epochs=1, checkpoint=path, progress=False)
    with pytest.raises(CheckpointError, match="resume=True"):
        cnn_explainer.fit(loader(data), epochs=1, checkpoint=path, progress=False)
    with pytest.raises(CheckpointError, match="same settings"):
        cnn_explainer.fit(loader(data), epochs=2, checkpoint=path, resume=True, progress=False)


def test_bad_training_arguments(cnn_explainer, data):
    with pytest.raises(InputError, match="needs CUDA.*amp='bf16'"):
        cnn_explainer.fit(loader(data), epochs=1, amp=True, progress=False)
    with pytest.raises(InputError, match="needs CUDA"):
        cnn_explainer.fit(loader(data), epochs=1, amp="fp16", progress=False)
    with pytest.raises(InputError, match="amp must be .*'bf16'.*got 'fp8'"):
        cnn_explainer.fit(loader(data), epochs=1, amp="fp8", progress=False)
    with pytest.raises(InputError, match="checkpoint=PATH"):
        cnn_explainer.fit(loader(data), epochs=1, resume=True, progress=False)
    with pytest.raises(InputError, match="epochs"):
        cnn_explainer.fit(loader(data), epochs=0, progress=False)
    with pytest.raises(InputError, match="cannot find images"):
        cnn_explainer.fit([["not", "images"]], epochs=1, progress=False)


def test_on_epoch_end_sees_each_epoch_without_changing_the_result(small_cnn, data):
    plain = TTAME(small_cnn)
    plain.fit(loader(data), epochs=2, progress=False)
    seen = []
    watched = TTAME(small_cnn)
    watched.fit(
        loader(data),
        epochs=2,
        progress=False,
        on_epoch_end=lambda ex, record: seen.append((record["epoch"], ex.explain(data[:2]).shape)),
    )
    assert seen == [(1, (2, 64, 64)), (2, (2, 64, 64))]
    a, b = plain.attention.state_dict(), watched.attention.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain.close()
    watched.close()


def test_bfloat16_training_runs_in_bfloat16_and_stays_close_to_float32(data):
    # bf16 autocast is available on CPUs too, so the mixed-precision path runs here: the branch
    # convolutions really compute in bfloat16, the weights stay float32, and the run follows the
    # float32 one (bf16 keeps ~3 significant digits). A backbone of its own: no state shared with other tests.
    backbone = load_backbone("resnet18", num_classes=10, seed=0)
    seen = []
    full, mixed = TTAME(backbone), TTAME(backbone)
    start = mixed.attention.fuse.weight.detach().clone()
    handle = mixed.attention.branches[0].conv.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    full.fit(loader(data), epochs=2, progress=False, lr=0.05)
    history = mixed.fit(loader(data), epochs=2, amp="bf16", progress=False, lr=0.05)
    handle.remove()
    assert torch.bfloat16 in seen
    assert all(p.dtype == torch.float32 for p in mixed.attention.parameters())
    for a, b in zip(full.history, history, strict=True):  # the same loss, epoch by epoch, to bf16's precision
        assert b["loss"] == pytest.approx(a["loss"], rel=0.02)
    trained, mixed_weights = full.attention.fuse.weight.detach(), mixed.attention.fuse.weight.detach()
    assert float((trained - mixed_weights).abs().max()) < float((trained - start).abs().max())
    maps = mixed.explain(data[:2])
    assert maps.dtype == torch.float32 and torch.isfinite(maps).all()
    full.close()
    mixed.close()


def test_a_bfloat16_run_resumes_exactly_and_only_in_bfloat16(tmp_path, small_cnn, data):
    reference = TTAME(small_cnn)
    reference.fit(loader(data), epochs=2, amp="bf16", progress=False)
    path = tmp_path / "run.ttame"
    first = TTAME(small_cnn)
    first.fit(loader(data), epochs=2, amp="bf16", checkpoint=path, progress=False, steps_per_epoch=3)
    first.close()
    with pytest.raises(CheckpointError, match="same settings"):  # the precision is part of the run's settings
        TTAME(small_cnn).fit(loader(data), epochs=2, checkpoint=path, resume=True, progress=False, steps_per_epoch=3)
    path.unlink()

    class Stop(Exception):
        pass

    def stop(explainer, record):
        raise Stop

    interrupted = TTAME(small_cnn)
    with pytest.raises(Stop):
        interrupted.fit(loader(data), epochs=2, amp="bf16", checkpoint=path, progress=False, on_epoch_end=stop)
    interrupted.close()
    resumed = TTAME(small_cnn, seed=5)
    resumed.fit(loader(data), epochs=2, amp="bf16", checkpoint=path, resume=True, progress=False)
    a, b = reference.attention.state_dict(), resumed.attention.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    reference.close()
    resumed.close()
