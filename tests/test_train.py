"""genimg_lib.train: History, the NaN guard, and the two loops.

Each loop's first step is written out by hand here (encode, reparameterize, decode, the loss,
an Adam step; or the D and G updates of a GAN with their losses spelled out) and must give
the same loss and the same weights as the library's loop."""

import copy

import pytest
import torch
import torch.nn.functional as F

from genimg_lib import train
from genimg_lib.data import infinite_batches, load_mnist5k, make_loader
from genimg_lib.losses import vae_loss
from genimg_lib.models import CVAE, DCGAN, VAE, DCGANGenerator
from genimg_lib.train import History, NonFiniteLossError, train_gan, train_vae


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """Every parameter and buffer (BatchNorm's running statistics too) equal."""
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], msg=lambda m: f"{key}: {m}")


def _changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


# ===========================================================================
# History, progress, check_finite
# ===========================================================================
def test_history():
    h = History()
    h.log(0, loss=torch.tensor(2.0))
    h.log(1, loss=1.0)
    assert h["loss"] == [2.0, 1.0] and h.steps("loss") == [0, 1] and h.mean("loss") == 1.5
    with pytest.raises(KeyError, match="no curve 'kl'"):
        h["kl"]


def test_history_curves_keep_their_own_steps_and_round_trip_through_a_state_dict():
    h = History()
    for step in range(1, 8):
        h.log(step, loss=1.0 / step)
        if step % 3 == 0:
            h.log(step, kl=0.5 * step)
    assert h.steps("kl") == [3, 6] and h.last("loss") == pytest.approx(1 / 7)
    assert h.mean("loss", last=2) == pytest.approx((1 / 6 + 1 / 7) / 2)
    assert set(h) == {"loss", "kl"} and len(h) == 2
    state = h.state_dict()
    assert state["kl"]["step"].dtype == torch.int32 and state["kl"]["value"].dtype == torch.float32
    back = History.from_state_dict(state)
    assert back.steps("loss") == h.steps("loss") and back.steps("kl") == [3, 6]
    assert back["loss"] == pytest.approx(h["loss"]) and back["kl"] == h["kl"]
    assert "loss: 7 points" in repr(back)


def test_progress_bar_is_hidden_by_the_environment_variable(monkeypatch):
    monkeypatch.setenv("GENIMG_PROGRESS", "0")
    assert train.progress(5).disable
    monkeypatch.setenv("GENIMG_PROGRESS", "1")
    bar = train.progress(5, file=open("/dev/null", "w"))
    assert not bar.disable and bar.total == 5
    bar.close()
    assert train.progress(range(3), disable=True).disable


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), torch.tensor(float("-inf"))])
def test_check_finite_stops_with_a_clear_message(bad):
    with pytest.raises(NonFiniteLossError, match=r"loss 'loss_D' became .* at step 12.*learning rate"):
        train.check_finite(12, loss_G=1.0, loss_D=bad)


def test_check_finite_passes_finite_values():
    train.check_finite(0, a=1.0, b=torch.tensor(0.5))


# ===========================================================================
# train_vae
# ===========================================================================
@pytest.fixture(scope="module")
def digits():
    x, y = load_mnist5k("test")
    return x[:64], y[:64]


@pytest.mark.parametrize("conditional", [False, True], ids=["mlp_vae", "conv_cvae"])
def test_hand_written_vae_step_equals_train_vaes_first_step(digits, conditional):
    x_train, y_train = digits
    seed, batch_size, lr = 3, 16, 1e-2
    beta, free_bits = (0.5, 0.2) if conditional else (1.0, 0.0)
    torch.manual_seed(0)
    model = CVAE(z_dim=4, arch="conv", channels=4) if conditional else VAE(z_dim=4, arch="mlp", hidden_dims=(32,))
    hand = copy.deepcopy(model)
    before = [p.detach().clone() for p in model.parameters()]
    history = train_vae(model, num_steps=1, batch_size=batch_size, lr=lr, beta=beta, free_bits=free_bits,
                        x_train=x_train, y_train=y_train, seed=seed, show_progress=False)

    # --- the same step, written out: the seeded batch, binarized with the seed + 1 stream
    batch = next(iter(make_loader(x_train, y_train if conditional else None, batch_size=batch_size, seed=seed)))
    x = torch.bernoulli(batch[0], generator=torch.Generator().manual_seed(seed + 1))
    y = batch[1] if conditional else None
    hand.train()
    mu, logvar = hand.encode(x, y)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(seed + 2))  # the seed + 2 stream
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = hand.decode(z, y)
    loss, recon, kl = vae_loss(x, logits, mu, logvar, beta=beta, free_bits=free_bits)
    # vae_loss against the formula: Bernoulli NLL summed over pixels, KL per dimension clamped, both batch means
    recon_hand = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
    kl_dims = (0.5 * (mu**2 + logvar.exp() - logvar - 1)).mean(0)
    torch.testing.assert_close(loss, recon_hand + beta * kl_dims.clamp(min=free_bits).sum())
    optimizer = torch.optim.Adam(hand.parameters(), lr=lr)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    hand.eval()

    assert history.steps("loss") == [1]
    torch.testing.assert_close(torch.tensor(history["loss"]), loss.detach().reshape(1))
    torch.testing.assert_close(torch.tensor(history["recon"]), recon.detach().reshape(1))
    torch.testing.assert_close(torch.tensor(history["kl"]), kl.detach().reshape(1))
    torch.testing.assert_close(torch.tensor(history["elbo"]), -(recon + kl).detach().reshape(1))
    assert history["beta_t"] == [beta]
    assert _changed(before, model)  # the step moved the weights, so agreeing is not trivial
    _assert_same_weights(model, hand)
    assert not model.training


