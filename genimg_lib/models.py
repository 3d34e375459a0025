"""The book's models: plain ``nn.Module`` classes with their shapes written down.

Chapters: Part II (VAEs), Part III (GANs), Part IV (the domain classifier lives in
`metrics`). Images are ``(N, 1, 28, 28)``.

The shipped checkpoints of these classes are rebuilt by name with
`genimg_lib.checkpoints.load_model`; `genimg_lib.recipes` says how each one was trained.

Every *generative* model implements
``sample(num_samples, generator=None, y=None) -> Tensor``, returning images in
**[0, 1]** of shape ``(N, 1, 28, 28)`` whatever its output layer (a tanh generator
maps its ``[-1, 1]`` output), so that `metrics` can score every model the same way.
Conditional models take the labels ``y``; when ``y`` is None they draw classes uniformly.
"""

from __future__ import annotations

import torch
from torch import nn

from genimg_lib.data import IMAGE_SHAPE, check_images, check_int
from genimg_lib.losses import bernoulli_log_likelihood, iwae_bound, log_normal_diag


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ===========================================================================
# Part II: VAEs (encoders, decoders, VAE, CVAE)
# ===========================================================================
# The VAE's pieces, in the order the chapter "Building a VAE step by step" writes them:
# reparameterize, the encoders (x -> mu, logvar), the decoders (z -> logits), then the
# two models. Images are binary or grey levels in [0, 1]; decoders return Bernoulli logits.


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Draw :math:`z \sim \mathcal N(\mu, \operatorname{diag}\sigma^2)` as a differentiable function of ``mu, logvar``.

    .. math:: z = \mu + \sigma \odot \epsilon,\qquad \sigma = e^{\frac12 \log\sigma^2},\quad
       \epsilon \sim \mathcal N(0, I)

    The noise :math:`\epsilon` carries the randomness, so gradients flow to ``mu`` and
    ``logvar`` (Kingma & Welling, 2014). Shapes: ``mu``, ``logvar`` are ``(N, d)``;
    returns ``(N, d)``. ``generator`` makes the draw reproducible.
    Chapter: Building a VAE step by step.
    """
    if mu.shape != logvar.shape:
        raise ValueError(
            f"mu and logvar must have the same shape, got {tuple(mu.shape)} and {tuple(logvar.shape)}"
        )
    if generator is not None:
        eps = torch.randn(mu.shape, generator=generator, device=generator.device, dtype=mu.dtype).to(mu.device)
    else:
        eps = torch.randn_like(mu)
    return mu + torch.exp(0.5 * logvar) * eps


def _check_dtype(t: torch.Tensor, model: nn.Module, what: str) -> None:
    """Refuse a tensor whose dtype differs from the model's weights (float64 input to a float32 model)."""
    dtype = next(model.parameters()).dtype
    if t.dtype != dtype:
        raise TypeError(
            f"{type(model).__name__}.{what}: the model's weights are {dtype} but the input is {t.dtype}; "
            f"convert the input with .to({dtype})"
        )


def _check_z_dim(z_dim: int) -> None:
    check_int(z_dim, "z_dim", meaning="the number of latent dimensions")


def _one_hot(y: torch.Tensor | None, num_classes: int, n: int, device) -> torch.Tensor | None:
    """Labels ``(N,)`` -> one-hot ``(N, num_classes)``; None when the model is unconditional."""
    if num_classes == 0:
        if y is not None:
            raise ValueError("this model is unconditional: pass no labels y (use CVAE for class conditioning)")
        return None
    if y is None:
        raise ValueError(
            f"this conditional model needs labels y: pass labels y of shape ({n},) with values in 0..{num_classes - 1}"
        )
    if isinstance(y, torch.Tensor) and y.is_floating_point():
        raise ValueError(f"labels y must be integers (class indices), got a {y.dtype} tensor; use y.long()")
    y = torch.as_tensor(y, device=device).long()
    if y.shape != (n,):
        raise ValueError(f"labels y must have shape ({n},) to match the batch, got {tuple(y.shape)}")
    if y.numel() and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got values in [{y.min().item()}, {y.max().item()}]")
    return nn.functional.one_hot(y, num_classes).float()


