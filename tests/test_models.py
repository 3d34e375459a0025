"""genimg_lib.models: shapes, the reparameterization, IWAE >= ELBO, parameter counts computed by
hand, spectral normalization against the SVD, and the error messages, for the VAEs, the DCGANs
and the toy GAN's MLPs."""

import math

import pytest
import torch
from torch import nn

from genimg_lib import losses
from genimg_lib.data import load_mnist5k
from genimg_lib.models import (
    CVAE,
    DCGAN,
    VAE,
    ConvDecoder,
    ConvEncoder,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDecoder,
    MLPDiscriminator,
    MLPEncoder,
    MLPGenerator,
    check_tanh_range,
    count_parameters,
    reparameterize,
)


def _binary(n, seed=0):
    return torch.bernoulli(torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 0.5)


# ===========================================================================
# Part II: VAEs
# ===========================================================================
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


@pytest.mark.parametrize("conditional", [False, True])
def test_forward_is_encode_reparameterize_decode_with_the_given_generator(conditional):
    """The model's own forward pass, which train_vae calls, written out by hand."""
    torch.manual_seed(0)
    model = CVAE(z_dim=3, arch="mlp", hidden_dims=(16,)) if conditional else VAE(z_dim=3, arch="mlp", hidden_dims=(16,))
    x = _binary(4)
    y = torch.tensor([0, 3, 3, 9]) if conditional else None
    logits, mu, logvar = model(x, y, generator=torch.Generator().manual_seed(7))
    h = torch.cat([x.flatten(1), torch.nn.functional.one_hot(y, 10).float()], 1) if conditional else x.flatten(1)
    mu_hand, logvar_hand = model.encoder.head(model.encoder.body(h)).chunk(2, dim=1)
    eps = torch.randn(4, 3, generator=torch.Generator().manual_seed(7))
    z = mu_hand + torch.exp(0.5 * logvar_hand) * eps
    dec_in = torch.cat([z, torch.nn.functional.one_hot(y, 10).float()], 1) if conditional else z
    torch.testing.assert_close(mu, mu_hand)
    torch.testing.assert_close(logvar, logvar_hand)
    torch.testing.assert_close(logits, model.decoder.net(dec_in).view(4, 1, 28, 28))


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