@pytest.mark.parametrize("model", [VAE(z_dim=3, arch="mlp", hidden_dims=(32,)), VAE(z_dim=3, arch="conv", channels=4),
                                   CVAE(z_dim=3, arch="conv", channels=4)])
def test_training_steps_change_the_weights_log_and_call_back(model):
    before = [p.detach().clone() for p in model.parameters()]
    calls = []
    x = torch.rand(16, 1, 28, 28)
    y = torch.arange(16) % 10
    hist = train_vae(model, num_steps=2, batch_size=8, x_train=x, y_train=y, show_progress=False,
                     callback=lambda step, h: calls.append((step, len(h["loss"]))), callback_every=1, log_every=1)
    assert calls == [(1, 1), (2, 2)]  # steps count from 1; the history already holds the step
    assert set(hist) >= {"loss", "recon", "kl", "elbo", "beta_t"} and len(hist["loss"]) == 2
    assert _changed(before, model)
    assert not model.training


def test_log_and_callback_schedules():
    model = VAE(z_dim=2, arch="mlp", hidden_dims=(8,))
    modes, steps = [], []

    def callback(step, history):
        steps.append(step)
        modes.append(model.training)

    hist = train_vae(model, num_steps=5, batch_size=4, x_train=torch.rand(8, 1, 28, 28), log_every=2,
                     callback=callback, callback_every=2, show_progress=False)
    assert hist.steps("loss") == [1, 2, 4, 5]  # step 1, every log_every, and the last
    assert steps == [2, 4, 5] and modes == [False] * 3  # the callback sees the model in eval mode


def test_kl_warmup_schedule():
    model = VAE(z_dim=2, arch="mlp", hidden_dims=(8,))
    hist = train_vae(model, num_steps=5, batch_size=4, x_train=torch.rand(8, 1, 28, 28), kl_warmup_steps=4,
                     beta=2.0, log_every=1, show_progress=False)
    assert hist["beta_t"] == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_train_vae_bad_arguments():
    model = VAE(z_dim=2, arch="mlp", hidden_dims=(8,))
    x = torch.rand(8, 1, 28, 28)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        train_vae(model, 1, beta=-0.5, x_train=x, show_progress=False)
    with pytest.raises(ValueError, match="num_steps must be a non-negative integer"):
        train_vae(model, -1, x_train=x, show_progress=False)
    with pytest.raises(ValueError, match="kl_warmup_steps must be >= 0"):
        train_vae(model, 1, kl_warmup_steps=-1, x_train=x, show_progress=False)
    with pytest.raises(ValueError, match=r"x_train: expected pixels in \[0, 1\]"):
        train_vae(model, 1, x_train=x * 2 - 1, show_progress=False)
    with pytest.raises(ValueError, match="needs y_train"):
        train_vae(CVAE(z_dim=2, arch="mlp", hidden_dims=(8,)), 1, x_train=x, show_progress=False)


def test_train_vae_stops_before_an_update_on_a_nan_loss():
    model = VAE(z_dim=2, arch="mlp", hidden_dims=(8,))
    with torch.no_grad():
        model.decoder.net[-1].bias[0] = float("nan")
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(NonFiniteLossError, match="loss 'loss' became nan at step 1"):
        train_vae(model, 3, batch_size=4, x_train=torch.rand(8, 1, 28, 28), show_progress=False)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], equal_nan=True)