def _labels_for_sampling(num_classes: int, num_samples: int, y, generator) -> torch.Tensor | None:
    """The labels ``(num_samples,)`` a ``sample`` call uses: ``y`` (one class, or one per sample), or drawn uniformly."""
    if num_classes == 0:
        if y is not None:
            raise ValueError("this model is unconditional (num_classes=0): call sample() without y")
        return None
    if y is None:  # draw classes uniformly
        gdev = generator.device if generator is not None else "cpu"
        return torch.randint(0, num_classes, (num_samples,), generator=generator, device=gdev)
    t = torch.as_tensor(y)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"labels y must be integer class indices in 0..{num_classes - 1}, got {y!r} ({t.dtype}); "
                        "pass e.g. y=3 or a LongTensor")
    t = t.long().reshape(-1)
    if t.numel() == 1:
        t = t.repeat(num_samples)
    if t.numel() != num_samples:
        raise ValueError(f"labels y must be one class or {num_samples} labels (one per sample), got {t.numel()}")
    if t.min() < 0 or t.max() >= num_classes:
        raise ValueError(f"labels y must lie in 0..{num_classes - 1}, got values in [{t.min().item()}, {t.max().item()}]")
    return t


class MLPEncoder(nn.Module):
    r"""Amortized posterior :math:`q_\phi(z\mid x) = \mathcal N(\mu_\phi(x), \operatorname{diag} e^{\log\sigma^2_\phi(x)})`.

    ``(N, 1, 28, 28)`` -> flatten 784 (+ one-hot label) -> Linear+ReLU per hidden layer
    -> Linear to ``2 * z_dim`` -> ``(mu, logvar)``, each ``(N, z_dim)``.
    Chapter: Building a VAE step by step.
    """

    def __init__(self, z_dim: int, hidden_dims: tuple[int, ...] = (256,), num_classes: int = 0) -> None:
        super().__init__()
        _check_z_dim(z_dim)
        self.z_dim, self.num_classes = z_dim, num_classes
        layers, width = [], 784 + num_classes
        for h in hidden_dims:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 2 * z_dim)  # -> (N, 2 z_dim): mu and logvar side by side

    def forward(self, x: torch.Tensor, y_onehot: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = x.flatten(1)  # (N, 784)
        if y_onehot is not None:
            h = torch.cat([h, y_onehot], dim=1)  # (N, 784 + num_classes)
        mu, logvar = self.head(self.body(h)).chunk(2, dim=1)  # (N, z_dim) each
        return mu, logvar


class MLPDecoder(nn.Module):
    r"""Bernoulli decoder :math:`p_\theta(x\mid z) = \prod_i \mathrm{Bern}(x_i; \sigma(l_i(z)))`.

    ``(N, z_dim)`` (+ one-hot label) -> Linear+ReLU per hidden layer -> Linear 784 ->
    logits ``(N, 1, 28, 28)``. Chapter: Building a VAE step by step.
    """

    def __init__(self, z_dim: int, hidden_dims: tuple[int, ...] = (256,), num_classes: int = 0) -> None:
        super().__init__()
        _check_z_dim(z_dim)
        layers, width = [], z_dim + num_classes
        for h in hidden_dims:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 784))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y_onehot: torch.Tensor | None = None) -> torch.Tensor:
        if y_onehot is not None:
            z = torch.cat([z, y_onehot], dim=1)
        return self.net(z).view(-1, *IMAGE_SHAPE)  # logits (N, 1, 28, 28)


