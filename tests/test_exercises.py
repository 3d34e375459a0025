"""genimg_lib.exercises: every checker accepts the right answer, computed here by another route
than the checker's (a closed form, numpy instead of torch, Gaussian conditioning instead of the
library's posterior, scipy's sqrtm instead of torchmetrics), and rejects at least two plausible
wrong answers (an obvious guess, a classic slip). A blank ``...`` is "not answered"; an unknown
key is an error; the keys are the chapters' file names, in book order."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import scipy.linalg
import torch
from torch.distributions import MultivariateNormal

from conftest import ROOT
from genimg_lib import data, exercises
from genimg_lib.checkpoints import load_model
from genimg_lib.measures import extract_features


def _phi(t: float) -> float:
    """The standard normal CDF, through math.erf."""
    return 0.5 * (1 + math.erf(t / math.sqrt(2)))


def _normal_pdf(x: float, mean: float, std: float) -> float:
    return math.exp(-((x - mean) ** 2) / (2 * std**2)) / (math.sqrt(2 * math.pi) * std)


def _kl_diag(mu, var) -> float:
    """KL(N(mu, diag var) || N(0, I)) written out, plain floats."""
    return 0.5 * sum(m * m + v - math.log(v) - 1 for m, v in zip(mu, var))


# ---------------------------------------------------------------------------
# One entry per checker: (right answer, [plausible wrong answers])
# ---------------------------------------------------------------------------
def getting_started_1():
    images, labels = data._mnist5k_arrays()  # the raw uint8 file, read with numpy
    train_idx, test_idx = data.stratified_split(labels, data.MNIST5K_TEST_PER_CLASS, seed=0)
    ones = train_idx[labels[train_idx] == 1]
    right = images[ones].astype(np.float64).mean() / 255
    all_train = images[train_idx].astype(np.float64).mean() / 255
    test_ones = images[test_idx[labels[test_idx] == 1]].astype(np.float64).mean() / 255
    return right, [all_train, test_ones, right * 255]  # every digit; the test split; pixels in 0..255


def getting_started_2():
    s = 0.05
    modes = [(2 * math.cos(2 * math.pi * k / 8), 2 * math.sin(2 * math.pi * k / 8)) for k in range(8)]
    right = sum(math.exp(-((2 - a) ** 2 + b**2) / (2 * s**2)) / (2 * math.pi * s**2) / 8 for a, b in modes)
    return right, [1 / (2 * math.pi * s**2), 1 / 8 / (math.sqrt(2 * math.pi) * s), math.log(right)]  # no 1/8; 1-D; log


def generative_models_1():
    right = 100 / (784 * math.log(2))
    return right, [100 / 784, 100 / math.log(2), 100 * math.log(2) / 784]  # nats; not per pixel; times ln 2


def generative_models_2():
    entropy = 0.5 * math.log(2 * math.pi * math.e * 2.0**2)  # N(0, 2^2)
    return -entropy, [entropy, -0.5 * math.log(2 * math.pi * math.e * 2.0), -0.5 * math.log(2 * math.pi * math.e)]


def vae_01_autoencoders_1():
    D, w, sigma2 = 784, 0.1, 0.01
    right = math.sqrt(sigma2 / (D * w**2 + sigma2))
    return right, [1.0, right**2, math.sqrt(sigma2 / (w**2 + sigma2))]  # the prior; the variance; forgot D


def vae_01_autoencoders_2():
    # At x = mu, p(x|z) = c exp(-a z^2 / 2) with a = D w^2 / sigma^2: E[p] = c / sqrt(1 + a),
    # E[p^2] = c^2 / sqrt(1 + 2a); K = relative variance / 0.1^2.
    a = 784 * 0.1**2 / 0.01
    rho = (1 + a) / math.sqrt(1 + 2 * a) - 1
    return rho / 0.01, [rho, rho / 0.1, (rho + 1) / 0.01]  # one draw; 0.1 not squared; forgot the -1


def vae_02_elbo_1():
    mu, logvar = (1.0, -0.5), (0.0, -1.0)
    right = _kl_diag(mu, [math.exp(lv) for lv in logvar])
    sigma_for_var = 0.5 * sum(m * m + math.exp(lv / 2) - lv / 2 - 1 for m, lv in zip(mu, logvar))
    return right, [2 * right, sigma_for_var, right + 1]  # forgot the 1/2; sigma for sigma^2; forgot the -1s


def _chapter_ppca():
    """The model of section 3 of "Deriving the ELBO", as the chapter builds it."""
    D, d, sigma2 = 10, 2, 0.25
    g = torch.Generator().manual_seed(1)
    W = torch.randn(D, d, generator=g, dtype=torch.float64)
    mu_x = torch.randn(D, generator=g, dtype=torch.float64)
    z_true = torch.randn(5, d, generator=g, dtype=torch.float64)
    x = z_true @ W.T + mu_x + math.sqrt(sigma2) * torch.randn(5, D, generator=g, dtype=torch.float64)
    return W, mu_x, sigma2, x


def vae_02_elbo_2():
    # gap = log p(x) - ELBO(q) with q = N(0, I): both in closed form, no posterior needed.
    W, mu_x, sigma2, x = _chapter_ppca()
    D, d = W.shape
    x0 = x[0]
    C = W @ W.T + sigma2 * torch.eye(D, dtype=torch.float64)
    log_px = MultivariateNormal(mu_x, covariance_matrix=C).log_prob(x0).item()
    # E_q[log N(x; Wz + mu, sigma2 I)] with z ~ N(0, I); KL(q || p(z)) = 0
    elbo = -0.5 * D * math.log(2 * math.pi * sigma2) - ((x0 - mu_x).pow(2).sum() + torch.trace(W @ W.T)).item() / (2 * sigma2)
    right = log_px - elbo
    # the other KL order, KL(p(z|x) || q), with p(z|x) from conditioning the joint Gaussian of (z, x)
    gain = W.T @ torch.linalg.inv(C)
    post_mean, post_cov = gain @ (x0 - mu_x), torch.eye(d, dtype=torch.float64) - gain @ W
    reverse = 0.5 * (torch.trace(post_cov) + post_mean @ post_mean - d - torch.logdet(post_cov)).item()
    return right, [reverse, -elbo, log_px]


def vae_02_elbo_3():
    sigma = math.sqrt(0.5)  # SSE / (2 sigma^2) = SSE
    constant = 784 / 2 * math.log(2 * math.pi * sigma**2)  # -log p(x|z) at zero error
    return (sigma, constant), [(1.0, 392 * math.log(2 * math.pi)), (0.5, constant), (sigma, 2 * constant), (sigma, 0.0)]


def vae_03_building_1():
    mu, var = (1.0, 0.0, -1.0), (1.0, 4.0, 0.25)
    right = _kl_diag(mu, var)
    with_sigma = _kl_diag(mu, [math.sqrt(v) for v in var])
    return right, [2 * right, with_sigma, right + 1.5]  # forgot the 1/2; sigma for sigma^2; forgot the -1s


def vae_03_building_2():
    fc = 16 * 64 * 7 * 7 + 64 * 7 * 7          # Linear(16, 2c * 7 * 7), c = 32
    deconv1 = 64 * 32 * 4 * 4 + 32              # ConvTranspose2d(64, 32, 4)
    deconv2 = 32 * 1 * 4 * 4 + 1                # ConvTranspose2d(32, 1, 4)
    no_bias = 16 * 64 * 49 + 64 * 32 * 16 + 32 * 16
    no_map = (16 * 64 + 64) + deconv1 + deconv2  # forgot the 7 x 7 of the linear layer's output
    return fc + deconv1 + deconv2, [no_bias, no_map, fc + deconv1 + deconv2 + 1]


def _test_codes(name: str) -> np.ndarray:
    model = load_model(name)
    x, _ = data.load_mnist5k("test", binarize="static")
    with torch.no_grad():
        mu, _ = model.encode(x)
    return mu.double().numpy()


def vae_04_latent_space_1():
    mu = _test_codes("vae_mlp_z2")
    lo, hi = np.percentile(mu, 1, axis=0), np.percentile(mu, 99, axis=0)  # linear interpolation, as torch.quantile
    axis_mass = [_phi(h) - _phi(l) for l, h in zip(lo, hi)]
    box = axis_mass[0] * axis_mass[1]
    # the box's mass; one axis only (forgot the product); "1 % cut on each side of each axis"
    return 1 - box, [box, 1 - axis_mass[0], 1 - 0.98**2]


def vae_04_latent_space_2():
    mu = _test_codes("vae_conv_z16")
    right = int((mu.var(axis=0, ddof=1) > 0.01).sum())
    return right, [right - 1, 0]


def gan_01_objective_1():
    # disjoint supports: JSD = log 2, so C(G) = -log 4 + 2 log 2 = 0
    right = -math.log(4) + 2 * math.log(2)
    return right, [-math.log(4), math.log(2), 2 * math.log(2)]


def gan_01_objective_2():
    p_data, p_g = _normal_pdf(0.0, 0.0, 1.0), _normal_pdf(0.0, 2.0, 1.0)
    return p_data / (p_data + p_g), [0.5, p_data, p_g / (p_data + p_g)]


def gan_01_objective_3():
    d = 0.01
    right = (-d, d - 1)  # d/dl log(1 - sigmoid(l)) = -D; d/dl -log sigmoid(l) = D - 1
    return right, [(d - 1, -d), (d, 1 - d), (-1 / (1 - d), -1 / d)]  # swapped; signs; with respect to D


def gan_02_watch_1():
    # samples uniform on the circle of radius 2: high quality within 3 sigma = 0.15 of a mode,
    # the arc where the chord 2 R sin(angle / 2) <= 0.15, on both sides of each of 8 modes
    half_angle = 2 * math.asin(0.15 / (2 * 2.0))
    right = 8 * 2 * half_angle / (2 * math.pi)
    return right, [8 * 2 * 0.15 / (2 * math.pi), right / 2, 1 - math.exp(-4.5)]  # 0.15 as an angle; one side; the data's


def gan_02_watch_2():
    # one mode, std 2 sigma: P(r <= 3 sigma) = 1 - exp(-(3 sigma)^2 / (2 (2 sigma)^2)) = 1 - exp(-9/8)
    hq = 1 - math.exp(-9 / 8)
    return (1, hq), [(1, 1 - math.exp(-4.5)), (8, hq), (1, 1 - math.exp(-9 / 4))]  # std sigma; 8 modes; no 1/2


def gan_03_dcgan_1():
    w = 64
    right = (1 * w * 16 + w) + (w * 2 * w * 16 + 2 * w) + (2 * w * 7 * 7 + 1)
    no_bias = 1 * w * 16 + w * 2 * w * 16 + 2 * w * 7 * 7
    half_width = (1 * 32 * 16 + 32) + (32 * 64 * 16 + 64) + (64 * 49 + 1)
    three_by_three = (1 * w * 9 + w) + (w * 2 * w * 9 + 2 * w) + (2 * w * 49 + 1)
    return right, [no_bias, half_width, three_by_three]


def gan_03_dcgan_2():
    return -math.log(0.1), [math.log(0.1), -math.log(0.9), math.log(0.9)]  # sign; log(1 - D) forms


def gan_04_making_gans_train_1():
    # quantiles differ by 1 + eps, eps ~ N(0, 1): W1 = E|1 + eps|, the folded normal's mean
    right = math.sqrt(2 / math.pi) * math.exp(-0.5) + (1 - 2 * _phi(-1.0))
    return right, [1.0, math.sqrt(2), 1 + math.sqrt(2 / math.pi)]  # the shift only; W2; shift + E|eps|


def gan_04_making_gans_train_2():
    # W^T W = [[25, 20], [20, 25]]: eigenvalues 45 and 5
    return math.sqrt(45), [math.sqrt(9 + 16 + 25), 5.0, 45.0]  # Frobenius; an entry; not the square root


def evaluation_1():
    right = math.log(100) / (784 * math.log(2))
    return right, [math.log2(100), math.log(100) / 784, 100 / (784 * math.log(2))]  # per image; nats; 100 not log 100


def evaluation_2():
    # k = 1 radii: 1, 1, 1, 1 for 0..3 and 17 for the outlier at 20; fakes 0.5 and 12 inside, 40 outside
    return 2 / 3, [1.0, 1 / 3, 0.5]  # forgot the far fake; forgot the outlier's ball


def evaluation_3():
    x, _ = data.load_mnist5k("test")
    fa, fb = extract_features(x[:500]).double().numpy(), extract_features(x[500:]).double().numpy()
    mu_a, mu_b = fa.mean(0), fb.mean(0)
    cov_a, cov_b = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    mean_term = float(((mu_a - mu_b) ** 2).sum())
    right = mean_term + float(np.trace(cov_a + cov_b - 2 * scipy.linalg.sqrtm(cov_a @ cov_b).real))
    return right, [0.0, mean_term, 2 * right]  # "same distribution"; forgot the covariance term


ANSWERS = {
    "getting_started.1": getting_started_1,
    "getting_started.2": getting_started_2,
    "generative_models.1": generative_models_1,
    "generative_models.2": generative_models_2,
    "vae_01_autoencoders.1": vae_01_autoencoders_1,
    "vae_01_autoencoders.2": vae_01_autoencoders_2,
    "vae_02_elbo.1": vae_02_elbo_1,
    "vae_02_elbo.2": vae_02_elbo_2,
    "vae_02_elbo.3": vae_02_elbo_3,
    "vae_03_building.1": vae_03_building_1,
    "vae_03_building.2": vae_03_building_2,
    "vae_04_latent_space.1": vae_04_latent_space_1,
    "vae_04_latent_space.2": vae_04_latent_space_2,
    "gan_01_objective.1": gan_01_objective_1,
    "gan_01_objective.2": gan_01_objective_2,
    "gan_01_objective.3": gan_01_objective_3,
    "gan_02_watch.1": gan_02_watch_1,
    "gan_02_watch.2": gan_02_watch_2,
    "gan_03_dcgan.1": gan_03_dcgan_1,
    "gan_03_dcgan.2": gan_03_dcgan_2,
    "gan_04_making_gans_train.1": gan_04_making_gans_train_1,
    "gan_04_making_gans_train.2": gan_04_making_gans_train_2,
    "evaluation.1": evaluation_1,
    "evaluation.2": evaluation_2,
    "evaluation.3": evaluation_3,
}


def test_every_checker_is_tested_with_right_and_wrong_answers():
    """Parts I-IV answer here; a part written in parallel keeps its answers in its own
    tests/test_exercises_<part>.py (each checker there also gets >= 2 wrong answers)."""
    from conftest import ROOT

    assert set(ANSWERS) <= set(exercises.checker_keys())
    elsewhere = "".join(p.read_text() for p in (ROOT / "tests").glob("test_exercises_*.py"))
    untested = [k for k in exercises.checker_keys() if k not in ANSWERS and f'"{k}"' not in elsewhere]
    assert not untested, f"checkers without a test of right and wrong answers: {untested}"


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # evaluation.3: features that are 0 on every image
@pytest.mark.parametrize("key", list(ANSWERS))
def test_checker_accepts_the_right_answer_and_rejects_plausible_wrong_ones(key):
    right, wrongs = ANSWERS[key]()
    verdict, message = exercises.grade(key, right)
    assert (verdict, message) == ("correct", ""), (key, right, message)
    assert len(wrongs) >= 2
    for wrong in wrongs:
        verdict, message = exercises.grade(key, wrong)
        assert verdict == "wrong", (key, wrong)
        assert message and "could not check" not in message  # graded, with a hint
    assert exercises.grade(key, ...)[0] == "not answered"


def test_the_old_tuple_answer_of_vae_02_elbo_2_is_wrong_not_a_crash():
    """vae_02_elbo.2 now takes the gap alone; the old (W, mu, sigma2, x, gap) is a malformed answer."""
    W, mu_x, sigma2, x = _chapter_ppca()
    gap, _ = vae_02_elbo_2()
    verdict, message = exercises.grade("vae_02_elbo.2", (W, mu_x, sigma2, x[0], gap))
    assert verdict == "wrong" and message.startswith("could not check this answer: TypeError")


def test_malformed_answers_are_wrong_with_the_reason():
    verdict, message = exercises.grade("getting_started.2", "a lot")
    assert verdict == "wrong" and "could not check this answer: ValueError" in message
    verdict, message = exercises.grade("gan_02_watch.2", 0.675)  # a number where a pair is asked
    assert verdict == "wrong" and "could not check this answer: TypeError" in message


def test_unknown_key_is_an_error():
    with pytest.raises(ValueError, match=r"unknown exercise 'nope.1'; known: \['getting_started.1'"):
        exercises.grade("nope.1", 0)
    with pytest.raises(ValueError, match="unknown exercise 'vae_elbo.1'"):  # the key before the chapters were numbered
        exercises.check("vae_elbo.1", 0)


def test_check_prints_the_verdict_returns_none_and_records_it(capsys):
    right, wrongs = generative_models_1()
    assert exercises.check("generative_models.1", wrongs[0]) is None
    out = capsys.readouterr().out
    assert out.startswith("generative_models.1: not yet. ") and "ln 2" in out
    assert exercises.verdicts()["generative_models.1"]["verdict"] == "wrong"
    assert exercises.check("generative_models.1", right) is None
    assert capsys.readouterr().out == "generative_models.1: correct.\n"
    exercises.check("generative_models.1", ...)
    assert capsys.readouterr().out.startswith("generative_models.1: not answered yet (replace ... with your answer)")
    recorded = exercises.verdicts()
    assert recorded["generative_models.1"] == {"verdict": "not answered",
                                               "message": "(replace ... with your answer)"}
    recorded["generative_models.1"]["verdict"] = "correct"  # a copy: the record cannot be edited from outside
    assert exercises.verdicts()["generative_models.1"]["verdict"] == "not answered"


def test_keys_are_chapter_file_names_in_book_order():
    toc = (ROOT / "_toc.yml").read_text()
    chapters = [c for c in re.findall(r"file: book/(\w+)", toc) if (ROOT / "book" / f"{c}.ipynb").exists()]
    keys = exercises.checker_keys()
    key_chapters = [k.rsplit(".", 1)[0] for k in keys]
    assert set(key_chapters) <= set(chapters)
    order = [chapters.index(c) for c in key_chapters]
    assert order == sorted(order), "checkers are not in the order of _toc.yml"
    for chapter in dict.fromkeys(key_chapters):
        numbers = [int(k.rsplit(".", 1)[1]) for k in exercises.checker_keys(chapter)]
        assert numbers == list(range(1, len(numbers) + 1)), chapter
    assert exercises.checker_keys("vae_02_elbo") == ["vae_02_elbo.1", "vae_02_elbo.2", "vae_02_elbo.3"]
    assert exercises.checker_keys("no_such_chapter") == []


def test_a_key_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="'getting_started.1' is registered twice"):
        exercises.exercise("getting_started.1")(lambda answer: (True, ""))