# ===========================================================================
# train_gan
# ===========================================================================
def _batches(batch_size=8):
    x, y = load_mnist5k("test", value_range=(-1, 1))
    return infinite_batches(make_loader(x[:64], y[:64], batch_size=batch_size))


@pytest.mark.parametrize("conditional", [False, True], ids=["unconditional", "conditional"])
@pytest.mark.parametrize("loss, n_critic", [("non_saturating", 1), ("wasserstein_gp", 2)])
def test_hand_written_gan_step_equals_train_gans_first_step(loss, n_critic, conditional):
    z_dim, k, seed = 8, 10, 5
    lr_G, lr_D, betas, gp_weight = 1e-3, 2e-3, (0.5, 0.9), 10.0
    x_all, y_all = load_mnist5k("test", value_range=(-1, 1))
    batches = [(x_all[8 * i : 8 * i + 8], y_all[8 * i : 8 * i + 8]) for i in range(n_critic)]
    torch.manual_seed(0)
    model = DCGAN(z_dim=z_dim, width=4, num_classes=k if conditional else 0)
    G, D = model.G, model.D
    G_hand, D_hand = copy.deepcopy(G), copy.deepcopy(D)
    before_G, before_D = [p.detach().clone() for p in G.parameters()], [p.detach().clone() for p in D.parameters()]
    history = train_gan(G, D, iter(batches), 1, loss=loss, n_critic=n_critic, lr_G=lr_G, lr_D=lr_D, betas=betas,
                        gp_weight=gp_weight, conditional=conditional, generator=torch.Generator().manual_seed(seed),
                        show_progress=False)

    # --- the same step, written out; noise, fake labels and GP mixing weights from one generator
    g = torch.Generator().manual_seed(seed)
    opt_G = torch.optim.Adam(G_hand.parameters(), lr=lr_G, betas=betas)
    opt_D = torch.optim.Adam(D_hand.parameters(), lr=lr_D, betas=betas)
    G_hand.train(), D_hand.train()

    def labels(y):
        return (y,) if conditional else ()

    # (1) n_critic updates of D
    for x, y_real in batches:
        z = torch.randn(len(x), z_dim, generator=g)
        y_fake = torch.randint(0, k, (len(x),), generator=g) if conditional else None
        if conditional and loss == "wasserstein_gp":
            y_fake = y_real  # a conditional critic's interpolates keep the real label
        with torch.no_grad():
            fake = G_hand(z, *labels(y_fake))
        real_out, fake_out = D_hand(x, *labels(y_real)), D_hand(fake, *labels(y_fake))
        if loss == "non_saturating":  # -E[log D(x)] - E[log(1 - D(G(z)))], D = sigmoid(logit)
            loss_D = -(torch.log(torch.sigmoid(real_out)).mean() + torch.log(1 - torch.sigmoid(fake_out)).mean())
        else:  # E[f(G(z))] - E[f(x)] + lambda E[(|grad f(x_hat)| - 1)^2]
            eps = torch.rand(len(x), 1, 1, 1, generator=g)
            x_hat = (eps * x + (1 - eps) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(D_hand(x_hat, *labels(y_real)).sum(), x_hat, create_graph=True)
            norms = grad.flatten(1).norm(dim=1)
            gp = ((norms - 1) ** 2).mean()
            loss_D = fake_out.mean() - real_out.mean() + gp_weight * gp
        opt_D.zero_grad()
        loss_D.backward()
        opt_D.step()
    # (2) one update of G
    z = torch.randn(len(x), z_dim, generator=g)
    y_fake = torch.randint(0, k, (len(x),), generator=g) if conditional else None
    out = D_hand(G_hand(z, *labels(y_fake)), *labels(y_fake))
    loss_G = -torch.log(torch.sigmoid(out)).mean() if loss == "non_saturating" else -out.mean()
    opt_G.zero_grad()
    loss_G.backward()
    opt_G.step()
    grad_norm_G = torch.cat([p.grad.flatten() for p in G_hand.parameters()]).norm()

    def logged(key):
        return torch.tensor(history[key])

    torch.testing.assert_close(logged("loss_D"), loss_D.detach().reshape(1))
    torch.testing.assert_close(logged("loss_G"), loss_G.detach().reshape(1))
    torch.testing.assert_close(logged("grad_norm_G"), grad_norm_G.reshape(1))
    as_prob = torch.sigmoid if loss == "non_saturating" else (lambda t: t)
    torch.testing.assert_close(logged("D_real"), as_prob(real_out.detach()).mean().reshape(1))
    torch.testing.assert_close(logged("D_fake"), as_prob(fake_out.detach()).mean().reshape(1))
    if loss == "wasserstein_gp":
        torch.testing.assert_close(logged("gp"), gp.detach().reshape(1))
        torch.testing.assert_close(logged("grad_norm"), norms.detach().mean().reshape(1))
    assert _changed(before_G, G) and _changed(before_D, D)
    _assert_same_weights(G, G_hand)
    _assert_same_weights(D, D_hand)


@pytest.mark.parametrize("loss", ["minimax", "non_saturating", "wasserstein_gp", "hinge"])
@pytest.mark.parametrize("conditional", [False, True])
def test_one_step_changes_both_networks_and_logs(loss, conditional):
    model = DCGAN(z_dim=8, width=4, num_classes=10 if conditional else 0)
    g0 = [p.detach().clone() for p in model.G.parameters()]
    d0 = [p.detach().clone() for p in model.D.parameters()]
    seen = []
    hist = train_gan(model.G, model.D, _batches(), 2, loss=loss, n_critic=2, conditional=conditional,
                     generator=torch.Generator().manual_seed(0), callback=lambda s, h: seen.append(s),
                     show_progress=False)
    assert seen == [1, 2]
    assert _changed(g0, model.G) and _changed(d0, model.D)
    keys = {"loss_D", "loss_G", "D_real", "D_fake", "grad_norm_G"}
    keys |= {"gp", "grad_norm"} if loss == "wasserstein_gp" else set()
    assert set(hist) == keys and all(len(hist[k]) == 2 for k in keys)
    assert all(hist.steps(k) == [1, 2] for k in keys)
    if loss in ("minimax", "non_saturating"):
        assert 0 < hist["D_real"][0] < 1 and 0 < hist["D_fake"][0] < 1


def test_logged_grad_norm_is_the_interpolates_gradient_norm():
    """With a linear critic f(x) = <a, x>, the gradient on every interpolate is a: norm |a|."""
    torch.manual_seed(0)
    G = DCGANGenerator(z_dim=8, width=4)

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.randn(784) * 0.01)

        def forward(self, x):
            return x.flatten(1) @ self.a

    D = Linear()
    norm_before = D.a.detach().norm().item()
    hist = train_gan(G, D, _batches(), 1, loss="wasserstein_gp", show_progress=False)  # logged before the update
    assert abs(hist["grad_norm"][0] - norm_before) < 1e-5
    assert abs(hist["gp"][0] - (norm_before - 1) ** 2) < 1e-5