class ConvEncoder(nn.Module):
    r"""Convolutional :math:`q_\phi(z\mid x)`: two stride-2 convolutions, then a linear head.

    Shapes are written next to each layer; returns ``(mu, logvar)``, each ``(N, z_dim)``.
    Chapter: Building a VAE step by step.
    """

    def __init__(self, z_dim: int, channels: int = 32, num_classes: int = 0) -> None:
        super().__init__()
        _check_z_dim(z_dim)
        self.z_dim, self.num_classes = z_dim, num_classes
        c = channels
        self.conv = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1),  # (N, 1, 28, 28) -> (N, c, 14, 14)
            nn.ReLU(),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),  # -> (N, 2c, 7, 7)
            nn.ReLU(),
        )
        self.head = nn.Linear(2 * c * 7 * 7 + num_classes, 2 * z_dim)  # (N, 2c*49 [+10]) -> (N, 2 z_dim)

    def forward(self, x: torch.Tensor, y_onehot: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.conv(x).flatten(1)  # (N, 2c*7*7)
        if y_onehot is not None:
            h = torch.cat([h, y_onehot], dim=1)
        mu, logvar = self.head(h).chunk(2, dim=1)  # (N, z_dim) each
        return mu, logvar


class ConvDecoder(nn.Module):
    r"""Convolutional Bernoulli decoder: a linear layer to a 7x7 map, then two transposed convolutions.

    ``(N, z_dim)`` -> logits ``(N, 1, 28, 28)``. Chapter: Building a VAE step by step.
    """

    def __init__(self, z_dim: int, channels: int = 32, num_classes: int = 0) -> None:
        super().__init__()
        _check_z_dim(z_dim)
        c = channels
        self.c = c
        self.fc = nn.Linear(z_dim + num_classes, 2 * c * 7 * 7)  # (N, z_dim [+10]) -> (N, 2c*49)
        self.deconv = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1),  # (N, 2c, 7, 7) -> (N, c, 14, 14)
            nn.ReLU(),
            nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1),  # -> (N, 1, 28, 28) logits
        )

    def forward(self, z: torch.Tensor, y_onehot: torch.Tensor | None = None) -> torch.Tensor:
        if y_onehot is not None:
            z = torch.cat([z, y_onehot], dim=1)
        h = self.fc(z).view(-1, 2 * self.c, 7, 7)  # (N, 2c, 7, 7)
        return self.deconv(h)


def _make_coder(arch: str, z_dim: int, num_classes: int, hidden_dims, channels):
    if arch == "mlp":
        return MLPEncoder(z_dim, tuple(hidden_dims), num_classes), MLPDecoder(z_dim, tuple(hidden_dims), num_classes)
    if arch == "conv":
        return ConvEncoder(z_dim, channels, num_classes), ConvDecoder(z_dim, channels, num_classes)
    raise ValueError(f"arch must be 'mlp' or 'conv', got {arch!r}")


