"""Distillation used to train the offline world's ViT: soft logits and dense feature maps."""

from __future__ import annotations

import pytest
import torch

from ttame_lib.errors import InputError, LayerNotFoundError
from ttame_lib.world.distillation import FeatureDistillation, logit_distillation, parse_layer_pairs
from ttame_lib.world.scene_backbones import build_scene_model

PAIRS = [("blocks.2", "layer2"), ("blocks.5", "layer4")]


def test_logit_distillation_is_zero_only_when_student_matches_teacher():
    teacher = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    assert float(logit_distillation(teacher.clone(), teacher)) == pytest.approx(0.0, abs=1e-6)
    assert float(logit_distillation(teacher.flip(1), teacher)) > 0.1


def test_parse_layer_pairs():
    assert parse_layer_pairs(["blocks.2:layer2", "blocks.5:layer4"]) == PAIRS
    for bad in ["blocks.2", ":layer2", "blocks.2:"]:
        with pytest.raises(InputError, match="STUDENT_LAYER:TEACHER_LAYER"):
            parse_layer_pairs([bad])


def test_feature_distillation_trains_the_student_only_and_its_loss_falls():
    torch.manual_seed(0)
    student, teacher = build_scene_model("scenes_vit"), build_scene_model("scenes_cnn")
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    distiller = FeatureDistillation(student, teacher, PAIRS, (64, 64))
    # ViT tokens (192 channels on the 8x8 patch grid) project to the teacher's channels.
    assert [p.out_channels for p in distiller.projections] == [128, 512]
    assert [p.in_channels for p in distiller.projections] == [192, 192]
    images = torch.rand(4, 3, 64, 64)
    params = list(student.parameters()) + list(distiller.projections.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-3)
    losses = []
    for _ in range(15):
        logits, teacher_logits, loss = distiller(images, images)
        assert logits.shape == teacher_logits.shape == (4, 12)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert student.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert losses[-1] < 0.7 * losses[0]
    for name, value in teacher.state_dict().items():
        assert torch.equal(value, teacher_before[name]), name
    assert not teacher.training
    distiller.close()
    for network in (student, teacher):
        assert all(not m._forward_hooks for m in network.modules())


def test_feature_distillation_errors_name_the_problem():
    student, teacher = build_scene_model("scenes_vit"), build_scene_model("scenes_cnn")
    with pytest.raises(LayerNotFoundError, match="layer9"):
        FeatureDistillation(student, teacher, [("blocks.2", "layer9")], (64, 64))
    with pytest.raises(InputError, match="at least one"):
        FeatureDistillation(student, teacher, [], (64, 64))
    # A ViT teacher's token sequences are not (B, C, H, W) maps.
    with pytest.raises(InputError, match="blocks.1"):
        FeatureDistillation(teacher, student, [("layer2", "blocks.1")], (64, 64))


def test_several_student_layers_can_learn_from_one_teacher_layer():
    student, teacher = build_scene_model("scenes_vit"), build_scene_model("scenes_cnn")
    distiller = FeatureDistillation(student, teacher, [("blocks.1", "layer2"), ("blocks.2", "layer2")], (64, 64))
    assert distiller.teacher.layers == ["layer2"]
    assert [p.out_channels for p in distiller.projections] == [128, 128]
    _, _, loss = distiller(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64))
    assert torch.isfinite(loss) and loss > 0