def test_train_gan_rejects_bad_arguments():
    model = DCGAN(z_dim=8, width=4)
    with pytest.raises(ValueError, match="unknown GAN loss 'wgan'"):
        train_gan(model.G, model.D, _batches(), 1, loss="wgan")
    with pytest.raises(ValueError, match="n_critic"):
        train_gan(model.G, model.D, _batches(), 1, n_critic=0)
    with pytest.raises(ValueError, match="num_steps must be a non-negative integer"):
        train_gan(model.G, model.D, _batches(), -1)
    with pytest.raises(ValueError, match="conditional=True needs a conditional generator"):
        train_gan(model.G, model.D, _batches(), 1, conditional=True)
    x01, y = load_mnist5k("test", value_range=(0, 1))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        train_gan(model.G, model.D, infinite_batches(make_loader(x01[:16], y[:16], batch_size=8)), 1,
                  show_progress=False)
    cmodel = DCGAN(z_dim=8, width=4, num_classes=10)
    x11, _ = load_mnist5k("test", value_range=(-1, 1))
    with pytest.raises(ValueError, match=r"batches of \(x, y\)"):
        train_gan(cmodel.G, cmodel.D, infinite_batches(make_loader(x11[:16], batch_size=8)), 1, conditional=True,
                  show_progress=False)


def test_train_gan_stops_before_an_update_on_a_nan_loss():
    model = DCGAN(z_dim=8, width=4)
    with torch.no_grad():
        model.D.head.bias.fill_(float("nan"))
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(NonFiniteLossError, match="loss 'loss_D' became nan at step 1"):
        train_gan(model.G, model.D, _batches(), 2, show_progress=False)
    after = model.state_dict()
    for key in before:
        if "running" in key or "num_batches" in key:
            continue  # G's forward pass in train mode updates BatchNorm's statistics; no weight moves
        torch.testing.assert_close(after[key], before[key], equal_nan=True)