class VAEBase(nn.Module):
    """Shared code of `VAE` and `CVAE` (``num_classes = 0`` means unconditional)."""

    num_classes = 0

    def __init__(self, z_dim: int, arch: str, hidden_dims, channels: int) -> None:
        super().__init__()
        _check_z_dim(z_dim)
        self.z_dim, self.arch = z_dim, arch
        self.encoder, self.decoder = _make_coder(arch, z_dim, self.num_classes, hidden_dims, channels)

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(N, 1, 28, 28)`` in [0, 1] -> ``(mu, logvar)`` of :math:`q(z\\mid x)`, each ``(N, z_dim)``."""
        check_images(x, (0.0, 1.0), f"{type(self).__name__}.encode(x)")
        _check_dtype(x, self, "encode(x)")
        return self.encoder(x, _one_hot(y, self.num_classes, x.shape[0], x.device))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``z`` ``(N, z_dim)`` -> Bernoulli logits ``(N, 1, 28, 28)``."""
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"expected latents of shape (N, {self.z_dim}), got {tuple(z.shape)}")
        _check_dtype(z, self, "decode(z)")
        return self.decoder(z, _one_hot(y, self.num_classes, z.shape[0], z.device))

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, draw one ``z`` by `reparameterize`, decode: returns ``(logits, mu, logvar)``."""
        mu, logvar = self.encode(x, y)
        z = reparameterize(mu, logvar, generator)
        return self.decode(z, y), mu, logvar


    @torch.no_grad()
    def sample(
        self, num_samples: int, generator: torch.Generator | None = None, y: torch.Tensor | int | None = None
    ) -> torch.Tensor:
        r"""Draw :math:`z \sim \mathcal N(0, I)` and return the decoder's Bernoulli means :math:`\sigma(l(z))`.

        Returns ``(num_samples, 1, 28, 28)`` in [0, 1] (pixel probabilities, the usual way to
        show a Bernoulli VAE's samples). A `CVAE` takes labels ``y`` (one int, or one per sample).
        """
        num_samples = check_int(num_samples, "num_samples")
        device = self._device()
        gdev = generator.device if generator is not None else "cpu"
        z = torch.randn(num_samples, self.z_dim, generator=generator, device=gdev).to(device)
        y = _labels_for_sampling(self.num_classes, num_samples, y, generator)
        if y is not None:
            y = y.to(device)
        return torch.sigmoid(self.decode(z, y))

    @torch.no_grad()
    def estimate_log_px(
        self,
        x: torch.Tensor,
        num_samples: int = 100,
        y: torch.Tensor | None = None,
        batch_size: int = 100,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        r"""Importance-weighted estimate of :math:`\log p(x)` per image, in nats (``(N,)``).

        .. math:: \log p(x) \approx \log \frac1K \sum_{k=1}^K
           \frac{p(x\mid z_k)\,p(z_k)}{q(z_k\mid x)},\qquad z_k \sim q(z\mid x)

        `genimg_lib.losses.iwae_bound` with ``K = num_samples``: a lower bound that equals
        the ELBO at K = 1 and tightens as K grows (Burda et al., 2016). ``x`` must be in
        [0, 1] (binary for a true likelihood). Test NLL is ``-estimate_log_px(x).mean()``.
        Chapter: Building a VAE step by step.
        """
        check_images(x, (0.0, 1.0), f"{type(self).__name__}.estimate_log_px(x)")  # Bernoulli: [0, 1], finite
        num_samples = check_int(num_samples, "num_samples")
        batch_size = check_int(batch_size, "batch_size")
        if y is not None and len(y) != len(x):
            raise ValueError(f"x has {len(x)} images but y has {len(y)} labels; they must match")
        device = self._device()
        out = []
        chunk = max(1, 20000 // max(1, batch_size))  # samples of z decoded at once per image batch
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].to(device)
            yb = None if y is None else torch.as_tensor(y[start : start + batch_size]).to(device)
            n = xb.shape[0]
            mu, logvar = self.encode(xb, yb)
            log_w = []
            for k0 in range(0, num_samples, chunk):
                k = min(chunk, num_samples - k0)
                mu_k, logvar_k = mu.repeat(k, 1), logvar.repeat(k, 1)  # (k n, d)
                z = reparameterize(mu_k, logvar_k, generator)
                logits = self.decode(z, None if yb is None else yb.repeat(k))
                log_px_z = bernoulli_log_likelihood(xb.repeat(k, 1, 1, 1), logits)  # (k n,)
                log_pz = log_normal_diag(z, torch.zeros_like(z), torch.zeros_like(z))
                log_qz = log_normal_diag(z, mu_k, logvar_k)
                log_w.append((log_px_z + log_pz - log_qz).view(k, n))
            out.append(iwae_bound(torch.cat(log_w, dim=0), dim=0).cpu())
        return torch.cat(out)


class VAE(VAEBase):
    r"""A variational autoencoder with a Bernoulli decoder and a standard normal prior.

    .. math:: p(z) = \mathcal N(0, I),\quad p_\theta(x\mid z) = \prod_i \mathrm{Bern}(x_i;\sigma(l_i(z))),
       \quad q_\phi(z\mid x) = \mathcal N(\mu_\phi(x), \operatorname{diag}\sigma^2_\phi(x))

    ``arch="mlp"`` uses `MLPEncoder`/`MLPDecoder` with ``hidden_dims``; ``arch="conv"``
    uses `ConvEncoder`/`ConvDecoder` with ``channels``. ``forward(x)`` returns
    ``(logits, mu, logvar)``; the loss is ``-elbo(x, logits, mu, logvar).mean()``.
    Chapters: Building a VAE step by step; Exploring the latent space.
    """

    def __init__(self, z_dim: int = 16, arch: str = "conv", hidden_dims: tuple[int, ...] = (256,), channels: int = 32) -> None:
        super().__init__(z_dim, arch, hidden_dims, channels)


class CVAE(VAEBase):
    r"""A conditional VAE: encoder and decoder both see the one-hot class label.

    .. math:: q_\phi(z\mid x, y),\qquad p_\theta(x\mid z, y),\qquad p(z) = \mathcal N(0, I)

    The label enters as a one-hot vector concatenated to the encoder's features and to
    ``z``. ``forward(x, y)``; ``sample(n, y=3)`` draws n images of a chosen digit.
    Sohn et al. (2015). Chapter: Exploring the latent space.
    """

    def __init__(
        self, z_dim: int = 8, arch: str = "conv", hidden_dims: tuple[int, ...] = (256,), channels: int = 32, num_classes: int = 10
    ) -> None:
        self.num_classes = check_int(num_classes, "num_classes", minimum=2)
        super().__init__(z_dim, arch, hidden_dims, channels)



# ===========================================================================
# Part III: GANs (MLP G/D for toys, DCGAN, conditional variants)
# ===========================================================================

# --- Part III-a: MLP generator/discriminator for 2-D toys (A GAN you can watch)
def _mlp(in_dim: int, hidden_dim: int, num_layers: int, out_dim: int, slope: float) -> nn.Sequential:
    """``num_layers`` linear layers, ``hidden_dim`` wide, with (leaky) ReLU between them."""
    check_int(num_layers, "num_layers", minimum=2, meaning="one hidden layer at least")
    check_int(hidden_dim, "hidden_dim")
    act = nn.LeakyReLU(slope) if slope > 0 else nn.ReLU()
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim), act]
    for _ in range(num_layers - 2):
        layers += [nn.Linear(hidden_dim, hidden_dim), act]
    layers.append(nn.Linear(hidden_dim, out_dim))
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    r"""A generator for 2-D toy data: :math:`x = G(z)`, :math:`z \sim \mathcal N(0, I_{d_z})`.

    A plain MLP with ReLU activations and a linear output layer (the toys are not
    bounded, so no tanh). Shapes: ``z`` is ``(N, z_dim)``; returns ``(N, data_dim)``.

    Unlike the image models, `sample` returns *points*, ``(N, data_dim)``, not images:
    this model is only for the toys of "A GAN you can watch".
    """

    def __init__(self, z_dim: int = 2, hidden_dim: int = 128, num_layers: int = 3, data_dim: int = 2) -> None:
        super().__init__()
        self.z_dim, self.data_dim, self.num_classes = z_dim, data_dim, 0
        self.net = _mlp(z_dim, hidden_dim, num_layers, data_dim, slope=0.0)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map latent codes ``(N, z_dim)`` to points ``(N, data_dim)``."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(
                f"MLPGenerator expects z of shape (N, {self.z_dim}), got {tuple(z.shape)}; "
                f"draw it with torch.randn(N, {self.z_dim}) or use G.sample(N)"
            )
        return self.net(z)

    def sample(self, num_samples: int, generator: torch.Generator | None = None, y: None = None) -> torch.Tensor:
        """Draw ``num_samples`` points ``(N, data_dim)`` (``y`` is unused: unconditional)."""
        num_samples = check_int(num_samples, "num_samples")
        _labels_for_sampling(0, num_samples, y, generator)  # an unconditional model takes no y
        device = next(self.parameters()).device
        z = torch.randn(num_samples, self.z_dim, generator=generator,
                        device=generator.device if generator is not None else device)
        with torch.no_grad():
            return self(z.to(device))


class MLPDiscriminator(nn.Module):
    r"""A discriminator (or WGAN critic) for 2-D toy data: one *logit* per point.

    :math:`D(x) = \sigma(\ell(x))`, where :math:`\ell` is this network's output: the
    losses in `genimg_lib.losses` take the logit :math:`\ell`, never the probability.
    Used as a WGAN critic, the same output is the score :math:`f(x)`.
    A plain MLP with LeakyReLU(0.2). Shapes: ``x`` is ``(N, data_dim)``; returns ``(N,)``.
    """

    def __init__(self, data_dim: int = 2, hidden_dim: int = 128, num_layers: int = 3) -> None:
        super().__init__()
        self.data_dim = data_dim
        self.net = _mlp(data_dim, hidden_dim, num_layers, 1, slope=0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logit (or critic score) of each point: ``(N, data_dim) -> (N,)``."""
        if x.ndim != 2 or x.shape[1] != self.data_dim:
            raise ValueError(
                f"MLPDiscriminator expects points of shape (N, {self.data_dim}), got {tuple(x.shape)}"
            )
        return self.net(x).squeeze(1)




# --- Part III-b: DCGAN and conditional models (DCGAN step by step, Making GANs train)
# Chapters: DCGAN step by step (gan_03_dcgan), Making GANs train (gan_04_making_gans_train).
# Images for a tanh generator live in [-1, 1]: load them with
# ``load_mnist5k(value_range=(-1, 1))``; ``sample`` maps back to [0, 1].
def check_tanh_range(x: torch.Tensor, what: str = "real images") -> None:
    """Raise if a batch of images is not in [-1, 1] as a tanh generator's output is.

    Two mistakes are caught: values outside [-1, 1] (e.g. raw 0..255 pixels), and a
    batch that is entirely non-negative, which is what MNIST loaded in [0, 1] looks
    like. In that case the discriminator could tell real from fake by the sign of the
    background pixels alone (real 0, fake near -1), and training learns nothing useful.
    Chapter: DCGAN step by step.
    """
    check_images(x, (-1.0, 1.0), what, shape=None)
    if x.numel() and x.min().item() >= 0.0:
        raise ValueError(
            f"{what} are all >= 0 (range [{x.min().item():.3g}, {x.max().item():.3g}]): this looks like "
            "images in [0, 1], but the generator's tanh produces [-1, 1] (background -1). The discriminator "
            "would separate real from fake by the background value alone. Load MNIST with "
            "load_mnist5k(value_range=(-1, 1)) or map x -> 2x - 1"
        )


def _sn(layer: nn.Module, use: bool) -> nn.Module:
    """Wrap ``layer`` in spectral normalization (Miyato et al., 2018) when ``use``."""
    return nn.utils.parametrizations.spectral_norm(layer) if use else layer


class DCGANGenerator(nn.Module):
    r"""DCGAN generator for 28x28 images (Radford et al., 2016), scaled to MNIST.

    .. math:: G: z \in \mathbb R^{d} \;\mapsto\; x = \tanh(\cdots) \in [-1, 1]^{1\times 28\times 28}

    Shapes (``w = width``, ``k = num_classes``, 0 for an unconditional model)::

        z (N, z_dim)  [+ one_hot(y) (N, k)]  -> concat (N, z_dim + k)
        Linear                                -> (N, 2w*7*7) -> view (N, 2w, 7, 7), BN, ReLU
        ConvTranspose2d(2w, w, 4, 2, 1)        -> (N, w, 14, 14), BN, ReLU
        ConvTranspose2d(w, 1, 4, 2, 1)         -> (N, 1, 28, 28), tanh

    With ``z_dim=64, width=32`` (half of DCGAN's 64) it has 237,313 parameters.
    A conditional generator (Mirza & Osindero, 2014) concatenates the label's
    one-hot vector to ``z`` (``k * 2w * 49`` more weights in ``fc``). Chapters: DCGAN step by step; Making GANs train.
    """

    def __init__(self, z_dim: int = 64, width: int = 32, num_classes: int = 0) -> None:
        super().__init__()
        z_dim, width = check_int(z_dim, "z_dim"), check_int(width, "width")
        num_classes = check_int(num_classes, "num_classes", minimum=0)
        self.z_dim, self.width, self.num_classes = z_dim, width, num_classes
        self.fc = nn.Linear(z_dim + num_classes, 2 * width * 7 * 7)
        self.net = nn.Sequential(
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False),  # 7 -> 14
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, 2, 1),  # 14 -> 28
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(
                f"the generator expects noise of shape (N, {self.z_dim}), got {tuple(z.shape)}; "
                f"draw it with torch.randn(N, {self.z_dim})"
            )
        h = torch.cat([z, _one_hot(y, self.num_classes, len(z), z.device)], dim=1) if self.num_classes else z
        if not self.num_classes and y is not None:
            raise ValueError("this generator is unconditional (num_classes=0) but labels y were given")
        h = self.fc(h).view(-1, 2 * self.width, 7, 7)
        return self.net(h)


