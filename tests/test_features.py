import pytest
import torch

from ttame_lib import TTAME, FeatureExtractor, LayerNotFoundError


def test_unknown_layer_lists_valid_names_and_suggests(small_cnn):
    with pytest.raises(LayerNotFoundError) as info:
        TTAME(small_cnn, layers=["layer3", "layer5"])
    message = str(info.value)
    assert "'layer5'" in message
    assert "did you mean" in message
    for valid in ("layer1", "layer4.1.conv2", "fc"):
        assert f"\n  {valid}\n" in message or message.endswith(f"\n  {valid}")


def test_one_forward_returns_the_plain_logits_and_the_hooked_maps(small_cnn):
    extractor = FeatureExtractor(small_cnn.model, ["layer2", "layer4"])
    x = small_cnn.normalize(torch.rand(2, 3, 64, 64))
    with torch.no_grad():
        logits, features = extractor(x)
        assert torch.equal(logits, small_cnn.model(x))
    assert [tuple(f.shape) for f in features] == [(2, 128, 8, 8), (2, 512, 2, 2)]
    extractor.close()


def test_hooks_are_inactive_outside_calls_and_removable(small_cnn):
    before = sum(len(m._forward_hooks) for m in small_cnn.model.modules())
    extractor = FeatureExtractor(small_cnn.model, ["layer2"])
    with torch.no_grad():
        small_cnn.model(torch.rand(1, 3, 32, 32))
    assert extractor._outputs == {}
    extractor.close()
    assert sum(len(m._forward_hooks) for m in small_cnn.model.modules()) == before
