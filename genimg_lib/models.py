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


# ===========================================================================
# Part III: GANs (MLP G/D for toys, DCGAN, conditional variants)
# ===========================================================================

# --- Part III-a: MLP generator/discriminator for 2-D toys (A GAN you can watch)
def _mlp(in_dim: int, hidden_dim: int, num_layers: int, out_dim: int, slope: float) -> nn.Sequential:
    """``num_layers`` linear layers, ``hidden_dim`` wide, with (leaky) ReLU between them."""
    if num_layers < 2:
        raise ValueError(f"num_layers must be at least 2 (one hidden layer), got {num_layers}")
    if hidden_dim < 1:
        raise ValueError(f"hidden_dim must be a positive integer, got {hidden_dim}")
    act = nn.LeakyReLU(slope) if slope > 0 else nn.ReLU()
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim), act]
    for _ in range(num_layers - 2):
        layers += [nn.Linear(hidden_dim, hidden_dim), act]
    layers.append(nn.Linear(hidden_dim, out_dim))
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    r"""A generator for 2-D toy data: :math:`x = G(z)`, :math:`z \sim \mathcal N(0, I_{d_z})`.

    A plain MLP with ReLU activations and a linear output layer (the toys are not
    bounded, so no tanh). Shapes: ``z`` is ``(N, latent_dim)``; returns ``(N, data_dim)``.

    Unlike the image models, `sample` returns *points*, ``(N, data_dim)``, not images:
    this model is only for the toys of "A GAN you can watch".
    """

    def __init__(self, latent_dim: int = 2, hidden_dim: int = 128, num_layers: int = 3, data_dim: int = 2) -> None:
        super().__init__()
        self.latent_dim, self.data_dim = latent_dim, data_dim
        self.net = _mlp(latent_dim, hidden_dim, num_layers, data_dim, slope=0.0)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map latent codes ``(N, latent_dim)`` to points ``(N, data_dim)``."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"MLPGenerator expects z of shape (N, {self.latent_dim}), got {tuple(z.shape)}; "
                f"draw it with torch.randn(N, {self.latent_dim}) or use G.sample(N)"
            )
        return self.net(z)

    def sample(self, num_samples: int, generator: torch.Generator | None = None, y: None = None) -> torch.Tensor:
        """Draw ``num_samples`` points ``(N, data_dim)`` (``y`` is unused: unconditional)."""
        device = next(self.parameters()).device
        z = torch.randn(num_samples, self.latent_dim, generator=generator,
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
    if x.numel() == 0:
        return
    lo, hi = x.min().item(), x.max().item()
    if lo < -1.0 - 1e-4 or hi > 1.0 + 1e-4:
        raise ValueError(
            f"{what} must lie in [-1, 1] to match the generator's tanh output, got values in "
            f"[{lo:.3g}, {hi:.3g}]; load MNIST with load_mnist5k(value_range=(-1, 1))"
        )
    if lo >= 0.0:
        raise ValueError(
            f"{what} are all >= 0 (range [{lo:.3g}, {hi:.3g}]): this looks like images in [0, 1], "
            "but the generator's tanh produces [-1, 1] (background -1). The discriminator would "
            "separate real from fake by the background value alone. Load MNIST with "
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
        if z_dim < 1 or width < 1 or num_classes < 0:
            raise ValueError(f"need z_dim >= 1, width >= 1, num_classes >= 0; got {z_dim}, {width}, {num_classes}")
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
        h = torch.cat([z, _one_hot(y, self.num_classes, len(z), z)], dim=1) if self.num_classes else z
        if not self.num_classes and y is not None:
            raise ValueError("this generator is unconditional (num_classes=0) but labels y were given")
        h = self.fc(h).view(-1, 2 * self.width, 7, 7)
        return self.net(h)


def _one_hot(y: torch.Tensor | None, num_classes: int, n: int, like: torch.Tensor) -> torch.Tensor:
    """``(N,)`` integer labels -> ``(N, num_classes)`` one-hot floats, with checks."""
    if y is None:
        raise ValueError(f"this model is conditional (num_classes={num_classes}): pass labels y of shape ({n},)")
    if y.shape != (n,) or y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"labels must be integers of shape ({n},), got {y.dtype} of shape {tuple(y.shape)}")
    if y.numel() and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {y.min().item()}..{y.max().item()}")
    return nn.functional.one_hot(y.long(), num_classes).to(like.dtype)


class DCGANDiscriminator(nn.Module):
    r"""DCGAN discriminator (or WGAN critic): an image to one real-valued score.

    .. math:: D(x) = \sigma(l(x)) \text{ (returned: the logit } l(x)\text{, shape } (N,))

    Shapes (``w = width``)::

        x (N, 1, 28, 28)
        Conv2d(1, w, 4, 2, 1)       -> (N, w, 14, 14), LeakyReLU(0.2)
        Conv2d(w, 2w, 4, 2, 1)      -> (N, 2w, 7, 7),  LeakyReLU(0.2), flatten: h (N, 2w*7*7)
        Linear(2w*7*7, 1)           -> (N,)

    With ``width=32`` it has 36,513 parameters. There is no batch normalization: the
    gradient penalty of WGAN-GP is per sample, which batch statistics would break.
    ``spectral_norm=True`` divides every weight by its largest singular value,
    estimated by one power-iteration step per forward pass (Miyato et al., 2018).

    A conditional discriminator (``num_classes = k > 0``) uses the *projection* of
    Miyato & Koyama (2018): a learned embedding :math:`e_y` of the label is compared
    with the image features,

    .. math:: l(x, y) = w^\top h(x) + b + e_y^\top h(x),

    which adds ``k * 2w * 49`` parameters. (Concatenating one-hot label planes to the
    input, the original cGAN recipe, left the label unused after 1,500 steps in our runs.)
    Chapters: DCGAN step by step; Making GANs train.
    """

    def __init__(self, width: int = 32, num_classes: int = 0, spectral_norm: bool = False) -> None:
        super().__init__()
        if width < 1 or num_classes < 0:
            raise ValueError(f"need width >= 1 and num_classes >= 0, got {width}, {num_classes}")
        self.width, self.num_classes = width, num_classes
        self.features = nn.Sequential(
            _sn(nn.Conv2d(1, width, 4, 2, 1), spectral_norm),  # 28 -> 14
            nn.LeakyReLU(0.2),
            _sn(nn.Conv2d(width, 2 * width, 4, 2, 1), spectral_norm),  # 14 -> 7
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
            _one_hot(y, self.num_classes, len(x), x)  # validates y
            out = out + (self.embed(y.long()) * h).sum(dim=1)  # projection e_y^T h(x)
        return out


@register_model
class DCGAN(nn.Module):
    """A generator and its discriminator in one module, so one checkpoint holds both.

    ``DCGAN(z_dim, width, num_classes, spectral_norm)`` builds a `DCGANGenerator` as
    ``.G`` and a `DCGANDiscriminator` as ``.D``. The shipped checkpoints
    ``gan_dcgan``, ``gan_wgan_gp`` and ``gan_cgan`` are all of this class
    (``gan_cgan`` with ``num_classes=10``). Chapters: DCGAN step by step; Making GANs train.
    """

    def __init__(self, z_dim: int = 64, width: int = 32, num_classes: int = 0, spectral_norm: bool = False) -> None:
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        self.G = DCGANGenerator(z_dim, width, num_classes)
        self.D = DCGANDiscriminator(width, num_classes, spectral_norm)

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
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        device = next(self.parameters()).device
        z = torch.randn(num_samples, self.z_dim, generator=generator).to(device)
        if self.num_classes:
            if y is None:
                y = torch.randint(0, self.num_classes, (num_samples,), generator=generator)
            y = torch.as_tensor(y).to(device)
        elif y is not None:
            raise ValueError("this GAN is unconditional (num_classes=0); sample it with y=None")
        return (self.G(z, y) + 1) / 2