#: The normalizations a `DCGANDiscriminator` offers besides spectral normalization.
D_NORMS = (None, "batch")


class DCGANDiscriminator(nn.Module):
    r"""DCGAN discriminator (or WGAN critic): an image to one real-valued score.

    .. math:: D(x) = \sigma(l(x)) \text{ (returned: the logit } l(x)\text{, shape } (N,))

    Shapes (``w = width``)::

        x (N, 1, 28, 28)
        Conv2d(1, w, 4, 2, 1)       -> (N, w, 14, 14), LeakyReLU(0.2)
        Conv2d(w, 2w, 4, 2, 1)      -> (N, 2w, 7, 7),  LeakyReLU(0.2), flatten: h (N, 2w*7*7)
        Linear(2w*7*7, 1)           -> (N,)

    With ``width=32`` it has 36,513 parameters. By default there is no batch
    normalization: the gradient penalty of WGAN-GP is per sample, which batch statistics
    would break. ``norm="batch"`` puts a ``BatchNorm2d(2w)`` between the second
    convolution (then without bias) and its LeakyReLU, as pytorch/examples' DCGAN does
    (Radford et al., 2016); it is for the losses whose D sees a whole batch of real or
    of fake images at once (minimax, non-saturating, hinge), not for WGAN-GP. The real
    and the fake batch go through D separately, so each is normalized by its own
    statistics. ``spectral_norm=True`` divides every weight by its largest singular value,
    estimated by one power-iteration step per forward pass (Miyato et al., 2018).

    A conditional discriminator (``num_classes = k > 0``) uses the *projection* of
    Miyato & Koyama (2018): a learned embedding :math:`e_y` of the label is compared
    with the image features,

    .. math:: l(x, y) = w^\top h(x) + b + e_y^\top h(x),

    which adds ``k * 2w * 49`` parameters. (Concatenating one-hot label planes to the
    input, the original cGAN recipe, left the label unused after 1,500 steps in our runs.)
    Chapters: DCGAN step by step; Making GANs train.
    """

    def __init__(
        self, width: int = 32, num_classes: int = 0, spectral_norm: bool = False, norm: str | None = None
    ) -> None:
        super().__init__()
        width, num_classes = check_int(width, "width"), check_int(num_classes, "num_classes", minimum=0)
        if norm not in D_NORMS:
            raise ValueError(f"norm must be one of {list(D_NORMS)} (the discriminator's "
                             f"normalization), got {norm!r}")
        if norm == "batch" and spectral_norm:
            raise ValueError("choose one normalization for D: norm='batch' or "
                             "spectral_norm=True, not both")
        self.width, self.num_classes, self.norm = width, num_classes, norm
        batch = norm == "batch"
        self.features = nn.Sequential(
            _sn(nn.Conv2d(1, width, 4, 2, 1), spectral_norm),  # 28 -> 14
            nn.LeakyReLU(0.2),
            _sn(nn.Conv2d(width, 2 * width, 4, 2, 1, bias=not batch), spectral_norm),  # 14 -> 7
            *([nn.BatchNorm2d(2 * width)] if batch else []),  # (N, 2w, 7, 7), batch statistics
            nn.LeakyReLU(0.2),
        )
        self.head = _sn(nn.Linear(2 * width * 7 * 7, 1), spectral_norm)
        if num_classes:
            self.embed = nn.Embedding(num_classes, 2 * width * 7 * 7)  # e_y, one row per class
            bound = (2 * width * 7 * 7) ** -0.5  # the same scale as the head's weights
            nn.init.uniform_(self.embed.weight, -bound, bound)
            self.embed = _sn(self.embed, spectral_norm)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"the discriminator expects images of shape (N, 1, 28, 28), got {tuple(x.shape)}")
        if not self.num_classes and y is not None:
            raise ValueError("this discriminator is unconditional (num_classes=0) but labels y were given")
        h = self.features(x).flatten(1)  # (N, 2w*7*7)
        out = self.head(h).squeeze(1)  # (N,)
        if self.num_classes:
            _one_hot(y, self.num_classes, len(x), x.device)  # validates y
            out = out + (self.embed(torch.as_tensor(y, device=x.device).long()) * h).sum(dim=1)  # projection e_y^T h(x)
        return out


