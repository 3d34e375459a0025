r"""A VAE whose decoder is also a GAN generator: the VAE-GAN, as an adversarial fine-tune.

Chapter: VAE against GAN, and hybrids (Part VI). Larsen et al. (2016) gave a VAE a
discriminator and let the decoder play the generator. Here the idea is kept in its
simplest honest form, so that the likelihood stays defined and can be measured: the
model is the book's `genimg_lib.models.VAE` (encoder, Bernoulli decoder, standard normal
prior) plus a small discriminator ``D``, and training adds an adversarial term on the
decoder's *samples* to the usual ELBO.

The objective. With :math:`\tilde x = \sigma(l_\theta(z))`, :math:`z \sim \mathcal N(0, I)`,
the decoder's Bernoulli means of a prior draw (what `VAE.sample` returns, in [0, 1]),
and :math:`D(x) = \sigma(d_\psi(2x - 1))` the discriminator's probability that an image
in [0, 1] is real (``d_psi`` a `genimg_lib.models.DCGANDiscriminator`, which expects
[-1, 1]):

.. math::
   \min_{\theta,\phi}\; \mathbb E_x\big[-\mathcal L_{\text{ELBO}}(x_b;\theta,\phi)\big]
   \;+\; \lambda\, \mathbb E_z\big[-\log D(\tilde x)\big],
   \qquad
   \min_{\psi}\; -\mathbb E_x[\log D(x)] - \mathbb E_z[\log(1 - D(\tilde x))],

where :math:`x_b` is a dynamically binarized training image (as in `genimg_lib.train.train_vae`),
the real images :math:`x` that ``D`` sees are the grey ones, and :math:`\lambda` is
``adv_weight`` (:math:`\lambda = 0` is plain VAE training; ``D`` still trains and only
watches). The generator's term is the non-saturating loss (`genimg_lib.losses.g_loss_nonsaturating`).

Departures from Larsen et al. (2016), stated because they matter for what the chapter measures:

- the reconstruction term stays the Bernoulli log-likelihood (they replaced it by a
  distance between discriminator features), so the model keeps a proper
  :math:`p_\theta(x\mid z)` and its test NLL (IWAE) is comparable with the plain VAE's;
- the fakes are prior samples only (they also used reconstructions);
- the adversarial term starts from a trained VAE (``VAEGAN.from_vae``), so the comparison
  with the VAE it started from isolates what the term does.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from genimg_lib.data import check_images, check_int, check_number, dynamic_binarize, infinite_batches, load_mnist5k, \
    make_loader
from genimg_lib.losses import d_loss_minimax, g_loss_nonsaturating, vae_loss
from genimg_lib.models import VAE, DCGANDiscriminator
from genimg_lib.monitor import ExplosionGuard, History, progress


def grey_fraction(x: torch.Tensor, low: float = 0.1, high: float = 0.9) -> float:
    r"""The share of pixels that are neither ink nor background: :math:`\frac1{N D}\sum_{n,i} \mathbb 1[\text{low} < x_{ni} < \text{high}]`.

    A blunt measure of blur for images ``x`` ``(N, 1, 28, 28)`` in [0, 1]: MNIST digits are
    nearly binary (grey only along the edges of a stroke), while a Bernoulli VAE's mean
    image hedges between strokes and is grey wherever it is unsure. Lower is sharper.
    Chapter: VAE against GAN, and hybrids.
    """
    check_images(x, (0.0, 1.0), "grey_fraction(x)")
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"grey_fraction: expected 0 <= low < high <= 1, got low={low!r}, high={high!r}")
    if x.numel() == 0:
        raise ValueError("grey_fraction: got no images; pass at least one")
    return ((x > low) & (x < high)).double().mean().item()


def _check_adv_weight(adv_weight: Any) -> float:
    return check_number(adv_weight, "adv_weight", 0.0,
                        meaning="the weight lambda of the adversarial term; 0: plain VAE training")


class VAEGAN(VAE):
    r"""A `genimg_lib.models.VAE` with a discriminator ``D`` that judges its samples.

    Everything of the VAE is inherited unchanged (``encode``, ``decode``, ``forward``,
    ``sample`` returning Bernoulli means in [0, 1], ``estimate_log_px``), so the model is
    scored, edited and evaluated exactly like a VAE. The extra part is ``D``, a
    `genimg_lib.models.DCGANDiscriminator` of width ``d_width`` (``d_width=16``: 10,065
    parameters), and `critic`, its logit for images in [0, 1]. Train it with
    `train_vaegan` (objective in the module docstring). Chapter: VAE against GAN, and hybrids.
    """

    def __init__(
        self, z_dim: int = 16, arch: str = "conv", hidden_dims: tuple[int, ...] = (256,), channels: int = 32,
        d_width: int = 16,
    ) -> None:
        d_width = check_int(d_width, "d_width", meaning="the discriminator's width")
        super().__init__(z_dim, arch, hidden_dims, channels)
        self.d_width = d_width
        self.D = DCGANDiscriminator(width=d_width)

    @classmethod
    def from_vae(cls, vae: VAE, d_width: int = 16) -> "VAEGAN":
        """A VAE-GAN that starts from a trained `VAE` (a copy of its encoder and decoder) and a fresh ``D``."""
        if type(vae) is not VAE:
            raise TypeError(
                f"from_vae: expected an unconditional genimg_lib.models.VAE, got {type(vae).__name__}; "
                "a CVAE's decoder needs labels, which this model's D does not take"
            )
        hidden = tuple(vae.encoder.body[i].out_features for i in range(0, len(vae.encoder.body), 2)) \
            if vae.arch == "mlp" else (256,)
        channels = vae.decoder.c if vae.arch == "conv" else 32
        model = cls(vae.z_dim, vae.arch, hidden, channels, d_width)
        model.encoder.load_state_dict(vae.encoder.state_dict())
        model.decoder.load_state_dict(vae.decoder.state_dict())
        return model.to(next(vae.parameters()).device)

    def vae_parameters(self) -> list[nn.Parameter]:
        """The encoder's and the decoder's parameters (what the VAE optimizer updates; not ``D``'s)."""
        return list(self.encoder.parameters()) + list(self.decoder.parameters())

    def critic(self, x: torch.Tensor) -> torch.Tensor:
        r"""The discriminator's logit :math:`d_\psi(2x - 1)` of images ``x`` ``(N, 1, 28, 28)`` in [0, 1]; returns ``(N,)``."""
        check_images(x, (0.0, 1.0), "VAEGAN.critic(x)")
        return self.D(2 * x - 1)


def vaegan_step(
    model: VAEGAN,
    x_bin: torch.Tensor,
    x_real: torch.Tensor,
    z: torch.Tensor,
    opt_vae: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    adv_weight: float,
    generator: torch.Generator | None = None,
    step: int = 1,
    guard: ExplosionGuard | None = None,
) -> dict[str, float]:
    r"""One training step of the VAE-GAN: (1) update ``D``, then (2) update the encoder and decoder.

    (1) :math:`\min_\psi\ \operatorname{softplus}(-d(x_{\text{real}})) + \operatorname{softplus}(d(\tilde x))`,
    averaged over the batch, with :math:`\tilde x = \sigma(l_\theta(z))` held fixed;
    (2) :math:`\min_{\theta,\phi}\ -\mathcal L_{\text{ELBO}}(x_b) + \lambda\,\operatorname{softplus}(-d(\tilde x))`,
    through the updated ``D`` (`genimg_lib.losses.vae_loss` and
    `genimg_lib.losses.g_loss_nonsaturating`).

    Shapes: ``x_bin`` ``(N, 1, 28, 28)`` binary (the ELBO's data), ``x_real`` ``(N, 1, 28, 28)``
    in [0, 1] (``D``'s real images), ``z`` ``(M, z_dim)`` prior noise for the fakes.
    ``opt_vae`` must hold `VAEGAN.vae_parameters` and ``opt_D`` ``model.D``'s.
    ``generator`` draws the reparameterization noise. ``guard`` (a
    `genimg_lib.monitor.ExplosionGuard`; a fresh one if None) stops the step with
    `genimg_lib.monitor.NonFiniteLossError` or `genimg_lib.monitor.ExplodingLossError` before an
    update whose loss or gradient norm is NaN, infinite or has exploded, as the book's other
    loops do; ``step`` is the step it reports. Returns the step's numbers:
    ``loss`` (the minimised (2)), ``recon``, ``kl``, ``elbo``, ``adv`` (the generator term before
    :math:`\lambda`), ``loss_D``, ``D_real`` and ``D_fake`` (mean probabilities in (1)).
    """
    adv_weight = _check_adv_weight(adv_weight)
    guard = ExplosionGuard() if guard is None else guard
    if not isinstance(model, VAEGAN):
        raise TypeError(f"vaegan_step: expected a VAEGAN, got {type(model).__name__}; build one with VAEGAN.from_vae(vae)")
    check_images(x_bin, (0.0, 1.0), "vaegan_step(x_bin)", tolerance=0.0)
    check_images(x_real, (0.0, 1.0), "vaegan_step(x_real)")
    if z.dim() != 2 or z.shape[1] != model.z_dim:
        raise ValueError(f"vaegan_step(z): expected prior noise of shape (M, {model.z_dim}), got {tuple(z.shape)}")
    # (1) update D: real grey images against the decoder's means of prior draws (held fixed)
    with torch.no_grad():
        x_fake = torch.sigmoid(model.decode(z))  # (M, 1, 28, 28) in [0, 1]
    real_out, fake_out = model.critic(x_real), model.critic(x_fake)  # (N,), (M,) logits
    loss_D = d_loss_minimax(real_out, fake_out)
    guard.check(step, loss_D=loss_D)
    opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    guard.check_gradients(step, model.D.parameters(), "grad_norm_D")
    opt_D.step()
    # (2) update the encoder and decoder: the negative ELBO plus lambda times the generator's loss
    logits, mu, logvar = model(x_bin, generator=generator)  # encode, reparameterize, decode
    loss_vae, recon, kl = vae_loss(x_bin, logits, mu, logvar)
    adv = g_loss_nonsaturating(model.critic(torch.sigmoid(model.decode(z))))  # -log D(x~), gradients into the decoder
    loss = loss_vae + adv_weight * adv
    guard.check(step, loss=loss)
    opt_vae.zero_grad(set_to_none=True)
    loss.backward()
    guard.check_gradients(step, model.vae_parameters(), "grad_norm")
    opt_vae.step()
    opt_D.zero_grad(set_to_none=True)  # D's gradients from (2) are not used
    with torch.no_grad():
        d_real, d_fake = torch.sigmoid(real_out).mean(), torch.sigmoid(fake_out).mean()
    return {"loss": loss.item(), "recon": recon.item(), "kl": kl.item(), "elbo": -(recon + kl).item(),
            "adv": adv.item(), "loss_D": loss_D.item(), "D_real": d_real.item(), "D_fake": d_fake.item()}


def train_vaegan(
    model: VAEGAN,
    num_steps: int,
    adv_weight: float,
    batch_size: int = 64,
    lr: float = 1e-4,
    lr_D: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    x_train: torch.Tensor | None = None,
    seed: int = 0,
    callback: Callable[[int, History], None] | None = None,
    callback_every: int = 100,
    log_every: int = 10,
    show_progress: bool = True,
    explode_factor: float | None = 1e4,
) -> History:
    r"""Train a `VAEGAN` for ``num_steps`` steps of `vaegan_step`.

    Returns the `genimg_lib.monitor.History`. Each step takes a batch of grey
    training images ``x`` (``x_train``, default the 4,000 MNIST-5k training
    images in [0, 1]), binarizes it afresh for the ELBO
    (`genimg_lib.data.dynamic_binarize`), shows the grey batch to ``D`` as
    real, and draws as many prior codes for the fakes. Two Adam optimizers
    with ``betas``: ``lr`` for the encoder and decoder, ``lr_D`` for ``D``.
    The batches, the binarization, the prior codes and the reparameterization
    noise come from generators seeded by ``seed``. The history holds the
    numbers `vaegan_step` returns at step 1 and every ``log_every`` steps;
    ``callback(step, history)`` runs every ``callback_every`` steps and after
    the last. ``adv_weight=0`` trains the VAE alone (the control). One
    `genimg_lib.monitor.ExplosionGuard` with ``explode_factor`` watches every
    step (see `vaegan_step`); unlike `genimg_lib.train.train_vae` this loop
    has no checkpoints to resume from (a recipe's run takes minutes).
    Chapter: VAE against GAN, and hybrids.
    """
    adv_weight = _check_adv_weight(adv_weight)
    num_steps = check_int(num_steps, "num_steps", minimum=0)
    batch_size = check_int(batch_size, "batch_size")
    lr = check_number(lr, "lr", 0.0, strict=True,
                      meaning="the encoder's and decoder's learning rate")
    lr_D = check_number(lr_D, "lr_D", 0.0, strict=True,
                        meaning="the discriminator's learning rate")
    seed = check_int(seed, "seed", minimum=0)
    callback_every = check_int(callback_every, "callback_every")
    log_every = check_int(log_every, "log_every")
    guard = ExplosionGuard(explode_factor)
    if not isinstance(model, VAEGAN):
        raise TypeError(f"train_vaegan: expected a VAEGAN, got "
                        f"{type(model).__name__}; build one with "
                        f"VAEGAN.from_vae(vae)")
    if x_train is None:
        x_train, _ = load_mnist5k("train")
    check_images(x_train, (0.0, 1.0), "x_train", tolerance=0.0)
    device = next(model.parameters()).device
    loader = make_loader(x_train, batch_size=batch_size, seed=seed)
    batches = infinite_batches(loader)
    g_bin = torch.Generator().manual_seed(seed + 1)  # binarization noise
    g_rep = torch.Generator().manual_seed(seed + 2)  # reparameterization
    g_prior = torch.Generator().manual_seed(seed + 3)  # the fakes' codes
    opt_vae = torch.optim.Adam(model.vae_parameters(), lr=lr, betas=betas)
    opt_D = torch.optim.Adam(model.D.parameters(), lr=lr_D, betas=betas)
    history = History()
    model.train()
    bar = progress(num_steps, desc="VAE-GAN", disable=not show_progress)
    for step in range(1, num_steps + 1):
        x = next(batches)[0]
        x_bin = dynamic_binarize(x, generator=g_bin).to(device)
        z = torch.randn(len(x), model.z_dim, generator=g_prior).to(device)
        row = vaegan_step(model, x_bin, x.to(device), z, opt_vae, opt_D,
                          adv_weight, generator=g_rep, step=step, guard=guard)
        if step == 1 or step % log_every == 0 or step == num_steps:
            history.log(step, **row)
        bar.update()
        if callback is not None and (step % callback_every == 0
                                     or step == num_steps):
            model.eval()
            callback(step, history)
            model.train()
    bar.close()
    model.eval()
    return history
