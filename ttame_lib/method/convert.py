"""Convert the authors' released T-TAME checkpoints into this library's explainers.

The authors' code (github.com/IDT-ITI/T-TAME, also published as marios1861/T-TAME) trains the
attention mechanism inside a PyTorch Lightning module and ships the Lightning checkpoints
(``checkpoints/{vgg16,resnet50,vit_b_16}_TTAME.ckpt``). What this module relies on, read from
``src/tame/attention/tame.py`` (``AttentionTAME``/``AttentionTTAME``, identical parameters),
``src/tame/composite_models.py`` (``Generic``), ``src/tame/attention/factory.py`` and
``src/tame/pl_module.py`` (``TAMELIT``):

* the file is a dict; its ``state_dict`` holds the whole ``TAMELIT``: the backbone as
  ``generic.body.*`` (again as ``generic.arrangement.body.*``) and the attention mechanism as
  ``generic.attn_mech.*``; ``hyper_parameters`` records ``model_name``, ``layers`` and
  ``attention_version``;
* for the ViT the mechanism is wrapped in ``nn.Sequential(PreprocessSeq, mechanism)``, so its
  names carry a ``1.`` (``generic.attn_mech.1.convs.0.weight``);
* per hooked layer ``i``: ``convs.i`` (1x1 conv C->C) and ``bns.i`` (BatchNorm), then ``fuser``
  (1x1 conv sum C -> classes) over the branches concatenated in layer order, which is the order
  our ``fuse`` slices its input channels in;
* the common size is the *first* map's size capped at 56, ours the largest map's: the same for
  the paper's layers, whose first map is the largest.

:func:`convert_authors_checkpoint` maps the names, checks every shape and refuses anything it
does not recognise; the backbone itself comes from torchvision, not from the file.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..backbones.backbone import Backbone
from ..errors import CheckpointError, CheckpointNotFoundError
from .explainer import TTAME

# Their parameter names (after ``attn_mech.``) -> ours (``AttentionMechanism.state_dict()``).
NAME_RULES = (
    (re.compile(r"convs\.(\d+)\.(weight|bias)"), r"branches.\1.conv.\2"),
    (re.compile(r"bns\.(\d+)\.(weight|bias|running_mean|running_var|num_batches_tracked)"), r"branches.\1.bn.\2"),
    (re.compile(r"fuser\.(weight|bias)"), r"fuse.\1"),
)
# Channels of the hooked maps of the authors' three backbones, to name the right one in errors.
PAPER_CHANNELS = {"vgg16": [256, 512, 512], "resnet50": [512, 1024, 2048], "vit_b_16": [768, 768, 768]}
# Their ``attention_version`` values with this mechanism; "TTAME" gates ViT tokens by the class token.
VERSIONS = ("TAME", "TTAME")


@dataclass
class AuthorsCheckpoint:
    """The parts of an authors' file the conversion uses (tensors are never executed code)."""

    attention: dict[str, torch.Tensor]  # their names, prefixes removed
    backbone_state: dict[str, torch.Tensor] = field(default_factory=dict)  # generic.body.* without prefix
    hparams: dict[str, Any] = field(default_factory=dict)