class DCGAN(nn.Module):
    """A generator and its discriminator in one module, so one checkpoint holds both.

    ``DCGAN(z_dim, width, num_classes, spectral_norm, d_norm)`` builds a `DCGANGenerator`
    as ``.G`` and a `DCGANDiscriminator` as ``.D`` (``d_norm`` is the discriminator's
    ``norm``). The shipped checkpoints ``gan_dcgan``, ``gan_wgan_gp`` and ``gan_cgan``
    are all of this class (``gan_cgan`` with ``num_classes=10``).
    Chapters: DCGAN step by step; Making GANs train.
    """

    def __init__(
        self, z_dim: int = 64, width: int = 32, num_classes: int = 0, spectral_norm: bool = False,
        d_norm: str | None = None,
    ) -> None:
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        self.G = DCGANGenerator(z_dim, width, num_classes)
        self.D = DCGANDiscriminator(width, num_classes, spectral_norm, norm=d_norm)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The generator's output in [-1, 1], ``(N, 1, 28, 28)``."""
        return self.G(z, y)

    @torch.no_grad()
    def sample(
        self, num_samples: int, generator: torch.Generator | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``num_samples`` images in [0, 1], ``(N, 1, 28, 28)``: :math:`(G(z) + 1) / 2`, :math:`z \\sim N(0, I)`.

        A conditional model uses the labels ``y`` (shape ``(N,)``) or, when None,
        classes drawn uniformly with ``generator``. ``generator`` may live on the CPU.
        """
        num_samples = check_int(num_samples, "num_samples")
        device = next(self.parameters()).device
        z = torch.randn(num_samples, self.z_dim, generator=generator).to(device)
        y = _labels_for_sampling(self.num_classes, num_samples, y, generator)
        return (self.G(z, None if y is None else y.to(device)) + 1) / 2
