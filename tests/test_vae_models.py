"""Part II models and training: shapes, the reparameterization, IWAE >= ELBO, a training
step, error messages, the ``vae`` command line and the shipped checkpoints."""

import math

import pytest
import torch

from genimg_lib import losses
from genimg_lib.checkpoints import read_manifest, sha256_file, WEIGHTS_DIR, load_shipped
from genimg_lib.models import CVAE, VAE, ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, load_model, reparameterize
from genimg_lib.losses import kl_per_dim, vae_loss
from genimg_lib.train import evaluate_vae, main, train_vae

SHIPPED = ["vae_conv_z16", "vae_mlp_z2", "cvae_z8"]


def _binary(n, seed=0):
    return torch.bernoulli(torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 0.5)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("z_dim", [2, 16])
def test_vae_shapes(arch, z_dim):
    model = VAE(z_dim=z_dim, arch=arch)
    x = _binary(5)
    logits, mu, logvar = model(x)
    assert logits.shape == (5, 1, 28, 28) and mu.shape == logvar.shape == (5, z_dim)
    s = model.sample(7, generator=torch.Generator().manual_seed(0))
    assert s.shape == (7, 1, 28, 28) and s.min() >= 0 and s.max() <= 1
    assert model.estimate_log_px(x, num_samples=3).shape == (5,)


@pytest.mark.parametrize("cls", [MLPEncoder, ConvEncoder])
def test_encoders_and_decoders_shapes(cls):
    enc = cls(4)
    mu, logvar = enc(_binary(3))
    assert mu.shape == logvar.shape == (3, 4)
    dec = {MLPEncoder: MLPDecoder, ConvEncoder: ConvDecoder}[cls](4)
    assert dec(mu).shape == (3, 1, 28, 28)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_cvae_shapes_and_class_control(arch):
    model = CVAE(z_dim=3, arch=arch)
    x, y = _binary(4), torch.tensor([0, 1, 2, 9])
    logits, mu, _ = model(x, y)
    assert logits.shape == (4, 1, 28, 28) and mu.shape == (4, 3)
    g = torch.Generator().manual_seed(0)
    assert model.sample(6, generator=g, y=3).shape == (6, 1, 28, 28)
    assert model.sample(5).shape == (5, 1, 28, 28)  # classes drawn uniformly
    # the label changes the output for the same z
    z = torch.zeros(2, 3)
    out = model.decode(z, torch.tensor([0, 1]))
    assert not torch.allclose(out[0], out[1])
    assert model.estimate_log_px(x, num_samples=2, y=y).shape == (4,)