class _Inert:
    """Stands in for a pickled object the conversion does not need (an LR scheduler, a callback...)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state


def load_authors_file(path: str | Path) -> Any:
    """``torch.load(weights_only=True)``; pickled Python objects become inert placeholders.

    Lightning files also hold the optimiser, scheduler and callback states, which may be
    pickled objects (older PyTorch pickles ``OneCycleLR`` through a bound method).
    ``weights_only`` refuses them. We never need them, so each one the file names (listed by
    ``torch.serialization.get_unsafe_globals_in_checkpoint``) is replaced by a class that runs no
    code; everything else still goes through PyTorch's restricted unpickler.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"no checkpoint at {path}; download the authors' file (git lfs pull) first")
    with path.open("rb") as handle:
        head = handle.read(64)
    if head.startswith(b"version https://git-lfs"):
        raise CheckpointError(
            f"{path} is a git-lfs pointer, not the checkpoint: their repository stores checkpoints with git-lfs. "
            "Run `git lfs install && git lfs pull` in your clone of T-TAME (or download the file from GitHub's "
            "web page), then convert the real file."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass
    except Exception as err:  # noqa: BLE001 - truncated zip, not a torch file...
        raise CheckpointError(f"could not read {path} ({type(err).__name__}: {err}); download it again") from err
    serialization = torch.serialization
    if not hasattr(serialization, "get_unsafe_globals_in_checkpoint"):  # PyTorch < 2.5
        raise CheckpointError(
            f"{path} holds pickled Python objects (a Lightning file's scheduler or callback states); reading it "
            f"safely needs PyTorch >= 2.5 (this is {torch.__version__}). Upgrade, or, if you trust the file, extract "
            "its state dict: torch.save(torch.load(PATH, weights_only=False)['state_dict'], 'state.pt'), and "
            "convert state.pt."
        )
    names = serialization.get_unsafe_globals_in_checkpoint(path)
    stubs = [(type(name.rsplit(".", 1)[-1], (_Inert,), {}), name) for name in names]
    try:
        with serialization.safe_globals(stubs):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(
            f"{path} holds pickled Python objects that even placeholders cannot stand in for ({err}). Loading it "
            "with weights_only=False would run code from the file. If you trust it, extract the state dict in an "
            "environment with the authors' packages installed: torch.save(torch.load(PATH, weights_only=False)"
            "['state_dict'], 'state.pt'), and convert state.pt."
        ) from err


def split_authors_checkpoint(data: Any) -> AuthorsCheckpoint:
    """A Lightning checkpoint, its ``state_dict``, or the mechanism's own state dict -> parts."""
    if not isinstance(data, Mapping):
        raise CheckpointError(f"expected a checkpoint dict, got {type(data).__name__}; is this an authors' file?")
    hparams = dict(data.get("hyper_parameters") or {})
    state = data["state_dict"] if "state_dict" in data else data
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("the checkpoint's state dict holds non-tensor values; it is not an authors' file")
    attention, body = {}, {}
    for key, value in state.items():
        name = key.removeprefix("module.")
        if "attn_mech." in name:
            attention[name.split("attn_mech.", 1)[1].removeprefix("1.")] = value
        elif name.startswith("generic.body."):
            body[name.removeprefix("generic.body.")] = value
        elif not name.startswith("generic."):  # a bare mechanism state dict (or a stray key: refused below)
            attention[name.removeprefix("1.")] = value
    if not attention:
        raise CheckpointError(
            "no attention-mechanism weights (generic.attn_mech.*) in this file; it is not a T-TAME checkpoint"
        )
    return AuthorsCheckpoint(attention, body, hparams)


def our_name(name: str) -> str | None:
    """Our parameter name for one of theirs, or None if it is not part of the T-TAME mechanism."""
    for pattern, replacement in NAME_RULES:
        if pattern.fullmatch(name):
            return pattern.sub(replacement, name)
    return None


def our_layers(their_layers: list[str] | None, backbone: Backbone) -> list[str]:
    """Their layer names as ours: their ViT names ``encoder_layer_N.ln``, which torchvision calls ``ln_1``."""
    if not their_layers:
        return list(backbone.default_layers)
    return [re.sub(r"(encoder_layer_\d+)\.ln$", r"\1.ln_1", layer) for layer in their_layers]


def check_hparams(hparams: dict[str, Any], backbone_name: str) -> None:
    """Refuse a file whose recorded ``model_name`` is another backbone, or whose mechanism is not T-TAME."""
    model_name = hparams.get("model_name")
    if model_name is not None and model_name != backbone_name:
        raise CheckpointError(
            f"this checkpoint was trained on {model_name!r}, not {backbone_name!r}; convert it with "
            f"--backbone {model_name} (load_backbone({model_name!r}, weights='IMAGENET1K_V1'))"
        )
    version = hparams.get("attention_version")
    if version is not None and version not in VERSIONS:
        raise CheckpointError(
            f"this checkpoint holds the authors' {version!r} mechanism (e.g. L-CAM, their baseline), not T-TAME; "
            f"only {VERSIONS} checkpoints convert"
        )


def map_state(their: dict[str, torch.Tensor], explainer: TTAME) -> dict[str, torch.Tensor]:
    """Rename, then check the names and shapes against ``explainer.attention``; raise listing every problem."""
    expected = explainer.attention.state_dict()
    mapped, unexpected = {}, []
    for name, tensor in their.items():
        ours = our_name(name)
        if ours is None or ours not in expected:
            unexpected.append(name)
        else:
            mapped[ours] = tensor
    missing = sorted(set(expected) - set(mapped))
    wrong = [
        f"{name}: file {tuple(t.shape)}, {explainer.backbone.name} needs {tuple(expected[name].shape)}"
        for name, t in mapped.items()
        if t.shape != expected[name].shape
    ]
    if unexpected or missing or wrong:
        channels = [int(t.shape[0]) for n, t in sorted(their.items()) if re.fullmatch(r"convs\.\d+\.weight", n)]
        fits = [name for name, c in PAPER_CHANNELS.items() if c == channels]
        hint = f" Its branch channels {channels} fit {fits[0]!r}: convert with --backbone {fits[0]}." if fits else ""
        problems = [f"unexpected keys (not T-TAME's convs/bns/fuser): {unexpected}"] if unexpected else []
        problems += [f"missing keys: {missing}"] if missing else []
        problems += [f"shape mismatches: {wrong}"] if wrong else []
        raise CheckpointError(
            f"the checkpoint does not fit T-TAME on {explainer.backbone.name!r} with layers {explainer.layers}:\n  "
            + "\n  ".join(problems)
            + f"\nIs it a file for another backbone, or not an authors' T-TAME checkpoint?{hint}"
        )
    return mapped


def convert_authors_checkpoint(source: str | Path | Mapping[str, Any], backbone: Backbone) -> TTAME:
    """An explainer on ``backbone`` holding the authors' trained attention mechanism.

    ``source``: the path of their ``.ckpt`` file, or its loaded dict (a Lightning checkpoint, its
    ``state_dict``, or the mechanism's own state dict). ``backbone``: the classifier they explain,
    ``load_backbone(name, weights="IMAGENET1K_V1")`` (their ``pretrained=True``). Save the result
    with ``explainer.save(path)``. Raises :class:`CheckpointError` naming what does not fit.
    """
    data = source if isinstance(source, Mapping) else load_authors_file(source)
    parts = split_authors_checkpoint(data)
    check_hparams(parts.hparams, backbone.name)
    gate = parts.hparams.get("attention_version") == "TTAME" and backbone.family == "vit"
    explainer = TTAME(backbone, our_layers(parts.hparams.get("layers"), backbone), gate_with_class_token=gate)
    mapped = map_state(parts.attention, explainer)
    explainer.attention.load_state_dict(mapped)
    return explainer


def backbone_differences(parts: AuthorsCheckpoint, backbone: Backbone, atol: float = 0.0) -> list[str]:
    """Names of backbone tensors stored in the authors' file that differ from ``backbone``'s.

    Their training left the frozen backbone in train mode, so a ResNet's BatchNorm running
    statistics in their file can differ from torchvision's: this lists them, for the record.
    """
    ours = backbone.model.state_dict()
    return sorted(
        name
        for name, tensor in parts.backbone_state.items()
        if name in ours
        and (
            tensor.shape != ours[name].shape
            or not torch.allclose(tensor.float().cpu(), ours[name].float().cpu(), atol=atol, rtol=0)
        )
    )
