"""Shared fixtures. Every test runs with the network blocked: nothing may download."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
from PIL import Image

from ttame_lib import TTAME, load_backbone


class NetworkBlocked(OSError):
    pass


def _blocked(*args, **kwargs):
    raise NetworkBlocked("network access is disabled in the test suite")


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path_factory):
    """Fail any socket connection or DNS lookup, and point the model caches at an empty folder."""
    monkeypatch.setattr(socket.socket, "connect", _blocked)
    monkeypatch.setattr(socket.socket, "connect_ex", _blocked)
    monkeypatch.setattr(socket, "getaddrinfo", _blocked)
    monkeypatch.setattr(socket, "create_connection", _blocked)
    cache = tmp_path_factory.mktemp("model-cache")
    monkeypatch.setenv("TORCH_HOME", str(cache / "torch"))
    monkeypatch.setenv("HF_HOME", str(cache / "hf"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    import torch.hub

    monkeypatch.setattr(torch.hub, "_hub_dir", str(cache / "torch" / "hub"))


@pytest.fixture(scope="session")
def small_cnn():
    """torchvision resnet18 with 10 classes (random init): a real CNN that is quick on CPU."""
    return load_backbone("resnet18", num_classes=10)


@pytest.fixture(scope="session")
def small_vit():
    """timm ViT-Tiny at 64x96 (a non-square 4x6 patch grid), 10 classes, random init."""
    return load_backbone("vit_tiny_patch16_224", img_size=(64, 96), num_classes=10)


@pytest.fixture
def images_cnn():
    return torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def images_vit():
    return torch.rand(4, 3, 64, 96, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def cnn_explainer(small_cnn):
    explainer = TTAME(small_cnn)
    yield explainer
    explainer.close()


@pytest.fixture
def vit_explainer(small_vit):
    explainer = TTAME(small_vit)
    yield explainer
    explainer.close()


@pytest.fixture(scope="session")
def imagenet_like(tmp_path_factory):
    """train/ and val/ with three classes of shipped background photos (indoors, nature, outdoors)."""
    root = tmp_path_factory.mktemp("imagenet-like")
    photos = sorted((Path(__file__).resolve().parents[1] / "data" / "backgrounds").glob("*.jpg"))
    for kind in ("indoors", "nature", "outdoors"):
        files = [p for p in photos if p.name.startswith(kind)][:6]
        for split, chosen in (("train", files[:4]), ("val", files[4:6])):
            folder = root / split / f"n0000{len(kind)}_{kind}"
            folder.mkdir(parents=True)
            for path in chosen:
                Image.open(path).convert("RGB").resize((160, 120)).save(folder / path.name)
    return root
