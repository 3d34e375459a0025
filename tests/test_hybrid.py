"""genimg_lib.hybrid: the VAE-GAN's step against a hand computation, shapes, and bad inputs.

The hand computation writes every term of the objective from its formula (log-sigmoids, the
Bernoulli log-likelihood summed over pixels, the Gaussian KL, the reparameterization with
the same noise) on a copy of the model, takes one plain gradient step on each part with
autograd, and must give the same numbers and the same weights as `vaegan_step` with SGD.
"""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from genimg_lib.checkpoints import MODEL_CLASSES, load_model, register_shipped, save_checkpoint
from genimg_lib.hybrid import VAEGAN, grey_fraction, train_vaegan, vaegan_step
from genimg_lib.models import CVAE, VAE, count_parameters


def _tiny(seed: int = 0) -> VAEGAN:
    torch.manual_seed(seed)
    return VAEGAN(z_dim=2, arch="mlp", hidden_dims=(8,), d_width=2)


def _batch(n: int = 5, m: int = 4, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x_real = torch.rand(n, 1, 28, 28, generator=g)
    x_bin = torch.bernoulli(x_real, generator=g)
    z = torch.randn(m, 2, generator=g)
    return x_bin, x_real, z


def _sgd(model: VAEGAN, lr: float = 0.05):
    return torch.optim.SGD(model.vae_parameters(), lr=lr), torch.optim.SGD(model.D.parameters(), lr=lr)


def _hand_step(model: VAEGAN, x_bin, x_real, z, adv_weight: float, eps: torch.Tensor, lr: float = 0.05):
    """One step written from the formulas, with plain gradient descent; returns the numbers."""
    def logit_D(x):  # D sees 2x - 1
        return model.D(2 * x - 1)

    # (1) D: -mean log sigmoid(d(x)) - mean log(1 - sigmoid(d(x~))), x~ fixed
    with torch.no_grad():
        x_fake = 1 / (1 + torch.exp(-model.decoder(z)))
    l_real, l_fake = logit_D(x_real), logit_D(x_fake)
    loss_D = -torch.log(torch.sigmoid(l_real)).mean() - torch.log(1 - torch.sigmoid(l_fake)).mean()
    grads = torch.autograd.grad(loss_D, list(model.D.parameters()))
    with torch.no_grad():
        for p, g in zip(model.D.parameters(), grads):
            p -= lr * g
    # (2) encoder and decoder: recon + KL + lambda * (-mean log D(x~)), through the updated D
    mu, logvar = model.encoder(x_bin)
    z_post = mu + torch.exp(0.5 * logvar) * eps
    p = torch.sigmoid(model.decoder(z_post))
    recon = -(x_bin * torch.log(p) + (1 - x_bin) * torch.log(1 - p)).flatten(1).sum(1).mean()
    kl = (0.5 * (mu**2 + logvar.exp() - logvar - 1).sum(1)).mean()
    adv = -torch.log(torch.sigmoid(logit_D(torch.sigmoid(model.decoder(z))))).mean()
    loss = recon + kl + adv_weight * adv
    params = model.vae_parameters()
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        for q, g in zip(params, grads):
            q -= lr * g
    return {"loss": loss.item(), "recon": recon.item(), "kl": kl.item(), "adv": adv.item(), "loss_D": loss_D.item(),
            "D_real": torch.sigmoid(l_real).mean().item(), "D_fake": torch.sigmoid(l_fake).mean().item()}


@pytest.mark.parametrize("adv_weight", [0.0, 2.5])
def test_one_step_equals_the_hand_computation(adv_weight):
    model = _tiny()
    hand = copy.deepcopy(model)
    x_bin, x_real, z = _batch()
    eps = torch.randn(len(x_bin), 2, generator=torch.Generator().manual_seed(7))  # reparameterize's draw
    expected = _hand_step(hand, x_bin, x_real, z, adv_weight, eps)
    opt_vae, opt_D = _sgd(model)
    got = vaegan_step(model, x_bin, x_real, z, opt_vae, opt_D, adv_weight, generator=torch.Generator().manual_seed(7))
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    assert got["elbo"] == pytest.approx(-(expected["recon"] + expected["kl"]), rel=1e-5)
    for (name, a), b in zip(model.state_dict().items(), hand.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")


def test_the_adversarial_term_reaches_the_decoder_only():
    x_bin, x_real, z = _batch()
    after = {}
    for adv_weight in (0.0, 5.0):
        model = _tiny()
        opt_vae, opt_D = _sgd(model)
        vaegan_step(model, x_bin, x_real, z, opt_vae, opt_D, adv_weight, generator=torch.Generator().manual_seed(3))
        after[adv_weight] = model
    a, b = after[0.0], after[5.0]
    for pa, pb in zip(a.encoder.parameters(), b.encoder.parameters()):
        torch.testing.assert_close(pa, pb)  # the ELBO alone moves the encoder
    for pa, pb in zip(a.D.parameters(), b.D.parameters()):
        torch.testing.assert_close(pa, pb)  # D's step comes first, whatever lambda
    assert any(not torch.allclose(pa, pb) for pa, pb in zip(a.decoder.parameters(), b.decoder.parameters()))


def test_shapes_and_the_inherited_vae():
    torch.manual_seed(0)
    model = VAEGAN()  # the shipped configuration: conv, z_dim 16, channels 32, d_width 16
    assert count_parameters(model.D) == 10_065  # the number the class docstring states
    x = torch.rand(3, 1, 28, 28)
    logits, mu, logvar = model(x)
    assert logits.shape == (3, 1, 28, 28) and mu.shape == logvar.shape == (3, 16)
    assert model.critic(x).shape == (3,)
    s = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert s.shape == (4, 1, 28, 28) and 0 <= s.min() and s.max() <= 1
    assert model.estimate_log_px((x > 0.5).float(), num_samples=2).shape == (3,)
    assert "VAEGAN" in MODEL_CLASSES and MODEL_CLASSES["VAEGAN"] is VAEGAN


@pytest.mark.parametrize("arch", ["conv", "mlp"])
def test_from_vae_copies_the_encoder_and_decoder(arch):
    torch.manual_seed(0)
    vae = VAE(z_dim=4, arch=arch, hidden_dims=(16,), channels=8)
    model = VAEGAN.from_vae(vae, d_width=4)
    z = torch.randn(5, 4)
    torch.testing.assert_close(model.decode(z), vae.decode(z))
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(model.encode(x)[0], vae.encode(x)[0])
    assert model.d_width == 4 and model.arch == arch
    model.decoder.state_dict()[next(iter(model.decoder.state_dict()))].add_(1.0)  # a copy, not shared weights
    assert not torch.allclose(model.decode(z), vae.decode(z))


def test_a_saved_vaegan_loads_by_name(tmp_path):
    model = _tiny()
    path = tmp_path / "tiny.pt"
    save_checkpoint({"model": model.state_dict()}, path)
    register_shipped("tiny", path, "test", manifest_path=tmp_path / "MANIFEST.json", **{
        "class": "VAEGAN", "config": {"z_dim": 2, "arch": "mlp", "hidden_dims": [8], "d_width": 2}})
    back = load_model("tiny", manifest_path=tmp_path / "MANIFEST.json")
    z = torch.randn(3, 2)
    torch.testing.assert_close(back.decode(z), model.decode(z))


def test_train_vaegan_is_seeded_logs_and_calls_back():
    x = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    calls = []
    runs = []
    for _ in range(2):
        model = _tiny()
        h = train_vaegan(model, 4, adv_weight=1.0, batch_size=8, x_train=x, seed=3, log_every=2,
                         callback=lambda step, hist: calls.append(step), callback_every=2, show_progress=False)
        runs.append(model)
    assert h.steps("loss") == [1, 2, 4] and set(h) >= {"loss", "elbo", "adv", "loss_D", "D_real", "D_fake"}
    assert calls == [2, 4, 2, 4]
    for a, b in zip(runs[0].parameters(), runs[1].parameters()):
        torch.testing.assert_close(a, b)
    assert not runs[0].training


def test_grey_fraction_by_hand():
    x = torch.tensor([0.0, 0.05, 0.1, 0.5, 0.9, 0.95, 1.0, 0.3]).view(1, 1, 1, 8).expand(2, 1, 28, 8)
    x = torch.cat([x, torch.zeros(2, 1, 28, 20)], dim=3)  # (2, 1, 28, 28)
    assert grey_fraction(x) == pytest.approx(2 * 28 / (28 * 28))  # 0.5 and 0.3, once per row
    assert grey_fraction(x, low=0.0, high=1.0) == pytest.approx(6 * 28 / (28 * 28))  # everything strictly inside


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True, "10"])
def test_bad_adv_weight_is_refused(bad):
    model = _tiny()
    x_bin, x_real, z = _batch()
    with pytest.raises(ValueError, match=r"adv_weight must be .*\(the weight lambda of the adversarial term"):
        vaegan_step(model, x_bin, x_real, z, *_sgd(model), adv_weight=bad)
    with pytest.raises(ValueError, match="adv_weight"):
        train_vaegan(model, 1, adv_weight=bad, x_train=x_real, batch_size=2, show_progress=False)


