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


# --- Part III-b: DCGAN and conditional models (DCGAN step by step, Making GANs train)
