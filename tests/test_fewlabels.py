"""genimg_lib.fewlabels: the few-label experiment's pieces against independent computations.

The logistic regression is checked against scikit-learn's (another solver, the same
objective), against its closed-form gradient at the optimum, and its objective against a
log-sum-exp written out; the paired interval against scipy's paired t-test.
"""

import math

import numpy as np
import pytest
import torch

from genimg_lib import fewlabels as fl
from genimg_lib.models import CVAE, DCGAN, VAE


def _blobs(n_per_class: int = 30, d: int = 5, k: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centres = 2 * torch.randn(k, d, generator=g)
    y = torch.arange(k).repeat_interleave(n_per_class)
    return centres[y] + torch.randn(len(y), d, generator=g), y


def test_choose_labelled_is_balanced_seeded_and_matches_an_inline_choice():
    y = torch.arange(10).repeat(40)[torch.randperm(400, generator=torch.Generator().manual_seed(1))]
    idx = fl.choose_labelled(y, per_class=3, seed=5)
    assert idx.shape == (30,) and len(set(idx.tolist())) == 30
    assert torch.equal(y[idx], torch.arange(10).repeat_interleave(3))
    g = torch.Generator().manual_seed(5)
    inline = torch.cat([torch.nonzero(y == c).squeeze(1)[torch.randperm(40, generator=g)[:3]] for c in range(10)])
    assert torch.equal(idx, inline)
    assert torch.equal(idx, fl.choose_labelled(y, 3, 5)) and not torch.equal(idx, fl.choose_labelled(y, 3, 6))


def test_choose_labelled_refuses_bad_input():
    y = torch.arange(10).repeat(2)
    with pytest.raises(ValueError, match="class 0 has 2 examples, fewer than per_class=3"):
        fl.choose_labelled(y, per_class=3)
    with pytest.raises(ValueError, match="y: expected integer class labels.*y.long()"):
        fl.choose_labelled(y.float())
    with pytest.raises(ValueError, match=r"per_class must be a positive integer \(labelled examples per class\), got 0"):
        fl.choose_labelled(y, per_class=0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        fl.choose_labelled(y, 1, seed=-1)


@pytest.mark.parametrize("l2", [0.01, 0.3])
def test_fit_matches_scikit_learn(l2):
    from sklearn.linear_model import LogisticRegression

    x, y = _blobs()
    fit = fl.fit_softmax_regression(x, y, l2=l2, num_classes=3, tolerance=1e-8)
    sk = LogisticRegression(C=1 / (l2 * len(x)), tol=1e-10, max_iter=10_000).fit(x.double().numpy(), y.numpy())
    np.testing.assert_allclose(fit.W.numpy(), sk.coef_.T, atol=1e-5)
    # the biases are defined up to a common constant (softmax ignores it, and it is not penalised)
    np.testing.assert_allclose((fit.b - fit.b.mean()).numpy(), sk.intercept_ - sk.intercept_.mean(), atol=1e-5)
    assert torch.equal(fit.predict(x), torch.as_tensor(sk.predict(x.double().numpy())))


def test_fit_ends_at_a_zero_of_the_closed_form_gradient_and_reports_its_objective():
    x, y = _blobs(d=4, k=4, seed=2)
    l2 = 0.05
    fit = fl.fit_softmax_regression(x, y, l2=l2, num_classes=4, tolerance=1e-8)
    f = x.double()
    logits = f @ fit.W + fit.b
    p = torch.exp(logits - logits.logsumexp(1, keepdim=True))
    onehot = torch.nn.functional.one_hot(y, 4).double()
    grad_W = f.T @ (p - onehot) / len(f) + l2 * fit.W  # d/dW of mean CE + l2/2 |W|^2
    grad_b = (p - onehot).mean(0)
    assert grad_W.abs().max() < 1e-7 and grad_b.abs().max() < 1e-7
    objective = (logits.logsumexp(1) - logits[torch.arange(len(y)), y]).mean() + 0.5 * l2 * fit.W.pow(2).sum()
    assert fit.loss == pytest.approx(objective.item(), rel=1e-10)
    assert fit.grad_norm < 1e-7 and fit.num_iterations > 0 and fit.l2 == l2
    assert fit.accuracy(x, y) == (fit.predict(x) == y).double().mean().item()


def test_the_answer_does_not_depend_on_the_row_order():
    x, y = _blobs(seed=3)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    a = fl.fit_softmax_regression(x, y, 0.1, num_classes=3, tolerance=1e-8)
    b = fl.fit_softmax_regression(x[perm], y[perm], 0.1, num_classes=3, tolerance=1e-8)
    torch.testing.assert_close(a.W, b.W, atol=1e-7, rtol=0)


def test_fit_refuses_bad_input():
    x, y = _blobs()
    with pytest.raises(ValueError, match=r"l2 must be > 0 \(the penalty that makes the optimum unique\), got 0"):
        fl.fit_softmax_regression(x, y, l2=0.0)
    with pytest.raises(ValueError, match="y: got 89 labels for 90 rows"):
        fl.fit_softmax_regression(x, y[:-1])
    with pytest.raises(ValueError, match=r"labels must lie in 0..1, got 2"):
        fl.fit_softmax_regression(x, y, num_classes=2)
    with pytest.raises(ValueError, match=r"expected float features of shape \(N, d\).*flatten"):
        fl.fit_softmax_regression(torch.rand(90, 1, 2, 2), y)
    with pytest.raises(ValueError, match="NaN or infinite"):
        fl.fit_softmax_regression(x.masked_fill(x > 3, float("nan")), y)
    with pytest.raises(RuntimeError, match="did not converge.*max_iterations"):
        fl.fit_softmax_regression(x, y, l2=1e-4, num_classes=3, max_iterations=2)
    fit = fl.fit_softmax_regression(x, y, num_classes=3)
    with pytest.raises(ValueError, match="fitted on 5 features, got 4"):
        fit.predict(x[:, :4])


def test_paired_summary_against_scipy():
    from scipy.stats import t, ttest_rel

    a, b = [0.70, 0.74, 0.71, 0.69, 0.73], [0.75, 0.77, 0.74, 0.75, 0.78]
    s = fl.paired_summary(a, b)
    d = np.array(b) - np.array(a)
    assert s["diff_mean"] == pytest.approx(d.mean()) and s["diff_std"] == pytest.approx(d.std(ddof=1))
    assert s["std_a"] == pytest.approx(np.std(a, ddof=1)) and s["mean_b"] == pytest.approx(np.mean(b))
    half = t.ppf(0.975, 4) * d.std(ddof=1) / math.sqrt(5)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    # the interval excludes 0 exactly when the paired t-test rejects at 5 %
    assert (s["ci_low"] > 0) == (ttest_rel(b, a).pvalue < 0.05)
    with pytest.raises(ValueError, match="same length >= 2"):
        fl.paired_summary([0.7], [0.8])
    with pytest.raises(ValueError, match="same length"):
        fl.paired_summary([0.7, 0.8], [0.8, 0.9, 1.0])


def test_encode_means_and_labelled_samples():
    torch.manual_seed(0)
    vae = VAE(z_dim=3, arch="mlp", hidden_dims=(8,))
    x = torch.rand(7, 1, 28, 28)
    torch.testing.assert_close(fl.encode_means(vae, x, batch_size=3), vae.encode(x)[0].detach())
    with pytest.raises(TypeError, match="unconditional VAE"):
        fl.encode_means(CVAE(z_dim=2, arch="mlp"), x)
    with pytest.raises(ValueError, match=r"encode_means\(x\): expected pixels in \[0, 1\]"):
        fl.encode_means(vae, 2 * x - 1)
    for model in (CVAE(z_dim=2, arch="mlp"), DCGAN(z_dim=4, width=4, num_classes=10)):
        xs, ys = fl.labelled_samples(model, per_class=2, seed=1)
        assert xs.shape == (20, 1, 28, 28) and torch.equal(ys, torch.arange(10).repeat_interleave(2))
        assert 0 <= xs.min() and xs.max() <= 1
        torch.testing.assert_close(xs, fl.labelled_samples(model, 2, seed=1)[0])
    with pytest.raises(TypeError, match="conditional model"):
        fl.labelled_samples(vae, 2)
