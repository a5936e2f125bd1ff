"""No silent wrong results: constant maps, NaN losses and weights, a backbone left in train mode,
explainers that are never closed, ambiguous percentages, interrupted training."""

from __future__ import annotations

import gc
import io
import os
import shutil
import signal
import time

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ttame_lib import (
    TTAME,
    CheckpointError,
    InputError,
    LayoutError,
    TrainingError,
    load_backbone,
    make_explainer,
    minmax_normalize,
)
from ttame_lib.evaluation import confidence_drop, road


def test_a_constant_map_stays_zero_after_upsampling_and_real_contrast_survives():
    # A constant map that went through float arithmetic (upsampling, sums of terms) carries rounding jitter.
    jitter = 4e-7 * torch.randn(1, 224, 224, generator=torch.Generator().manual_seed(0))
    constant = torch.full((1, 224, 224), 3.7) + jitter
    assert float(constant.max() - constant.min()) > 0
    assert torch.equal(minmax_normalize(constant), torch.zeros_like(constant))
    subtle = 1000 + torch.linspace(0, 1, 64).view(1, 8, 8)  # a real 1-in-1000 contrast on a large offset
    assert float(minmax_normalize(subtle).max()) == 1.0


@pytest.fixture
def bn_backbone():
    """A CNN with BatchNorm, left in *train* mode, as user code may leave it."""
    backbone = load_backbone("resnet18", num_classes=5, seed=0)
    backbone.model.train()
    return backbone


def _bn_state(backbone):
    return {k: v.clone() for k, v in backbone.model.state_dict().items() if "running" in k or "num_batches" in k}


def test_nothing_changes_a_backbone_left_in_train_mode(bn_backbone, images_cnn):
    before = _bn_state(bn_backbone)
    explainer = TTAME(bn_backbone)
    maps = explainer.explain(images_cnn)
    explainer.fit(DataLoader(TensorDataset(images_cnn), batch_size=2), epochs=1, progress=False)
    confidence_drop(bn_backbone, images_cnn, maps)
    road(bn_backbone, images_cnn[:1], maps[:1], percents=[50])
    bn_backbone(images_cnn)
    for method in ("gradcam", "rise"):
        with make_explainer(bn_backbone, method, **({"n_masks": 4} if method == "rise" else {})) as other:
            other.explain(images_cnn[:1])
    explainer.close()
    after = _bn_state(bn_backbone)
    assert all(torch.equal(before[k], after[k]) for k in before), "BatchNorm statistics changed"
    assert bn_backbone.model.training and all(m.training for m in bn_backbone.model.modules())


def _hooks(backbone) -> int:
    return sum(len(m._forward_hooks) for m in backbone.model.modules())


def test_explainers_dropped_without_close_release_their_hooks(small_cnn):
    before = _hooks(small_cnn)
    for _ in range(20):
        TTAME(small_cnn)
    gc.collect()
    assert _hooks(small_cnn) == before
    kept = TTAME(small_cnn)
    assert _hooks(small_cnn) == before + len(kept.layers)
    kept.close()
    kept.close()  # twice is fine
    assert _hooks(small_cnn) == before
    for _ in range(5):
        make_explainer(small_cnn, "gradcam")  # pytorch-grad-cam's hooks, too
    gc.collect()
    assert _hooks(small_cnn) == before
    cam = make_explainer(small_cnn, "gradcam")
    assert _hooks(small_cnn) > before
    cam.close()
    cam.close()
    assert _hooks(small_cnn) == before


class CtrlCAt:
    """Wraps a TTAMELoss: Ctrl-C at training step ``call`` (counted over the whole run), raised as
    KeyboardInterrupt or, with ``real_signal``, delivered as a real SIGINT to this process."""

    def __init__(self, loss_fn, call: int, real_signal: bool = False):
        self.loss_fn, self.call, self.calls, self.real_signal = loss_fn, call, 0, real_signal
        self.regularize, self.weights = loss_fn.regularize, loss_fn.weights

    def __call__(self, *args):
        self.calls += 1
        if self.calls == self.call:
            if self.real_signal:
                _sigint()
            raise KeyboardInterrupt
        return self.loss_fn(*args)


