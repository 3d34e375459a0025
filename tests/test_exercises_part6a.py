"""The checkers of Part VI's first two chapters accept the right answer and reject plausible wrong ones.

Kept apart from tests/test_exercises.py so that the chapters of Part VI can be written in
parallel; each checker gets the correct answer, computed independently here, and at least
two classic slips.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import t

from genimg_lib.exercises import CORRECT, WRONG, checker_keys, grade


def test_the_chapters_have_three_checkers_each():
    assert checker_keys("practice_01_vae_vs_gan") == [f"practice_01_vae_vs_gan.{i}" for i in (1, 2, 3)]
    assert checker_keys("practice_02_classification") == [f"practice_02_classification.{i}" for i in (1, 2, 3)]


def _paired_half_width() -> float:
    a = np.array([76.0, 78.5, 74.9, 77.2, 75.4])
    b = np.array([77.1, 79.2, 76.3, 78.0, 76.9])
    d = b - a
    return float(t.ppf(0.975, 4) * d.std(ddof=1) / math.sqrt(5))


def _unpaired_half_width() -> float:  # the slip: each arm's own spread (Welch, pooled df ignored)
    a = np.array([76.0, 78.5, 74.9, 77.2, 75.4])
    b = np.array([77.1, 79.2, 76.3, 78.0, 76.9])
    return float(t.ppf(0.975, 4) * math.sqrt(a.var(ddof=1) / 5 + b.var(ddof=1) / 5))


def _one_nn_accuracy(standardize: bool = True, pixels: bool = False) -> float:
    """1-NN test accuracy with seed 0's 100 labels, written here without genimg_lib.fewlabels."""
    from genimg_lib.checkpoints import load_model
    from genimg_lib.data import load_mnist5k

    x_train, y_train = load_mnist5k("train")
    x_test, y_test = load_mnist5k("test")
    g = torch.Generator().manual_seed(0)
    idx = torch.cat([torch.nonzero(y_train == c).squeeze(1)[torch.randperm(int((y_train == c).sum()), generator=g)[:10]]
                     for c in range(10)])
    if pixels:
        f_train, f_test = x_train.flatten(1), x_test.flatten(1)
    else:
        vae = load_model("vae_conv_z16")
        with torch.no_grad():
            f_train, f_test = vae.encode(x_train)[0], vae.encode(x_test)[0]
        if standardize:
            m, s = f_train.mean(0), f_train.std(0)
            f_train, f_test = (f_train - m) / s, (f_test - m) / s
    nearest = torch.cdist(f_test, f_train[idx]).argmin(1)
    return (y_train[idx][nearest] == y_test).double().mean().item()


@pytest.mark.parametrize(
    "key, right, wrongs",
    [
        # (64 * 7 * 7) * (32 * 4 * 4); slips: counted per output (x4: the stride's zeros), the weights alone,
        # the inputs alone, and one output channel's worth
        ("practice_01_vae_vs_gan.1", 64 * 49 * 32 * 16, [32 * 196 * 64 * 16, 64 * 32 * 16, 64 * 49, 64 * 49 * 16]),
        # -log(0.01) + log(0.3) = 3.401; slips: bits instead of nats, the sharp decoder's cost alone, the sign,
        # the cost of an ink pixel (-log p): -log 0.99 + log 0.7
        ("practice_01_vae_vs_gan.2", -math.log(0.01) + math.log(0.3),
         [(-math.log(0.01) + math.log(0.3)) / math.log(2), -math.log(0.01), math.log(0.01) - math.log(0.3),
          -math.log(0.99) + math.log(0.7)]),
        # 2 log 2 = 1.386; slips: one term only (log 2), the probability 1/2, log 4 in bits (2)
        ("practice_01_vae_vs_gan.3", 2 * math.log(2), [math.log(2), 0.5, 2.0]),
        # slips: the unpaired width, 1.96 instead of t(0.975, 4), no sqrt(5), the population std
        ("practice_02_classification.1", None, [None, "z", "no_sqrt", "ddof0"]),
        # 7850 / 170; slips: without biases (784 / 16 = 49), the counts themselves, the inverse
        ("practice_02_classification.2", 7850 / 170, [49.0, 7850, 170 / 7850]),
        # slips: a percentage, the pixels' 1-NN, raw (unstandardized) codes
        ("practice_02_classification.3", None, ["percent", "pixels", "raw"]),
    ],
)
def test_checkers_accept_the_answer_and_reject_slips(key, right, wrongs):
    if key == "practice_02_classification.1":
        right = _paired_half_width()
        a = np.array([76.0, 78.5, 74.9, 77.2, 75.4])
        b = np.array([77.1, 79.2, 76.3, 78.0, 76.9])
        d = b - a
        wrongs = [_unpaired_half_width(), 1.96 * d.std(ddof=1) / math.sqrt(5),
                  t.ppf(0.975, 4) * d.std(ddof=1), t.ppf(0.975, 4) * d.std(ddof=0) / math.sqrt(5)]
    if key == "practice_02_classification.3":
        right = _one_nn_accuracy()
        wrongs = [100 * right, _one_nn_accuracy(pixels=True), _one_nn_accuracy(standardize=False)]
        assert len({round(w, 4) for w in wrongs[1:]} | {round(right, 4)}) == 3, "the slips must differ from the answer"
    assert grade(key, right)[0] == CORRECT, grade(key, right)
    for wrong in wrongs:
        assert grade(key, wrong)[0] == WRONG, (key, wrong)
    assert grade(key, "not a number")[0] == WRONG
