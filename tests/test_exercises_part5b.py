"""The checkers of Part V's chapters 3, 4 and 5 (Inversion; Inpainting and denoising; the latent studio) accept the right
answer, computed here by another route (numpy least squares on an augmented system, scipy's chi
distribution, numpy PSNR), and reject plausible slips. Kept apart from tests/test_exercises.py so
that the chapters of Part V can be written in parallel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from genimg_lib import data
from genimg_lib.exercises import CORRECT, WRONG, checker_keys, grade


def test_the_chapters_have_three_checkers_each():
    assert checker_keys("edit_03_inversion") == [f"edit_03_inversion.{i}" for i in (1, 2, 3)]
    assert checker_keys("edit_04_inpainting") == [f"edit_04_inpainting.{i}" for i in (1, 2, 3)]
    assert checker_keys("edit_05_studio") == [f"edit_05_studio.{i}" for i in (1, 2, 3)]


def _linear_decoder_case():
    import torch

    W = (0.02 * torch.randn(784, 5, generator=torch.Generator().manual_seed(0))).double().numpy()
    x_test, _ = data.load_mnist5k("test")
    return W, x_test[0].flatten().double().numpy(), 0.5, 0.1


def edit_03_inversion_2():
    W, x, b, lam = _linear_decoder_case()
    # ridge as least squares on the augmented system [W; sqrt(lam/2) I] z = [x - b; 0]
    A = np.vstack([W, math.sqrt(lam / 2) * np.eye(5)])
    right = np.linalg.lstsq(A, np.concatenate([x - b, np.zeros(5)]), rcond=None)[0]
    with_lam = np.linalg.solve(W.T @ W + lam * np.eye(5), W.T @ (x - b))  # lambda, not lambda / 2
    no_prior = np.linalg.lstsq(W, x - b, rcond=None)[0]
    no_bias = np.linalg.solve(W.T @ W + lam / 2 * np.eye(5), W.T @ x)  # forgot b
    return right, [with_lam, no_prior, no_bias, right[:4]]


def edit_04_inpainting_3():
    images, labels = data._mnist5k_arrays()  # the raw file, read with numpy
    train_idx, test_idx = data.stratified_split(labels, data.MNIST5K_TEST_PER_CLASS, seed=0)
    x = images[test_idx[:100], 0].astype(np.float64) / 255
    mean = (images[train_idx, 0].astype(np.float64) / 255).mean(0)
    missing = np.zeros((28, 28), bool)
    missing[8:20, 8:20] = True
    err = (mean - x) ** 2  # the fill differs from x only on the missing pixels
    per_image = [10 * math.log10(1 / e[missing].mean()) for e in err]
    right = float(np.mean(per_image))
    pooled = 10 * math.log10(1 / err[:, missing].mean())  # PSNR of the mean MSE
    all_pixels = float(np.mean([10 * math.log10(1 / (e * missing).mean()) for e in err]))
    return right, [pooled, all_pixels, 10 * math.log10(1 / err[0][missing].mean())]


def edit_05_studio_1():
    # solve m + c d = 0.75 z_a + 0.25 z_b for c with numpy, on random endpoints
    rng = np.random.default_rng(0)
    z_a, z_b = rng.normal(size=16), rng.normal(size=16)
    m, d = (z_a + z_b) / 2, (z_b - z_a) / 2
    target = 0.75 * z_a + 0.25 * z_b
    right = float(np.linalg.lstsq(d[:, None], target - m, rcond=None)[0][0])
    return right, [0.25, -0.25, 0.5, -0.75]  # slips: t itself, t - 1/2, 1 - 2t, t - 1


def edit_05_studio_2():
    # u1, u2 unit vectors in 5-D with u1 . u2 = 0.6; moving slider 1 by 1 adds u1
    u1 = np.array([1.0, 0, 0, 0, 0])
    u2 = np.array([0.6, 0.8, 0, 0, 0])
    coeffs = np.linalg.lstsq(np.stack([u1, u2], axis=1), u1, rcond=None)[0]  # u1 = c1 u1 + c2 u2
    right = (float(coeffs[1]), float(u1 @ u2))
    # slips: the projection read as the slider, no movement at all, the two swapped
    return right, [(0.6, 0.6), (0.0, 0.0), (0.6, 0.0)]


CASES = {
    # the first step moves each of 64 coordinates by lr: 0.1 sqrt(64); slips: lr, lr * d, lr^2 * sqrt(d) ...
    "edit_03_inversion.1": lambda: (0.1 * math.sqrt(64), [0.1, 6.4, 0.08, 1.0]),
    "edit_03_inversion.2": edit_03_inversion_2,
    # P(chi_64 >= 11); slips: the square forgotten (P(chi2_64 >= 11)), the VAE's d = 16, the interval's tail
    "edit_03_inversion.3": lambda: (scipy.stats.chi.sf(11, 64),
                                    [scipy.stats.chi2.sf(11, 64), scipy.stats.chi.sf(11, 16), 0.005]),
    # 10 log10(784 / 144); slips: the random mask's 3.01 dB, no difference, the sign
    "edit_04_inpainting.1": lambda: (10 * math.log10(784 / 144), [10 * math.log10(2), 0.0, -10 * math.log10(784 / 144)]),
    # lambda = 2 sigma^2 for sigma = 0.3; slips: sigma^2, sigma, 1 / (2 sigma^2)
    "edit_04_inpainting.2": lambda: (2 * 0.3**2, [0.3**2, 0.3, 1 / (2 * 0.3**2)]),
    "edit_04_inpainting.3": edit_04_inpainting_3,
    "edit_05_studio.1": edit_05_studio_1,
    "edit_05_studio.2": edit_05_studio_2,
    # sqrt(8^2 + 3^2); slips: the lengths added, the norm kept (renorm), 3 not squared
    "edit_05_studio.3": lambda: (math.hypot(8, 3), [11.0, 8.0, math.sqrt(64 + 3)]),
}


def test_every_checker_of_these_chapters_has_a_case():
    assert set(CASES) == set(
        checker_keys("edit_03_inversion") + checker_keys("edit_04_inpainting") + checker_keys("edit_05_studio")
    )


@pytest.mark.parametrize("key", list(CASES))
def test_checkers_accept_the_answer_and_reject_slips(key):
    right, wrongs = CASES[key]()
    assert grade(key, right) == (CORRECT, ""), grade(key, right)
    assert len(wrongs) >= 2
    for wrong in wrongs:
        verdict, message = grade(key, wrong)
        assert verdict == WRONG and message and "could not check" not in message, (key, wrong, message)
    assert grade(key, ...)[0] == "not answered"


def test_a_code_of_the_wrong_size_is_wrong_with_the_reason():
    verdict, message = grade("edit_03_inversion.2", [1.0, 2.0])
    assert verdict == WRONG and message == "expected 5 numbers (one code), got (2,)."