def test_reparameterize_statistics_and_gradients():
    mu = torch.tensor([[1.0, -2.0, 0.5]]).repeat(40_000, 1)
    logvar = torch.log(torch.tensor([[0.25, 4.0, 1.0]])).repeat(40_000, 1)
    z = reparameterize(mu, logvar, generator=torch.Generator().manual_seed(0))
    # standard errors: sigma / 200 for the mean (0.01 at sigma = 2), sigma / 283 for the std
    torch.testing.assert_close(z.mean(0), torch.tensor([1.0, -2.0, 0.5]), atol=0.04, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([0.5, 2.0, 1.0]), atol=0.03, rtol=0)
    # gradients reach mu and logvar: dz/dmu = 1, dz/dlogvar = 0.5 sigma eps
    m = torch.zeros(1, 2, requires_grad=True)
    lv = torch.zeros(1, 2, requires_grad=True)
    g = torch.Generator().manual_seed(1)
    z = reparameterize(m, lv, generator=g)
    z.sum().backward()
    eps = torch.randn(1, 2, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(m.grad, torch.ones(1, 2))
    torch.testing.assert_close(lv.grad, 0.5 * eps)


def test_same_generator_same_draw():
    model = VAE(z_dim=4, arch="mlp")
    a = model.sample(3, generator=torch.Generator().manual_seed(5))
    b = model.sample(3, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)


def test_iwae_estimate_is_above_elbo_and_matches_a_manual_computation():
    torch.manual_seed(0)
    model = VAE(z_dim=4, arch="mlp").eval()
    x = _binary(20)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        elbos = []
        for s in range(50):
            z = reparameterize(mu, logvar, torch.Generator().manual_seed(s))
            elbos.append(losses.elbo(x, model.decode(z), mu, logvar))
        elbo_mean = torch.stack(elbos).mean().item()
    iwae = model.estimate_log_px(x, num_samples=20, generator=torch.Generator().manual_seed(0)).mean().item()
    assert iwae > elbo_mean + 0.1, (iwae, elbo_mean)
    # K = 1 is the ELBO (in expectation): compare to the averaged single-sample ELBO
    k1 = torch.stack([model.estimate_log_px(x, 1, generator=torch.Generator().manual_seed(s)) for s in range(50)])
    assert abs(k1.mean().item() - elbo_mean) < 1.0
    # an independent computation of the importance weights with torch.distributions
    D = torch.distributions
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        est = model.estimate_log_px(x[:3], num_samples=7, generator=g, batch_size=3)
        g = torch.Generator().manual_seed(3)
        mu, logvar = model.encode(x[:3])
        z = reparameterize(mu.repeat(7, 1), logvar.repeat(7, 1), g)
        q = D.Independent(D.Normal(mu.repeat(7, 1), (0.5 * logvar.repeat(7, 1)).exp()), 1)
        p = D.Independent(D.Normal(torch.zeros_like(z), torch.ones_like(z)), 1)
        lik = D.Independent(D.Bernoulli(logits=model.decode(z)), 3)
        log_w = (lik.log_prob(x[:3].repeat(7, 1, 1, 1)) + p.log_prob(z) - q.log_prob(z)).view(7, 3)
        expected = torch.logsumexp(log_w, 0) - math.log(7)
    torch.testing.assert_close(est, expected, atol=1e-4, rtol=1e-5)


def test_kl_per_dim_sums_to_gaussian_kl_and_free_bits_clamps():
    mu, logvar = torch.randn(6, 5), torch.randn(6, 5)
    torch.testing.assert_close(kl_per_dim(mu, logvar).sum(1), losses.gaussian_kl(mu, logvar))
    x, logits = _binary(6), torch.randn(6, 1, 28, 28)
    loss, recon, kl = vae_loss(x, logits, mu, logvar, beta=2.0)
    torch.testing.assert_close(loss, -losses.elbo(x, logits, mu, logvar, beta=2.0).mean())
    # free bits: a dimension whose batch-mean KL is below lambda costs exactly lambda
    zero = torch.zeros(6, 5)
    loss_fb, _, kl_fb = vae_loss(x, logits, zero, zero, free_bits=0.3)
    torch.testing.assert_close(loss_fb, -losses.bernoulli_log_likelihood(x, logits).mean() + 5 * 0.3)
    assert kl_fb.item() == 0.0  # the logged KL is the true one


@pytest.mark.parametrize("model", [VAE(z_dim=3, arch="mlp", hidden_dims=(32,)), VAE(z_dim=3, arch="conv", channels=4),
                                   CVAE(z_dim=3, arch="conv", channels=4)])
def test_one_training_step_changes_the_weights_and_logs(model):
    before = [p.detach().clone() for p in model.parameters()]
    calls = []
    x = torch.rand(16, 1, 28, 28)
    y = torch.arange(16) % 10
    hist = train_vae(model, num_steps=2, batch_size=8, x_train=x, y_train=y, show_progress=False,
                     callback=lambda step, h, m: calls.append(step), callback_every=1, log_every=1)
    assert calls == [0, 1]
    assert set(hist) >= {"loss", "recon", "kl", "elbo", "beta_t"} and len(hist["loss"]) == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not model.training


def test_kl_warmup_schedule():
    model = VAE(z_dim=2, arch="mlp", hidden_dims=(8,))
    hist = train_vae(model, num_steps=5, batch_size=4, x_train=torch.rand(8, 1, 28, 28), kl_warmup_steps=4,
                     beta=2.0, log_every=1, show_progress=False)
    assert hist["beta_t"] == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_evaluate_vae_keys():
    model = VAE(z_dim=2, arch="mlp", hidden_dims=(8,))
    m = evaluate_vae(model, _binary(20), iwae_k=3, batch_size=10)
    assert {"nll_nats", "bits_per_dim", "elbo_nats", "iwae_k", "rate", "distortion", "active_units"} <= set(m)
    assert m["bits_per_dim"] == pytest.approx(m["nll_nats"] / (784 * math.log(2)))


def test_bad_inputs_have_helpful_errors():
    model = VAE(z_dim=2, arch="mlp")
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        model(torch.rand(3, 28, 28))
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        model(torch.rand(3, 3, 28, 28))
    with pytest.raises(ValueError, match="z_dim must be a positive integer"):
        VAE(z_dim=0)
    with pytest.raises(ValueError, match="arch must be 'mlp' or 'conv'"):
        VAE(z_dim=2, arch="transformer")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.estimate_log_px(torch.rand(2, 1, 28, 28) * 2 - 1)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        vae_loss(_binary(2), torch.zeros(2, 1, 28, 28), torch.zeros(2, 2), torch.zeros(2, 2), beta=-1)
    with pytest.raises(ValueError, match="batch sizes differ"):
        vae_loss(_binary(3), torch.zeros(3, 1, 28, 28), torch.zeros(2, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="beta must be >= 0"):
        train_vae(model, 1, beta=-0.5, show_progress=False)
    with pytest.raises(ValueError, match=r"latents of shape \(N, 2\)"):
        model.decode(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, y=3)
    cvae = CVAE(z_dim=2, arch="mlp")
    with pytest.raises(ValueError, match="needs labels y"):
        cvae(_binary(2))
    with pytest.raises(ValueError, match=r"labels must lie in 0..9"):
        cvae(_binary(2), torch.tensor([0, 10]))
    with pytest.raises(ValueError, match=r"labels y must have shape \(2,\)"):
        cvae(_binary(2), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="same shape"):
        reparameterize(torch.zeros(2, 3), torch.zeros(2, 4))


def test_cli_help_and_unknown_config(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["vae", "--help"])
    assert exc.value.code == 0
    assert "--config" in capsys.readouterr().out
    assert main(["vae", "--config", "no_such_model"]) == 2
    err = capsys.readouterr().err
    assert "unknown config 'no_such_model'" in err and "vae_conv_z16" in err


@pytest.mark.parametrize("name", SHIPPED + ["vae_latent_study"])
def test_shipped_checkpoints_verified_and_small(name):
    manifest = read_manifest()
    assert name in manifest, f"{name} is not in MANIFEST.json; run python -m genimg_lib.train vae --config {name}"
    entry = manifest[name]
    assert sha256_file(WEIGHTS_DIR / entry["file"]) == entry["sha256"]
    assert entry["bytes"] <= 2 * 1024 * 1024
    assert entry["command"] == f"python -m genimg_lib.train vae --config {name}"
    assert {"seconds", "device", "steps"} <= set(entry["cost"])
    load_shipped(name)  # verifies the checksum again on load


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_load_and_sample(name):
    model = load_model(name)
    entry = read_manifest()[name]
    assert {"nll_nats", "bits_per_dim", "elbo_nats", "iwae_k"} <= set(entry["metrics"])
    assert entry["metrics"]["nll_nats"] <= -entry["metrics"]["elbo_nats"] + 1e-6  # IWAE is the tighter bound
    s = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert s.shape == (4, 1, 28, 28) and 0 <= s.min() and s.max() <= 1


def test_part2_checkpoints_fit_the_budget():
    manifest = read_manifest()
    total = sum(manifest[n]["bytes"] for n in SHIPPED + ["vae_latent_study"] if n in manifest)
    assert total <= 5 * 1024 * 1024