def test_conv_decoder_parameter_count_by_hand():
    z, c = 16, 32
    fc = z * 2 * c * 49 + 2 * c * 49
    deconv = (2 * c * c * 16 + c) + (c * 1 * 16 + 1)
    assert count_parameters(ConvDecoder(z, channels=c)) == fc + deconv == 86_625
    # the one-hot label of a conditional decoder adds 10 input columns to fc
    assert count_parameters(ConvDecoder(z, channels=c, num_classes=10)) - (fc + deconv) == 10 * 2 * c * 49


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
    with pytest.raises(ValueError, match=r"latents of shape \(N, 2\)"):
        model.decode(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, y=3)
    with pytest.raises(TypeError, match=r"weights are torch.float32 but the input is torch.float64.*\.to\(torch.float32\)"):
        model(_binary(2).double())
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        model.sample(0)
    cvae = CVAE(z_dim=2, arch="mlp")
    with pytest.raises(ValueError, match="needs labels y"):
        cvae(_binary(2))
    with pytest.raises(ValueError, match=r"labels must lie in 0..9"):
        cvae(_binary(2), torch.tensor([0, 10]))
    with pytest.raises(ValueError, match=r"labels y must have shape \(2,\)"):
        cvae(_binary(2), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"must be integers .* use y.long\(\)"):
        cvae(_binary(2), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        CVAE(num_classes=1)
    with pytest.raises(ValueError, match="same shape"):
        reparameterize(torch.zeros(2, 3), torch.zeros(2, 4))


# ===========================================================================
# Part III: the toy GAN's MLPs
# ===========================================================================
@pytest.mark.parametrize("z_dim", [2, 16])
def test_mlp_shapes(z_dim):
    G, D = MLPGenerator(z_dim=z_dim, hidden_dim=32), MLPDiscriminator(hidden_dim=32)
    assert G.z_dim == z_dim and G.num_classes == 0  # what train_gan reads
    x = G(torch.randn(5, z_dim))
    assert x.shape == (5, 2)
    assert D(x).shape == (5,)
    assert G.sample(7, generator=torch.Generator().manual_seed(0)).shape == (7, 2)
    assert MLPDiscriminator(data_dim=1)(torch.randn(3, 1)).shape == (3,)


def test_mlp_layers_and_parameter_count():
    G = MLPGenerator(z_dim=2, hidden_dim=8, num_layers=3)
    assert count_parameters(G) == (2 * 8 + 8) + (8 * 8 + 8) + (8 * 2 + 2)
    assert [type(m).__name__ for m in G.net] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    D = MLPDiscriminator(hidden_dim=8, num_layers=4)
    assert count_parameters(D) == (2 * 8 + 8) + 2 * (8 * 8 + 8) + (8 + 1)
    assert [m.negative_slope for m in D.net if isinstance(m, torch.nn.LeakyReLU)] == [0.2] * 3


def test_mlp_sample_is_reproducible_with_a_generator():
    G = MLPGenerator()
    a = G.sample(4, generator=torch.Generator().manual_seed(1))
    b = G.sample(4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, G(torch.randn(4, 2, generator=torch.Generator().manual_seed(1))))


def test_wrong_z_size_gives_a_clear_error():
    G = MLPGenerator(z_dim=2)
    with pytest.raises(ValueError, match=r"z of shape \(N, 2\), got \(4, 3\)"):
        G(torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        MLPDiscriminator()(torch.randn(4))
    with pytest.raises(ValueError, match="num_layers"):
        MLPGenerator(num_layers=1)
    with pytest.raises(ValueError, match="hidden_dim"):
        MLPDiscriminator(hidden_dim=0)


# ===========================================================================
# Part III: DCGANs
# ===========================================================================
def test_half_width_parameter_counts():
    w, z = 32, 64
    g = (z * 2 * w * 49 + 2 * w * 49) + 2 * (2 * w) + (2 * w * w * 16) + 2 * w + (w * 16 + 1)
    d = (1 * w * 16 + w) + (w * 2 * w * 16 + 2 * w) + (2 * w * 49 + 1)
    assert count_parameters(DCGANGenerator(z_dim=z, width=w)) == g == 237_313
    assert count_parameters(DCGANDiscriminator(width=w)) == d == 36_513


def test_conditional_adds_exactly_the_label_weights():
    g0, g1 = DCGANGenerator(num_classes=0), DCGANGenerator(num_classes=10)
    d0, d1 = DCGANDiscriminator(num_classes=0), DCGANDiscriminator(num_classes=10)
    assert count_parameters(g1) - count_parameters(g0) == 10 * 2 * 32 * 49  # one-hot columns of fc
    assert count_parameters(d1) - count_parameters(d0) == 10 * 2 * 32 * 49  # projection embedding e_y


@pytest.mark.parametrize("num_classes", [0, 10])
@pytest.mark.parametrize("sn", [False, True])
def test_shapes_and_sample_range(num_classes, sn):
    model = DCGAN(z_dim=16, width=8, num_classes=num_classes, spectral_norm=sn).eval()
    y = torch.arange(5) % 10 if num_classes else None
    x = model.G(torch.randn(5, 16), *(() if y is None else (y,)))
    assert x.shape == (5, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert model.D(x, *(() if y is None else (y,))).shape == (5,)
    s = model.sample(7, generator=torch.Generator().manual_seed(0))
    assert s.shape == (7, 1, 28, 28) and s.min() >= 0 and s.max() <= 1
    s2 = model.sample(7, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(s, s2)


def test_sample_maps_tanh_output_to_unit_range():
    model = DCGAN(z_dim=8, width=4).eval()
    g = torch.Generator().manual_seed(3)
    s = model.sample(4, generator=g)
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(s, (model.G(z) + 1) / 2)
    torch.testing.assert_close(model(z), model.G(z))  # DCGAN's forward is its generator


def test_projection_discriminator_is_head_plus_embedding_dot_features():
    D = DCGANDiscriminator(width=4, num_classes=10)
    x, y = torch.rand(5, 1, 28, 28) * 2 - 1, torch.tensor([0, 3, 3, 9, 1])
    h = D.features(x).flatten(1)
    expected = D.head(h).squeeze(1) + torch.stack([D.embed.weight[c] @ h[i] for i, c in enumerate(y.tolist())])
    torch.testing.assert_close(D(x, y), expected)


def test_conditional_sample_uses_the_given_labels():
    model = DCGAN(z_dim=8, width=4, num_classes=10).eval()
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([2, 2, 7])
    s = model.sample(3, generator=torch.Generator().manual_seed(1), y=y)
    torch.testing.assert_close(s, (model.G(z, y) + 1) / 2)
    assert not torch.allclose(model.G(z, torch.tensor([2, 2, 2])), model.G(z, torch.tensor([7, 7, 7])))


def test_spectral_norm_matches_svd_after_power_iterations():
    torch.manual_seed(0)
    D = DCGANDiscriminator(width=8, spectral_norm=True)
    D.train()
    x = torch.randn(4, 1, 28, 28)
    for _ in range(50):  # each training-mode forward pass runs one power iteration
        D(x)
    D.eval()
    for layer in [D.features[0], D.features[2], D.head]:
        w_raw = layer.parametrizations.weight.original.detach()
        sigma_svd = torch.linalg.matrix_norm(w_raw.flatten(1), ord=2)
        u, v = layer.parametrizations.weight[0]._u, layer.parametrizations.weight[0]._v
        sigma_pi = u @ w_raw.flatten(1) @ v
        assert abs(sigma_pi.item() - sigma_svd.item()) / sigma_svd.item() < 1e-3
        w_sn = layer.weight.detach().flatten(1)
        assert abs(torch.linalg.matrix_norm(w_sn, ord=2).item() - 1.0) < 1e-3


def test_dcgan_bad_inputs_give_clear_errors():
    model = DCGAN(z_dim=16, width=4)
    with pytest.raises(ValueError, match=r"noise of shape \(N, 16\)"):
        model.G(torch.randn(2, 15))
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        model.D(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, y=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="unconditional"):
        model.D(torch.randn(2, 1, 28, 28), torch.tensor([1, 2]))
    cmodel = DCGAN(z_dim=16, width=4, num_classes=10)
    with pytest.raises(ValueError, match="pass labels y"):
        cmodel.G(torch.randn(2, 16))
    with pytest.raises(ValueError, match="0..9"):
        cmodel.G(torch.randn(2, 16), torch.tensor([3, 10]))
    with pytest.raises(ValueError, match="pass labels y"):
        cmodel.D(torch.randn(2, 1, 28, 28))
    with pytest.raises(ValueError, match="num_samples"):
        model.sample(0)


def test_check_tanh_range():
    x01, _ = load_mnist5k("test", value_range=(0, 1))
    xpm, _ = load_mnist5k("test", value_range=(-1, 1))
    check_tanh_range(xpm[:64])
    with pytest.raises(ValueError, match=r"real images are all >= 0 .*looks like images in \[0, 1\].*value_range=\(-1, 1\)"):
        check_tanh_range(x01[:64])
    with pytest.raises(ValueError, match=r"real images: expected pixels in \[-1, 1\].*divide by 255"):
        check_tanh_range(x01[:64] * 255)


# --- BatchNorm in the discriminator (the plain pytorch/examples recipe; issue #11) ---
def test_batch_norm_discriminator_parameter_count_by_hand():
    w = 32
    # conv1 (weights + bias), conv2 without bias, BatchNorm's scale and shift, head
    d = (1 * w * 16 + w) + (w * 2 * w * 16) + 2 * (2 * w) + (2 * w * 49 + 1)
    assert count_parameters(DCGANDiscriminator(width=w, norm="batch")) == d == 36_577
    assert count_parameters(DCGANDiscriminator(width=w)) == 36_513  # default unchanged


@pytest.mark.parametrize("num_classes", [0, 10])
def test_batch_norm_discriminator_shapes_and_statistics(num_classes):
    model = DCGAN(z_dim=16, width=8, num_classes=num_classes, d_norm="batch")
    bn = [m for m in model.D.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bn) == 1 and bn[0].num_features == 16
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    y = torch.arange(6) % 10 if num_classes else None
    assert model.D(x, *(() if y is None else (y,))).shape == (6,)
    # in training mode the BatchNorm output has zero mean per channel over the batch
    h = model.D.features[3](model.D.features[:3](x))
    torch.testing.assert_close(h.mean(dim=(0, 2, 3)), torch.zeros(16), atol=1e-5, rtol=0)


def test_discriminator_norm_errors():
    with pytest.raises(ValueError, match=r"norm must be one of \[None, 'batch'\].*got 'layer'"):
        DCGANDiscriminator(norm="layer")
    with pytest.raises(ValueError, match="not both"):
        DCGANDiscriminator(norm="batch", spectral_norm=True)


def test_wgan_gp_refuses_a_batch_norm_critic():
    from genimg_lib.data import infinite_batches, make_loader
    from genimg_lib.train import train_gan
    model = DCGAN(z_dim=8, width=4, d_norm="batch")
    x = torch.rand(16, 1, 28, 28) * 2 - 1
    batches = infinite_batches(make_loader(x, torch.zeros(16, dtype=torch.long), batch_size=8))
    with pytest.raises(ValueError, match="per sample.*norm=None"):
        train_gan(model.G, model.D, batches, 1, loss="wasserstein_gp")
