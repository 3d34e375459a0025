"""The book's models: plain ``nn.Module`` classes with their shapes written down.

Chapters: Part II (VAEs), Part III (GANs), Part IV (the domain classifier lives in
`metrics`). Images are ``(N, 1, 28, 28)``.

Every model that ships as a checkpoint is registered here with `register_model`,
so that `load_model(name)` can rebuild it from ``weights/MANIFEST.json`` alone.
A shipped model's manifest entry has (besides the file, sha256 and command):

- ``"class"``: the registered class name; ``"config"``: its constructor's keyword arguments;
- ``"family"``: ``"vae"``, ``"gan"`` or ``"classifier"``;
- ``"cost"``: ``{"seconds": ..., "device": ..., "steps": ...}``; ``"metrics"``: a dict.

The checkpoint file itself is ``{"model": state_dict, "config": config}``.

Every *generative* model implements
``sample(num_samples, generator=None, y=None) -> Tensor``, returning images in
**[0, 1]** of shape ``(N, 1, 28, 28)`` whatever its output layer (a tanh generator
maps its ``[-1, 1]`` output), so that `metrics` can score every model the same way.
Conditional models take the labels ``y``; when ``y`` is None they draw classes uniformly.
"""

from __future__ import annotations

import torch
from torch import nn

from genimg_lib.checkpoints import load_shipped, read_manifest

MODEL_CLASSES: dict[str, type[nn.Module]] = {}