class NaNAfter:
    """Wraps a TTAMELoss: the loss becomes NaN from call ``after`` on."""

    def __init__(self, loss_fn, after: int):
        self.loss_fn, self.after, self.calls = loss_fn, after, 0
        self.regularize, self.weights = loss_fn.regularize, loss_fn.weights

    def __call__(self, *args):
        self.calls += 1
        total, terms = self.loss_fn(*args)
        return (total * float("nan"), terms) if self.calls >= self.after else (total, terms)


@pytest.mark.parametrize(
    "kwargs",
    [{"layers": ["layer4", "avgpool"]}, {"layers": ["layer3"], "regularize": "sometimes"}, {"layers": ["fc"]}],
)
def test_a_refused_configuration_leaves_no_hook_behind(small_cnn, kwargs):
    before = _hooks(small_cnn)
    # The traceback is kept alive (as Jupyter keeps the last one in sys.last_traceback): it holds the
    # half-built explainer, so no finalizer can clean up for us; the constructor itself must.
    with pytest.raises((LayoutError, InputError, ValueError)) as raised:
        TTAME(small_cnn, **kwargs)
    assert raised.tb is not None and _hooks(small_cnn) == before


def test_a_nan_loss_stops_training_and_never_reaches_a_checkpoint(small_cnn, images_cnn, tmp_path):
    data = DataLoader(TensorDataset(torch.rand(8, 3, 64, 64)), batch_size=4)  # 2 steps per epoch
    explainer = TTAME(small_cnn)
    explainer.loss_fn = NaNAfter(explainer.loss_fn, after=4)  # epoch 2, step 2
    path = tmp_path / "run.ttame"
    with pytest.raises(TrainingError, match="epoch 2, step 2"):
        explainer.fit(data, epochs=3, checkpoint=path, progress=False)
    saved = torch.load(path, weights_only=True)
    assert saved["training"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in saved["attention"].values())
    current = explainer.attention.state_dict()
    assert all(torch.equal(current[k], saved["attention"][k]) for k in current)  # back at the end of epoch 1
    assert len(explainer.history) == 1
    explainer.close()

    saved["attention"][next(iter(saved["attention"]))].fill_(float("nan"))
    torch.save(saved, tmp_path / "nan.ttame")
    with pytest.raises(CheckpointError, match="NaN"):
        TTAME.load(tmp_path / "nan.ttame", small_cnn)


def test_an_interrupted_first_epoch_leaves_no_half_trained_weights(small_cnn, tmp_path):
    torch.manual_seed(0)
    images = torch.rand(12, 3, 64, 64)

    def loader():
        return DataLoader(TensorDataset(images), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(1))

    straight = TTAME(small_cnn)
    straight.fit(loader(), epochs=2, progress=False)

    interrupted = TTAME(small_cnn)
    initial = {k: v.clone() for k, v in interrupted.attention.state_dict().items()}
    data = loader()
    real = interrupted.loss_fn
    interrupted.loss_fn = CtrlCAt(real, call=2)  # the user presses Ctrl-C in the first epoch
    path = tmp_path / "run.ttame"
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(data, epochs=2, checkpoint=path, progress=False)
    assert not path.exists()
    state = interrupted.attention.state_dict()
    assert all(torch.equal(state[k], initial[k]) for k in state)  # not half-trained
    interrupted.loss_fn = real
    interrupted.fit(data, epochs=2, checkpoint=path, resume=True, progress=False)
    ref, got = straight.attention.state_dict(), interrupted.attention.state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    straight.close()
    interrupted.close()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda bb, x, m: confidence_drop(bb, x, m, percents=[0.5]), "did you mean fractions.*50"),
        (lambda bb, x, m: confidence_drop(bb, x, m, percents="50"), "list of percentages"),
        (lambda bb, x, m: road(bb, x, m, noise=-1), "noise.*>= 0"),
        (lambda bb, x, m: road(bb, x, m, noise=float("nan")), "noise.*>= 0"),
        (lambda bb, x, m: road(bb, x, m, orders="morf"), "orders must be a list"),
    ],
)
def test_ambiguous_metric_arguments_are_refused(small_cnn, images_cnn, call, match):
    maps = torch.rand(4, 64, 64)
    with pytest.raises(InputError, match=match):
        call(small_cnn, images_cnn, maps)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 1.5}, "whole number"),
        ({"epochs": True}, "whole number"),
        ({"epochs": 1, "steps_per_epoch": 5}, "never reach its peak"),
        ({"epochs": 1, "steps_per_epoch": 0}, ">= 1"),
    ],
)
def test_training_schedules_that_cannot_work_are_refused(cnn_explainer, images_cnn, kwargs, match):
    with pytest.raises(InputError, match=match):
        cnn_explainer.fit(DataLoader(TensorDataset(images_cnn), batch_size=2), progress=False, **kwargs)


