import math

import pytest
import torch

from ttame_lib import LossWeights, TTAMELoss, area_loss, total_variation


def test_total_variation_2x2_by_hand():
    maps = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])
    # dy: (2-0)^2 + (3-1)^2 = 8; dx: (1-0)^2 + (3-2)^2 = 2; all four pixels are border: 0+1+4+9 = 14
    assert total_variation(maps).item() == pytest.approx((8 + 2 + 0.3 * 14) / 2)


def test_total_variation_3x3_excludes_the_interior_from_the_border_term():
    maps = torch.zeros(2, 3, 3)
    maps[0, 1, 1] = 1.0  # one interior pixel: 4 unit jumps, no border mass
    maps[1, 0, 0] = 2.0  # one corner pixel: 2 jumps of 2, border mass 4
    # sum dy^2 + dx^2 = 4 + 8 = 12; border = 4; divided by 2 * B = 4
    assert total_variation(maps).item() == pytest.approx((12 + 0.3 * 4) / 4)


def test_area_by_hand():
    maps = torch.tensor([[[0.0, 1.0], [0.25, 0.5]]])
    expected = sum((v + 0.0005) ** 0.3 for v in (0.0, 1.0, 0.25, 0.5)) / 4
    assert area_loss(maps, 0.3).item() == pytest.approx(expected, rel=1e-6)


def test_total_loss_combines_terms_with_paper_lambdas():
    logits = torch.tensor([[2.0, 0.0]])
    targets = torch.tensor([0])
    maps = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])
    total, terms = TTAMELoss(regularize="own")(logits, targets, maps)
    ce = math.log(1 + math.exp(-2.0))
    area = sum((v + 0.0005) ** 0.3 for v in (0.0, 1.0, 2.0, 3.0)) / 4
    tv = (8 + 2 + 0.3 * 14) / 2
    assert terms["ce"].item() == pytest.approx(ce, rel=1e-6)
    assert terms["area"].item() == pytest.approx(area, rel=1e-6)
    assert terms["tv"].item() == pytest.approx(tv, rel=1e-6)
    assert total.item() == pytest.approx(1.5 * ce + 2.0 * area + 0.01 * tv, rel=1e-6)


def test_lambdas_are_parameters():
    weights = LossWeights(tv=0.0, area=1.0, ce=0.0, area_power=1.0)
    maps = torch.full((1, 4, 4), 0.5)
    total, _ = TTAMELoss(weights, regularize="own")(torch.zeros(1, 3), torch.tensor([1]), maps)
    assert total.item() == pytest.approx(0.5005)
    assert LossWeights() == LossWeights(tv=0.01, area=2.0, ce=1.5, area_power=0.3)