def register_model(cls: type[nn.Module]) -> type[nn.Module]:
    """Class decorator: make ``cls`` rebuildable by name from the manifest."""
    if cls.__name__ in MODEL_CLASSES and MODEL_CLASSES[cls.__name__] is not cls:
        raise ValueError(f"a different model class is already registered as {cls.__name__!r}")
    MODEL_CLASSES[cls.__name__] = cls
    return cls


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def load_model(name: str, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a shipped model from the manifest, load its verified weights, set eval mode."""
    manifest = read_manifest()
    if name not in manifest:
        raise ValueError(f"no shipped model named {name!r}; available: {sorted(manifest) or 'none yet'}")
    entry = manifest[name]
    cls_name = entry.get("class")
    if cls_name not in MODEL_CLASSES:
        raise ValueError(
            f"shipped model {name!r} needs class {cls_name!r}, which is not registered; "
            f"registered: {sorted(MODEL_CLASSES)}"
        )
    model = MODEL_CLASSES[cls_name](**entry.get("config", {}))
    state = load_shipped(name, map_location=device)
    model.load_state_dict(state["model"])
    return model.to(device).eval()


# ===========================================================================
# Part II: VAEs (encoders, decoders, VAE, CVAE)
# ===========================================================================
# The VAE's pieces, in the order the chapter "Building a VAE step by step" writes them:
# reparameterize, the encoders (x -> mu, logvar), the decoders (z -> logits), then the
# two models. Images are binary or grey levels in [0, 1]; decoders return Bernoulli logits.
IMAGE_SHAPE = (1, 28, 28)


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


def _check_images(x: torch.Tensor, who: str) -> None:
    if x.dim() != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(
            f"{who} expects images of shape (N, 1, 28, 28), got {tuple(x.shape)}; "
            "add the channel axis with x.unsqueeze(1) or load the data with load_mnist5k"
        )


def _check_z_dim(z_dim: int) -> None:
    if not isinstance(z_dim, int) or z_dim <= 0:
        raise ValueError(f"z_dim must be a positive integer (the number of latent dimensions), got {z_dim!r}")


def _one_hot(y: torch.Tensor | None, num_classes: int, n: int, device) -> torch.Tensor | None:
    """Labels ``(N,)`` -> one-hot ``(N, num_classes)``; None when the model is unconditional."""
    if num_classes == 0:
        if y is not None:
            raise ValueError("this model is unconditional: pass no labels y (use CVAE for class conditioning)")
        return None
    if y is None:
        raise ValueError(f"this conditional model needs labels y of shape ({n},) with values in 0..{num_classes - 1}")
    y = torch.as_tensor(y, device=device).long()
    if y.shape != (n,):
        raise ValueError(f"labels y must have shape ({n},) to match the batch, got {tuple(y.shape)}")
    if y.numel() and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got values in [{y.min().item()}, {y.max().item()}]")
    return nn.functional.one_hot(y, num_classes).float()


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


class _VAEBase(nn.Module):
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
        _check_images(x, type(self).__name__)
        return self.encoder(x, _one_hot(y, self.num_classes, x.shape[0], x.device))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``z`` ``(N, z_dim)`` -> Bernoulli logits ``(N, 1, 28, 28)``."""
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"expected latents of shape (N, {self.z_dim}), got {tuple(z.shape)}")
        return self.decoder(z, _one_hot(y, self.num_classes, z.shape[0], z.device))

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, draw one ``z`` by `reparameterize`, decode: returns ``(logits, mu, logvar)``."""
        mu, logvar = self.encode(x, y)
        z = reparameterize(mu, logvar, generator)
        return self.decode(z, y), mu, logvar

    def _labels_for_sampling(self, num_samples: int, y, generator) -> torch.Tensor | None:
        if self.num_classes == 0:
            if y is not None:
                raise ValueError("this model is unconditional: call sample() without y")
            return None
        if y is None:  # draw classes uniformly
            gdev = generator.device if generator is not None else "cpu"
            return torch.randint(0, self.num_classes, (num_samples,), generator=generator, device=gdev)
        y = torch.as_tensor(y).long().reshape(-1)
        if y.numel() == 1:
            y = y.repeat(num_samples)
        return y

    @torch.no_grad()
    def sample(
        self, num_samples: int, generator: torch.Generator | None = None, y: torch.Tensor | int | None = None
    ) -> torch.Tensor:
        r"""Draw :math:`z \sim \mathcal N(0, I)` and return the decoder's Bernoulli means :math:`\sigma(l(z))`.

        Returns ``(num_samples, 1, 28, 28)`` in [0, 1] (pixel probabilities, the usual way to
        show a Bernoulli VAE's samples). A `CVAE` takes labels ``y`` (one int, or one per sample).
        """
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
        device = self._device()
        gdev = generator.device if generator is not None else "cpu"
        z = torch.randn(num_samples, self.z_dim, generator=generator, device=gdev).to(device)
        y = self._labels_for_sampling(num_samples, y, generator)
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
        from genimg_lib.losses import bernoulli_log_likelihood, iwae_bound, log_normal_diag

        _check_images(x, f"{type(self).__name__}.estimate_log_px")
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise ValueError(
                f"a Bernoulli likelihood needs images in [0, 1], got [{x.min().item():.3g}, {x.max().item():.3g}]"
            )
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
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


@register_model
class VAE(_VAEBase):
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


@register_model
class CVAE(_VAEBase):
    r"""A conditional VAE: encoder and decoder both see the one-hot class label.

    .. math:: q_\phi(z\mid x, y),\qquad p_\theta(x\mid z, y),\qquad p(z) = \mathcal N(0, I)

    The label enters as a one-hot vector concatenated to the encoder's features and to
    ``z``. ``forward(x, y)``; ``sample(n, y=3)`` draws n images of a chosen digit.
    Sohn et al. (2015). Chapter: Exploring the latent space.
    """

    def __init__(
        self, z_dim: int = 8, arch: str = "conv", hidden_dims: tuple[int, ...] = (256,), channels: int = 32, num_classes: int = 10
    ) -> None:
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.num_classes = num_classes
        super().__init__(z_dim, arch, hidden_dims, channels)



# ===========================================================================
# Part III: GANs (MLP G/D for toys, DCGAN, conditional variants)
# ===========================================================================

# --- Part III-a: MLP generator/discriminator for 2-D toys (A GAN you can watch)


# --- Part III-b: DCGAN and conditional models (DCGAN step by step, Making GANs train)
