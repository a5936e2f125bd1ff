"""Distilling a trained scene backbone into another: soft logits and dense feature maps.

Used by ``scripts/train_backbone.py`` to train the offline world's small ViT, which learns
slowly from labels alone on a CPU budget (no ImageNet pretraining is available offline).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones.presets import transformer_geometry
from ..errors import InputError
from ..method.adapter import FeatureMapAdapter, infer_layout
from ..method.features import FeatureExtractor

DISTILL_T = 2.0  # distillation temperature (Hinton et al. 2015)


def logit_distillation(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = DISTILL_T):
    """KL(teacher || student) of the temperature-softened class probabilities, scaled by T² (Hinton et al. 2015)."""
    target = F.log_softmax(teacher_logits / temperature, dim=1)
    student = F.log_softmax(student_logits / temperature, dim=1)
    return temperature**2 * F.kl_div(student, target, log_target=True, reduction="batchmean")


def parse_layer_pairs(pairs: Sequence[str]) -> list[tuple[str, str]]:
    """``["blocks.5:layer4", ...]`` -> ``[("blocks.5", "layer4"), ...]``, with a clear error on a malformed pair."""
    parsed = []
    for pair in pairs:
        student, sep, teacher = pair.partition(":")
        if not sep or not student or not teacher:
            raise InputError(f"expected STUDENT_LAYER:TEACHER_LAYER, e.g. blocks.5:layer4; got {pair!r}")
        parsed.append((student, teacher))
    return parsed


class FeatureDistillation(nn.Module):
    """Dense feature distillation (FitNets, Romero et al. 2015): student maps regress the teacher's.

    Each (student layer, teacher layer) pair gets a trainable 1x1 projection; the student map
    (ViT tokens are laid out on their patch grid first) is average-pooled to the teacher's
    grid and compared, by mean squared error, with the teacher map normalised per position.
    A label says only *which* class a scene shows; the teacher's map says, at every position,
    what a network that already learned locality sees there, which is the inductive bias a
    small ViT lacks. Written here: no installed library offers it for arbitrary timm students and teachers.
    The projections are discarded after training: the saved student is a plain timm model.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        pairs: Sequence[tuple[str, str]],
        input_size: tuple[int, int],
    ):
        super().__init__()
        if not pairs:
            raise InputError("feature distillation needs at least one (student layer, teacher layer) pair")
        self.student = FeatureExtractor(student, [s for s, _ in pairs], "student")
        # Several student layers may learn from the same teacher layer: hook each teacher layer once.
        teacher_layers = list(dict.fromkeys(t for _, t in pairs))
        self.target_index = [teacher_layers.index(t) for _, t in pairs]
        self.teacher = FeatureExtractor(teacher.eval(), teacher_layers, "teacher")
        probe = torch.zeros(1, 3, *input_size)  # shapes only: one forward of each network tells the channel counts
        with torch.no_grad():
            student_outputs = self.student(probe)[1]
            teacher_outputs = self.teacher(probe)[1]
        teacher_maps = [teacher_outputs[i] for i in self.target_index]
        for (_, name), feature in zip(pairs, teacher_maps):
            if feature.ndim != 4:
                raise InputError(f"teacher layer {name!r} gives shape {tuple(feature.shape)}; pick a (B, C, H, W) map")
        # The student's outputs become maps the way T-TAME's own do (ViT tokens on their patch grid).
        patch_size, prefix, _, _ = transformer_geometry(student)
        self.student_maps = FeatureMapAdapter(
            layouts=[
                infer_layout(f.shape, input_size, patch_size is not None, n)
                for (n, _), f in zip(pairs, student_outputs)
            ],
            patch_size=patch_size,
            num_prefix_tokens=prefix,
        )
        student_maps = self.student_maps(student_outputs, input_size)
        self.projections = nn.ModuleList(
            nn.Conv2d(s.shape[1], t.shape[1], kernel_size=1) for s, t in zip(student_maps, teacher_maps)
        )

    def forward(
        self, student_inputs: torch.Tensor, teacher_inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(student logits, teacher logits, mean feature loss over the pairs)."""
        with torch.no_grad():
            teacher_logits, teacher_maps = self.teacher(teacher_inputs)
            # Targets normalised per position, once per teacher layer even when several pairs share it.
            normalised = [F.layer_norm(m.permute(0, 2, 3, 1), m.shape[1:2]).permute(0, 3, 1, 2) for m in teacher_maps]
        logits, features = self.student(student_inputs)
        maps = self.student_maps(features, tuple(student_inputs.shape[-2:]))
        loss = student_inputs.new_zeros(())
        for projection, feature, index in zip(self.projections, maps, self.target_index):
            target = normalised[index]
            loss = loss + F.mse_loss(F.adaptive_avg_pool2d(projection(feature), target.shape[-2:]), target)
        return logits, teacher_logits, loss / len(self.projections)

    def close(self) -> None:
        """Unhook both networks (they are left exactly as they were)."""
        self.student.close()
        self.teacher.close()
