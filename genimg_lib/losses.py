"""The book's objectives, each with its formula in the docstring.

Chapters: Part II (the ELBO and its pieces), Part III (the GAN losses). Every
function here is tested against an independent computation (torch.distributions,
brute force, quadrature or a hand computation) in ``tests/``.

Sign conventions: a *log-likelihood* or a *bound* is returned as it is written in
the math (higher is better); a *loss* is something to minimise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from genimg_lib.data import check_images, check_int, check_number


# ===========================================================================
# Part II: VAEs
# ===========================================================================
# --- Deriving the ELBO: Gaussians, the KL term, likelihoods ----------------------------
def _flat(x: torch.Tensor) -> torch.Tensor:
    """``(N, ...) -> (N, D)``."""
    return x.reshape(x.shape[0], -1)


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{what}: shapes differ, {tuple(a.shape)} against {tuple(b.shape)}; "
            "pass tensors of the same shape (same batch size, same image size)"
        )


def log_normal_diag(x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""Log-density of a diagonal Gaussian, summed over all but the batch axis.

    .. math:: \log \mathcal N(x;\mu,\operatorname{diag}\sigma^2)
       = -\tfrac12 \sum_d \Big[\log 2\pi + \log\sigma_d^2 + \frac{(x_d-\mu_d)^2}{\sigma_d^2}\Big]

    Shapes: ``x``, ``mu``, ``logvar`` broadcast to ``(N, ...)``; returns ``(N,)``.
    Chapter: Deriving the ELBO.
    """
    x, mu, logvar = torch.broadcast_tensors(x, mu, logvar)
    log_p = -0.5 * (math.log(2 * math.pi) + logvar + (x - mu) ** 2 * torch.exp(-logvar))
    return _flat(log_p).sum(dim=1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""KL from the diagonal Gaussian posterior to the standard normal prior, per example.

    .. math:: \mathrm{KL}\big(\mathcal N(\mu,\operatorname{diag}\sigma^2)\,\|\,\mathcal N(0,I)\big)
       = \tfrac12 \sum_{j=1}^{d} \big(\mu_j^2 + \sigma_j^2 - \log\sigma_j^2 - 1\big)

    Shapes: ``mu``, ``logvar`` are ``(N, d)``; returns ``(N,)`` (nats).
    Chapter: Deriving the ELBO.
    """
    _check_same_shape(mu, logvar, "gaussian_kl(mu, logvar)")
    return 0.5 * _flat(mu.pow(2) + logvar.exp() - logvar - 1).sum(dim=1)


def bernoulli_log_likelihood(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    r"""Bernoulli log-likelihood of images ``x`` in [0, 1], from the decoder's logits.

    .. math:: \log p(x\mid z) = \sum_i x_i \log \sigma(l_i) + (1-x_i)\log(1-\sigma(l_i))

    computed stably as ``-binary_cross_entropy_with_logits(logits, x)`` summed over
    pixels. Shapes: ``(N, C, H, W)`` both; returns ``(N,)`` (nats, higher is better).
    Chapter: Deriving the ELBO.
    """
    _check_same_shape(x, logits, "bernoulli_log_likelihood(x, logits)")
    check_images(x, (0.0, 1.0), "bernoulli_log_likelihood(x)", shape=None, tolerance=0.0)
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return -_flat(bce).sum(dim=1)


def gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor | float = 0.0) -> torch.Tensor:
    r"""Gaussian log-likelihood of ``x`` under :math:`\mathcal N(\text{mean}, \sigma^2 I)`.

    .. math:: \log p(x\mid z) = -\tfrac12\sum_i\Big[\log 2\pi\sigma^2 + \frac{(x_i-m_i)^2}{\sigma^2}\Big]

    ``logvar`` is a tensor broadcastable to ``x`` or a float (a fixed variance).
    Returns ``(N,)``. Chapter: Deriving the ELBO.
    """
    _check_same_shape(x, mean, "gaussian_log_likelihood(x, mean)")
    logvar_t = torch.as_tensor(logvar, dtype=x.dtype, device=x.device)
    return log_normal_diag(x, mean, logvar_t)


# --- Deriving the ELBO: the linear-Gaussian VAE (probabilistic PCA) --------------------
# The model: z ~ N(0, I_d), x | z ~ N(W z + mu, sigma2 I_D). Everything about it is Gaussian,
# so log p(x), the exact posterior p(z | x) and the ELBO of any Gaussian q have closed forms.
def _check_ppca(x: torch.Tensor, W: torch.Tensor, mu: torch.Tensor, sigma2) -> torch.Tensor:
    """Validate the pPCA arguments; return ``sigma2`` as a tensor of ``x``'s dtype."""
    if x.dim() != 2:
        raise ValueError(f"x must be (N, D) data vectors, got shape {tuple(x.shape)}; flatten images first")
    if W.dim() != 2 or W.shape[0] != x.shape[1]:
        raise ValueError(
            f"W must be (D, d) with D = x.shape[1] = {x.shape[1]}, got shape {tuple(W.shape)}"
        )
    if mu.shape != (x.shape[1],):
        raise ValueError(f"mu must be ({x.shape[1]},), the data mean, got shape {tuple(mu.shape)}")
    sigma2_t = torch.as_tensor(sigma2, dtype=x.dtype, device=x.device)
    if sigma2_t.numel() != 1 or not bool(sigma2_t > 0):
        raise ValueError(f"sigma2 must be one positive number (the noise variance), got {sigma2}")
    return sigma2_t.reshape(())


def ppca_log_likelihood(x: torch.Tensor, W: torch.Tensor, mu: torch.Tensor, sigma2: float | torch.Tensor) -> torch.Tensor:
    r"""Exact log-evidence of probabilistic PCA (the linear-Gaussian VAE).

    With :math:`z\sim\mathcal N(0,I_d)` and :math:`x\mid z\sim\mathcal N(Wz+\mu,\sigma^2 I_D)`,
    the latent integrates out in closed form:

    .. math:: p(x) = \int p(x\mid z)\,p(z)\,dz = \mathcal N(x;\,\mu,\,C),\qquad C = WW^\top + \sigma^2 I_D,

    .. math:: \log p(x) = -\tfrac12\big[D\log 2\pi + \log\det C + (x-\mu)^\top C^{-1}(x-\mu)\big].

    Shapes: ``x`` ``(N, D)``, ``W`` ``(D, d)``, ``mu`` ``(D,)``, ``sigma2`` a positive
    scalar; returns ``(N,)`` in nats. Computed through a Cholesky factor of :math:`C`;
    use float64 when you compare it with a bound to many digits.
    Tipping & Bishop (1999). Chapter: Deriving the ELBO.
    """
    s2 = _check_ppca(x, W, mu, sigma2)
    D = x.shape[1]
    C = W @ W.T + s2 * torch.eye(D, dtype=x.dtype, device=x.device)
    L = torch.linalg.cholesky(C)
    diff = (x - mu).T                                                   # (D, N)
    sol = torch.linalg.solve_triangular(L, diff, upper=False)           # L^{-1} (x - mu)
    maha = sol.pow(2).sum(dim=0)                                        # (x-mu)^T C^{-1} (x-mu)
    logdet = 2 * torch.log(torch.diagonal(L)).sum()
    return -0.5 * (D * math.log(2 * math.pi) + logdet + maha)


def ppca_posterior(
    x: torch.Tensor, W: torch.Tensor, mu: torch.Tensor, sigma2: float | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The exact posterior :math:`p(z\mid x)` of probabilistic PCA: ``(mean, cov)``.

    .. math:: p(z\mid x) = \mathcal N\big(M^{-1}W^\top(x-\mu),\ \sigma^2 M^{-1}\big),
       \qquad M = W^\top W + \sigma^2 I_d .

    Shapes: ``x`` ``(N, D)``, ``W`` ``(D, d)``, ``mu`` ``(D,)``; returns ``mean`` ``(N, d)``
    and ``cov`` ``(d, d)`` (the same covariance for every ``x``). With
    :math:`q(z\mid x)` equal to this posterior, the ELBO equals :math:`\log p(x)`.
    Tipping & Bishop (1999). Chapter: Deriving the ELBO.
    """
    s2 = _check_ppca(x, W, mu, sigma2)
    d = W.shape[1]
    M = W.T @ W + s2 * torch.eye(d, dtype=x.dtype, device=x.device)
    mean = torch.linalg.solve(M, W.T @ (x - mu).T).T                    # (N, d)
    cov = s2 * torch.linalg.inv(M)
    return mean, 0.5 * (cov + cov.T)                                    # symmetric to round-off


def ppca_log_joint(
    x: torch.Tensor, z: torch.Tensor, W: torch.Tensor, mu: torch.Tensor, sigma2: float | torch.Tensor
) -> torch.Tensor:
    r"""The log-joint :math:`\log p(x, z) = \log\mathcal N(x;\,Wz+\mu,\,\sigma^2 I) + \log\mathcal N(z;\,0, I)`.

    Shapes: ``x`` ``(N, D)``, ``z`` ``(..., N, d)`` (e.g. ``(K, N, d)`` for K samples
    per data point); returns ``(..., N)``. The importance weight of a sample
    :math:`z\sim q` is ``ppca_log_joint(x, z, ...) - log q(z)``.
    Chapter: Deriving the ELBO.
    """
    s2 = _check_ppca(x, W, mu, sigma2)
    if z.dim() < 2 or z.shape[-2:] != (x.shape[0], W.shape[1]):
        raise ValueError(
            f"z must be (..., N, d) = (..., {x.shape[0]}, {W.shape[1]}), got shape {tuple(z.shape)}"
        )
    D, d = W.shape
    mean = z @ W.T + mu                                                 # (..., N, D)
    log_px_z = -0.5 * (D * torch.log(2 * math.pi * s2) + (x - mean).pow(2).sum(-1) / s2)
    log_pz = -0.5 * (d * math.log(2 * math.pi) + z.pow(2).sum(-1))
    return log_px_z + log_pz


def ppca_elbo(
    x: torch.Tensor,
    W: torch.Tensor,
    mu: torch.Tensor,
    sigma2: float | torch.Tensor,
    q_mean: torch.Tensor,
    q_cov: torch.Tensor,
) -> torch.Tensor:
    r"""The ELBO of pPCA for a Gaussian :math:`q(z\mid x)=\mathcal N(m, S)`, in closed form (no sampling).

    .. math:: \mathcal L(x) = \underbrace{\log\mathcal N(x;\,Wm+\mu,\,\sigma^2 I)
       - \frac{\operatorname{tr}(W S W^\top)}{2\sigma^2}}_{\mathbb E_q[\log p(x\mid z)]}
       \;-\; \underbrace{\tfrac12\big[\operatorname{tr}S + m^\top m - d - \log\det S\big]}_{\mathrm{KL}(q\,\|\,p(z))}

    It is :math:`\le` `ppca_log_likelihood`, with equality exactly when :math:`q` is
    `ppca_posterior`. Shapes: ``x`` ``(N, D)``, ``q_mean`` ``(N, d)``, ``q_cov``
    ``(d, d)`` or ``(N, d, d)`` (symmetric positive definite); returns ``(N,)``.
    Chapter: Deriving the ELBO.
    """
    s2 = _check_ppca(x, W, mu, sigma2)
    N, D = x.shape
    d = W.shape[1]
    if q_mean.shape != (N, d):
        raise ValueError(f"q_mean must be (N, d) = ({N}, {d}), got shape {tuple(q_mean.shape)}")
    if q_cov.shape not in ((d, d), (N, d, d)):
        raise ValueError(f"q_cov must be (d, d) or (N, d, d) with d = {d}, got shape {tuple(q_cov.shape)}")
    S = q_cov.expand(N, d, d)
    if not torch.isfinite(S).all() or not torch.allclose(S, S.mT) or (torch.linalg.cholesky_ex(S).info != 0).any():
        raise ValueError(
            "q_cov must be a symmetric positive definite covariance (every eigenvalue > 0): with any other "
            "matrix the 'bound' is meaningless and can exceed log p(x). Build it as L @ L.T + eps * I, "
            "or take it from ppca_posterior"
        )
    resid = x - mu - q_mean @ W.T                                       # x - (W m + mu)
    trace_wsw = torch.einsum("ij,njk,ik->n", W, S, W)                   # tr(W S W^T)
    expected_log_lik = -0.5 * (D * torch.log(2 * math.pi * s2) + (resid.pow(2).sum(1) + trace_wsw) / s2)
    trace_s = torch.diagonal(S, dim1=-2, dim2=-1).sum(-1)
    kl = 0.5 * (trace_s + q_mean.pow(2).sum(1) - d - torch.linalg.slogdet(S)[1])
    return expected_log_lik - kl


# --- Deriving the ELBO: the importance-weighted bound ----------------------------------
def log_mean_exp(a: torch.Tensor, dim: int = 0) -> torch.Tensor:
    r"""Numerically stable :math:`\log \frac1K \sum_k e^{a_k}` along ``dim``.

    .. math:: \log\tfrac1K\textstyle\sum_k e^{a_k} = m + \log\tfrac1K\sum_k e^{a_k - m},\quad m=\max_k a_k
    """
    if a.dim() == 0 or a.shape[dim] == 0:
        raise ValueError(
            f"log_mean_exp needs at least one value along dim={dim} (K >= 1 samples), got shape {tuple(a.shape)}"
        )
    return torch.logsumexp(a, dim=dim) - math.log(a.shape[dim])


def iwae_bound(log_w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    r"""The importance-weighted bound from log-weights ``log_w`` (K samples along ``dim``).

    .. math:: \mathcal L_K(x) = \mathbb E\Big[\log \tfrac1K\sum_{k=1}^K
       \frac{p(x, z_k)}{q(z_k\mid x)}\Big],\quad
       \mathcal L_1 = \text{ELBO} \le \mathcal L_K \le \mathcal L_{K+1} \le \log p(x)

    ``log_w[k] = log p(x, z_k) - log q(z_k | x)``, ``z_k ~ q(z | x)``.
    Burda et al. (2016). Chapter: Deriving the ELBO.
    """
    if log_w.dim() == 0 or log_w.shape[dim] == 0:
        raise ValueError(
            f"iwae_bound needs K >= 1 importance samples along dim={dim} of log_w, got shape {tuple(log_w.shape)}"
        )
    return log_mean_exp(log_w, dim=dim)


# --- Building a VAE: the loss, and likelihoods in bits ---------------------------------
def elbo(
    x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float = 1.0
) -> torch.Tensor:
    r"""The evidence lower bound with a Bernoulli decoder, per example.

    .. math:: \mathcal L(x) = \mathbb E_{q(z\mid x)}[\log p(x\mid z)]
       - \beta\,\mathrm{KL}(q(z\mid x)\,\|\,p(z)) \le \log p(x) \quad(\beta = 1)

    with the expectation estimated by the one sample of ``z`` that produced
    ``logits``. Returns ``(N,)`` in nats (higher is better); the training loss is
    ``-elbo(...).mean()``: summed over pixels, averaged over the batch.
    Chapter: Building a VAE.
    """
    check_number(beta, "beta", 0.0, meaning="the weight of the KL term")
    if x.shape[0] != mu.shape[0]:
        raise ValueError(f"batch sizes differ: x has {x.shape[0]} rows, mu has {mu.shape[0]}")
    return bernoulli_log_likelihood(x, logits) - beta * gaussian_kl(mu, logvar)


def vae_loss(
    x: torch.Tensor,
    logits: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    beta: float = 1.0,
    free_bits: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The VAE training loss and its two terms, averaged over the batch.

    .. math:: \text{loss} = \underbrace{-\tfrac1N\sum_n \log p(x_n\mid z_n)}_{\text{recon}}
       + \beta \sum_j \max\big(\lambda,\ \tfrac1N\textstyle\sum_n \mathrm{KL}_{nj}\big)

    with :math:`\lambda` = ``free_bits`` nats per dimension (0: the plain
    :math:`\beta`-weighted ELBO, whose KL is ``gaussian_kl(mu, logvar).mean()``; Kingma
    et al., 2016, for free bits). Returns ``(loss, recon, kl)`` where ``kl`` is the
    *unclamped* batch-mean KL, so the logged rate is always the true one.
    Chapters: Building a VAE; Exploring the latent space.
    """
    check_number(beta, "beta", 0.0, meaning="the weight of the KL term")
    check_number(free_bits, "free_bits", 0.0, meaning="nats per dimension")
    if x.shape[0] != mu.shape[0]:
        raise ValueError(f"batch sizes differ: x has {x.shape[0]} rows, mu has {mu.shape[0]}")
    recon = -bernoulli_log_likelihood(x, logits).mean()  # summed over pixels, mean over batch
    kl_dims = kl_per_dim(mu, logvar).mean(dim=0)  # (d,) batch mean per dimension
    kl_term = kl_dims.clamp(min=free_bits).sum() if free_bits > 0 else kl_dims.sum()
    return recon + beta * kl_term, recon, kl_dims.sum()


def bits_per_dim(nll_nats: float | torch.Tensor, num_dims: int = 784) -> float | torch.Tensor:
    r"""Convert a negative log-likelihood in nats per image to bits per dimension.

    .. math:: \text{bits/dim} = \frac{\text{NLL}}{D \log 2}
    """
    check_int(num_dims, "num_dims")
    return nll_nats / (num_dims * math.log(2))


# --- Exploring the latent space: the KL per dimension ----------------------------------
def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""The Gaussian KL to :math:`\mathcal N(0, I)` per latent dimension, ``(N, d)`` (nats).

    .. math:: \mathrm{KL}_j = \tfrac12\big(\mu_j^2 + \sigma_j^2 - \log\sigma_j^2 - 1\big)

    Its sum over ``j`` is `gaussian_kl`. Averaged over the data, it shows
    which units carry information (posterior collapse). Chapter: Exploring the latent space.
    """
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have the same shape, got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)


# ===========================================================================
# Part III: GANs
# ===========================================================================
# All take the discriminator's *logits* (or the critic's scores), never probabilities:
# log D = -softplus(-l) and log(1 - D) = -softplus(l) are stable where log(sigmoid) is not.
# --- Deriving the GAN objective: minimax and non-saturating ----------------------------
def d_loss_minimax(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    r"""The discriminator's loss: minus the value of the game.

    .. math:: \mathcal L_D = -\mathbb E_x[\log D(x)] - \mathbb E_z[\log(1 - D(G(z)))]
       = \mathbb E[\operatorname{softplus}(-l_{real})] + \mathbb E[\operatorname{softplus}(l_{fake})]

    D maximises :math:`V(D, G)`, i.e. minimises this. Goodfellow et al. (2014).
    Chapter: Deriving the GAN objective.
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    r"""The generator's loss in the original minimax game (it saturates).

    .. math:: \mathcal L_G = \mathbb E_z[\log(1 - D(G(z)))] = -\mathbb E[\operatorname{softplus}(l_{fake})],
       \qquad \frac{\partial \mathcal L_G}{\partial l} = -\sigma(l) \to 0 \text{ as } D(G(z)) \to 0

    Chapter: Deriving the GAN objective.
    """
    return -F.softplus(fake_logits).mean()


def g_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    r"""The non-saturating generator loss used in practice.

    .. math:: \mathcal L_G = -\mathbb E_z[\log D(G(z))] = \mathbb E[\operatorname{softplus}(-l_{fake})],
       \qquad \frac{\partial \mathcal L_G}{\partial l} = \sigma(l) - 1 \to -1 \text{ as } D(G(z)) \to 0

    Chapter: Deriving the GAN objective.
    """
    return F.softplus(-fake_logits).mean()


# --- Making GANs train: Wasserstein with gradient penalty, hinge -----------------------
def d_loss_wasserstein(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    r"""The WGAN critic's loss (the critic maximises the score gap).

    .. math:: \mathcal L_f = \mathbb E_z[f(G(z))] - \mathbb E_x[f(x)]

    Add `gradient_penalty` to keep f near 1-Lipschitz. Arjovsky et al. (2017).
    Chapter: Making GANs train.
    """
    return fake_scores.mean() - real_scores.mean()


def g_loss_wasserstein(fake_scores: torch.Tensor) -> torch.Tensor:
    r"""The WGAN (and hinge) generator's loss.

    .. math:: \mathcal L_G = -\mathbb E_z[f(G(z))]

    Chapter: Making GANs train.
    """
    return -fake_scores.mean()


def gradient_penalty(
    critic, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""WGAN-GP's two-sided gradient penalty and the gradient norms it saw.

    .. math:: x_t = t\,x + (1-t)\,G(z),\ t\sim U[0,1] \text{ per pair},\qquad
       \mathrm{GP} = \mathbb E_{x_t}\big[(\lVert\nabla_{x_t} f(x_t)\rVert_2 - 1)^2\big]

    (the book's notation: :math:`\hat x` is a reconstruction and :math:`\epsilon` the
    reparameterization noise, so the interpolate is :math:`x_t` and its weight :math:`t`).

    Returns ``(penalty, grad_norms)``; the caller multiplies by :math:`\lambda` (10 in
    Gulrajani et al., 2017). ``critic`` maps ``(N, ...)`` to ``(N,)`` or ``(N, 1)`` scores;
    extra inputs (labels) can be bound with a lambda. Chapter: Making GANs train.
    """
    _check_same_shape(real, fake.detach(), "gradient_penalty(real, fake)")
    t_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    t_device = generator.device if generator is not None else real.device
    t = torch.rand(t_shape, generator=generator, device=t_device).to(real.device, real.dtype)
    x_t = (t * real.detach() + (1 - t) * fake.detach()).requires_grad_(True)
    scores = critic(x_t)
    (grads,) = torch.autograd.grad(scores.sum(), x_t, create_graph=True)
    grad_norms = _flat(grads).norm(2, dim=1)
    return ((grad_norms - 1) ** 2).mean(), grad_norms.detach()


def d_loss_hinge(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    r"""The hinge loss for the discriminator.

    .. math:: \mathcal L_D = \mathbb E_x[\max(0, 1 - f(x))] + \mathbb E_z[\max(0, 1 + f(G(z)))]

    The generator uses `g_loss_wasserstein` (:math:`-\mathbb E f(G(z))`). Lim & Ye (2017). Chapter: Making GANs train.
    """
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


# --- One table of every loss -----------------------------------------------------------
#: Every GAN loss of the book by name: ``(d_loss, g_loss)``. ``"wasserstein_gp"`` is the
#: critic loss alone: the training loop adds ``gp_weight`` times `gradient_penalty`.
GAN_LOSSES = {
    "minimax": (d_loss_minimax, g_loss_saturating),
    "non_saturating": (d_loss_minimax, g_loss_nonsaturating),
    "wasserstein_gp": (d_loss_wasserstein, g_loss_wasserstein),
    "hinge": (d_loss_hinge, g_loss_wasserstein),
}

#: The losses whose discriminator outputs a logit, read as the probability :math:`D(x) = \sigma(\ell(x))`;
#: the others output an unbounded critic score :math:`f(x)`.
PROBABILITY_LOSSES = ("minimax", "non_saturating")


def gan_losses(name: str):
    """``(d_loss, g_loss)`` for a loss name, one of `GAN_LOSSES`'s keys, or a clear error."""
    if name not in GAN_LOSSES:
        raise ValueError(f"unknown GAN loss {name!r}; choose one of {list(GAN_LOSSES)}")
    return GAN_LOSSES[name]
