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


# ===========================================================================
# Part II: VAEs (Gaussian KL, likelihoods, ELBO, IWAE, pPCA)
# ===========================================================================


# ===========================================================================
# Part III: GANs (minimax, non-saturating, Wasserstein + gradient penalty, hinge)
# ===========================================================================
