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