def test_bad_inputs_have_clear_errors():
    model = _tiny()
    x_bin, x_real, z = _batch()
    with pytest.raises(ValueError, match=r"vaegan_step\(x_real\): expected pixels in \[0, 1\].*\(x \+ 1\) / 2"):
        vaegan_step(model, x_bin, 2 * x_real - 1, z, *_sgd(model), adv_weight=1.0)
    with pytest.raises(ValueError, match=r"vaegan_step\(z\): expected prior noise of shape \(M, 2\), got \(4, 3\)"):
        vaegan_step(model, x_bin, x_real, torch.randn(4, 3), *_sgd(model), adv_weight=1.0)
    with pytest.raises(TypeError, match="expected a VAEGAN, got VAE.*VAEGAN.from_vae"):
        vaegan_step(VAE(2, "mlp"), x_bin, x_real, z, *_sgd(model), adv_weight=1.0)
    with pytest.raises(TypeError, match="expected a VAEGAN, got VAE"):
        train_vaegan(VAE(2, "mlp"), 1, 1.0, show_progress=False)
    with pytest.raises(ValueError, match="num_steps must be a non-negative integer, got -1"):
        train_vaegan(model, -1, 1.0, show_progress=False)
    with pytest.raises(ValueError, match=r"d_width must be a positive integer \(the discriminator's width\), got 0"):
        VAEGAN(d_width=0)
    with pytest.raises(TypeError, match="unconditional .*VAE, got CVAE"):
        VAEGAN.from_vae(CVAE(z_dim=2, arch="mlp"))
    with pytest.raises(ValueError, match=r"VAEGAN.critic\(x\): expected images of shape"):
        model.critic(torch.rand(3, 28, 28))
    with pytest.raises(ValueError, match=r"grey_fraction: expected 0 <= low < high <= 1"):
        grey_fraction(x_real, low=0.9, high=0.1)
    with pytest.raises(ValueError, match=r"grey_fraction\(x\): expected pixels in \[0, 1\]"):
        grey_fraction(x_real * 255)


def test_an_exploding_loss_stops_the_loop_before_the_update():
    model = _tiny()
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    from genimg_lib.monitor import DivergenceError

    with pytest.raises(DivergenceError, match="at step [2-9]"):  # a learning rate that diverges at once
        train_vaegan(model, 8, adv_weight=1.0, lr=1e4, batch_size=4, x_train=x, show_progress=False)


def test_non_finite_loss_stops_before_the_update():
    model = _tiny()
    x_bin, x_real, z = _batch()
    with torch.no_grad():
        model.D.head.bias.fill_(math.inf)
    before = copy.deepcopy(model.state_dict())
    from genimg_lib.monitor import NonFiniteLossError

    with pytest.raises(NonFiniteLossError, match="loss_D"):
        vaegan_step(model, x_bin, x_real, z, *_sgd(model), adv_weight=1.0)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], equal_nan=True)
