"""The checkers of Part V's first two chapters accept the right answer and reject plausible wrong ones.

Kept apart from tests/test_exercises.py so that the chapters of Part V can be written in
parallel; each checker gets the correct answer and at least two classic slips.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genimg_lib import edit
from genimg_lib.exercises import CORRECT, WRONG, checker_keys, grade


def chi2_answer() -> float:
    from scipy.stats import chi2

    return float(chi2.cdf(2 * chi2.ppf(0.01, 64), 64))


def test_the_chapters_have_three_checkers_each():
    assert checker_keys("edit_01_interpolation") == [f"edit_01_interpolation.{i}" for i in (1, 2, 3)]
    assert checker_keys("edit_02_attributes") == [f"edit_02_attributes.{i}" for i in (1, 2, 3)]


@pytest.mark.parametrize(
    "key, right, wrongs",
    [
        # E||lerp(z0, z1, 1/4)||^2 = 64 (9/16 + 1/16) = 40; slips: the norm is kept (64), the
        # midpoint's 32, a variance 1 - t (48), or the norm instead of its square (sqrt 40)
        ("edit_01_interpolation.1", 40.0, [64.0, 32.0, 48.0, math.sqrt(40)]),
        # slips: "1 % of them" (the prior's own share), a coin flip, "all of them"
        ("edit_01_interpolation.2", None, [0.01, 0.5, 1.0]),
        # sqrt(17); slips: the mean of the norms (4), the lerp midpoint (2.915), sqrt(3 * 5)
        ("edit_01_interpolation.3", math.sqrt(17), [4.0, math.hypot(1.5, 2.5), math.sqrt(15)]),
        # |w| ~ sqrt(5); slips: the largest coefficient, the sum of |coefficients|, |w|^2
        ("edit_02_attributes.1", None, [2.0, 3.0, 5.0]),
        # atan(0.8) = 38.66 degrees; slips: none (0), 45, atan(0.75) = 36.87, radians (0.675)
        ("edit_02_attributes.2", math.degrees(math.atan(0.8)), [0.0, 45.0, 36.87, math.atan(0.8)]),
        # 3 * 8 / sqrt(73) = 2.809; slips: no shrink (3), the new norm (8.544), 3 * 64 / 73
        ("edit_02_attributes.3", 24 / math.sqrt(73), [3.0, math.sqrt(73), 3 * 64 / 73]),
    ],
)
def test_checkers_accept_the_answer_and_reject_slips(key, right, wrongs):
    if key == "edit_01_interpolation.2":
        right = chi2_answer()
    if key == "edit_02_attributes.1":
        from genimg_lib.exercises import _exercise_codes

        z, a = _exercise_codes()
        right = edit.regression_direction(z, a).predicted_slope  # the library's way, as in the chapter
    assert grade(key, right)[0] == CORRECT, grade(key, right)
    for wrong in wrongs:
        assert grade(key, wrong)[0] == WRONG, (key, wrong)
    assert grade(key, "not a number")[0] == WRONG


def test_the_answers_are_what_the_chapter_computes():
    """The numbers behind the checkers, from the library and by simulation."""
    g = torch.Generator().manual_seed(1)
    z0, z1 = torch.randn(20000, 64, generator=g), torch.randn(20000, 64, generator=g)
    sq = edit.lerp(z0, z1, 0.25).pow(2).sum(1).mean().item()
    assert abs(sq - 40) < 0.3
    prior_q01 = torch.quantile(z0.norm(dim=1), 0.01)
    share = (edit.lerp(z0, z1, 0.5).norm(dim=1) < prior_q01).float().mean().item()
    assert abs(share - chi2_answer()) < 0.01
    mid = edit.slerp(torch.tensor([3.0, 0.0]), torch.tensor([0.0, 5.0]), 0.5)
    assert abs(mid.norm().item() - math.sqrt(17)) < 1e-5
    # exercise 2 of the attributes chapter, by sampling: difference of means against regression
    cov = torch.tensor([[1.0, 0.8], [0.8, 1.0]])
    z = torch.randn(40000, 2, generator=g) @ torch.linalg.cholesky(cov).T
    dm = edit.mean_difference_direction(z, z[:, 0]).vector
    reg = edit.regression_direction(z, z[:, 0]).vector
    angle = math.degrees(math.acos(float(dm @ reg)))
    assert abs(angle - math.degrees(math.atan(0.8))) < 1.0
    # exercise 3: apply_edit with renorm
    zc = torch.zeros(64)
    zc[0] = 8.0
    u = torch.zeros(64)
    u[1] = 1.0
    assert abs(edit.apply_edit(zc, u, 3.0, renorm=True)[1].item() - 24 / math.sqrt(73)) < 1e-5
    assert np.isclose(edit.apply_edit(zc, u, 3.0, renorm=True).norm().item(), 8.0)