def _sigint() -> None:
    """A real Ctrl-C: SIGINT to this process, which Python turns into KeyboardInterrupt right away."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)  # never reached in full: the signal interrupts the sleep


@pytest.fixture
def sigint_during_write(monkeypatch):
    """Make the n-th checkpoint write stop half way through with a SIGINT (set ``.write`` to n)."""
    real_save, state = torch.save, {"write": None, "writes": 0}

    def save(obj, handle, *args, **kwargs):
        state["writes"] += 1
        if state["writes"] == state["write"]:
            buffer = io.BytesIO()
            real_save(obj, buffer)
            handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            handle.flush()
            _sigint()
        return real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    # Python's own Ctrl-C handling (SIGINT -> KeyboardInterrupt) is what is under test: pin it, whatever
    # handler an earlier test or library left installed (one fresh-clone run found another one in place).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield state
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize(
    ("where", "step", "write"),
    [
        ("first epoch, before any checkpoint", 2, None),
        ("second epoch, mid-epoch", 5, None),
        ("last step of the second epoch", 6, None),
        ("during the first checkpoint write", None, 1),
        ("during the second checkpoint write", None, 2),
    ],
)
def test_sigint_anywhere_then_resume_ends_bit_identical(small_cnn, tmp_path, sigint_during_write, where, step, write):
    images = torch.rand(12, 3, 64, 64, generator=torch.Generator().manual_seed(0))

    def loader():  # 3 shuffled steps per epoch: resuming must also restore the shuffling RNG
        return DataLoader(TensorDataset(images), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(1))

    with TTAME(small_cnn) as straight:
        straight.fit(loader(), epochs=3, progress=False)
        reference = straight.attention.state_dict()

    path = tmp_path / "run.ttame"
    interrupted = TTAME(small_cnn)
    real = interrupted.loss_fn
    if step is not None:
        interrupted.loss_fn = CtrlCAt(real, step, real_signal=True)
    sigint_during_write["write"] = write
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(loader(), epochs=3, checkpoint=path, progress=False)
    sigint_during_write["write"] = None
    assert not list(tmp_path.glob(".*.tmp")), "a half-written temporary file was left behind"
    finished = {2: 0, 5: 1, 6: 1}.get(step, (write or 1) - 1)  # epochs whose checkpoint is complete
    if finished == 0:
        assert not path.exists()
    else:
        assert TTAME.load(path, small_cnn).history[-1]["epoch"] == finished  # the last complete one, never half
        shutil.copy(path, tmp_path / "copy.ttame")

    interrupted.loss_fn = real  # the same object resumes...
    interrupted.fit(loader(), epochs=3, checkpoint=path, resume=True, progress=False)
    with TTAME(small_cnn) as fresh:  # ...and so does a new session, from the file alone
        fresh.fit(loader(), epochs=3, checkpoint=tmp_path / "copy.ttame", resume=True, progress=False)
        for explainer in (interrupted, fresh):
            got = explainer.attention.state_dict()
            assert all(torch.equal(reference[k], got[k]) for k in reference), where
    interrupted.close()
