"""Resuming a run (issue #9): N steps + save + resume + M steps == N + M steps, bit for bit, on the CPU.

Every logged value is compared with ``==`` (as float64 tensors, with ``torch.equal``) and every
parameter and buffer with ``torch.equal``. The "interrupted" runs really stop: the first call
trains to step N and returns; the second call builds fresh objects (model, loader, generator)
as a new Python session would, and continues from the checkpoint file.
"""

from __future__ import annotations

import pytest
import torch

from genimg_lib import data, gan_lab, models, train
from genimg_lib.checkpoints import load_checkpoint

torch.set_num_threads(1)


def assert_same_history(a: train.History, b: train.History) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert a.steps(key) == b.steps(key), key
        assert torch.equal(torch.tensor(a[key], dtype=torch.float64), torch.tensor(b[key], dtype=torch.float64)), key


def assert_same_weights(*pairs: tuple[torch.nn.Module, torch.nn.Module]) -> None:
    for m1, m2 in pairs:
        s1, s2 = m1.state_dict(), m2.state_dict()
        assert s1.keys() == s2.keys()
        for k in s1:
            assert torch.equal(s1[k], s2[k]), k


@pytest.fixture(scope="module")
def mnist():
    x, y = data.load_mnist5k("train")
    return x[:320], y[:320]  # 5 batches of 64: the runs below cross epoch boundaries


# ---------------------------------------------------------------------------
# the VAE
# ---------------------------------------------------------------------------
def _vae(conditional: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    return models.CVAE(z_dim=3, arch="mlp", hidden_dims=(32,)) if conditional else models.VAE(
        z_dim=3, arch="mlp", hidden_dims=(32,))


VAE_ARGS = dict(batch_size=64, lr=3e-3, kl_warmup_steps=8, free_bits=0.05, seed=4, show_progress=False)


@pytest.mark.parametrize("n, m", [(6, 4), (5, 7)])  # 5: exactly at an epoch's end; 6: inside an epoch
def test_vae_resume_is_bit_for_bit(tmp_path, mnist, n, m):
    x, _ = mnist
    straight = _vae()
    h_straight = train.train_vae(straight, n + m, x_train=x, log_every=1, **VAE_ARGS)

    path = tmp_path / "run.pt"
    first = _vae()
    train.train_vae(first, n, x_train=x, log_every=1, checkpoint_path=path, **VAE_ARGS)
    assert load_checkpoint(path)["step"] == n
    resumed = _vae()
    torch.manual_seed(123)  # a new session: the global RNG is elsewhere too
    h_resumed = train.train_vae(resumed, n + m, x_train=x, log_every=1, checkpoint_path=path, resume=path,
                                **VAE_ARGS)
    assert_same_history(h_straight, h_resumed)
    assert_same_weights((straight, resumed))
    assert load_checkpoint(path)["step"] == n + m
    # without the state the run differs: the test can tell the two apart
    restarted = _vae()
    train.train_vae(restarted, m, x_train=x, log_every=1, **VAE_ARGS)
    assert not torch.equal(restarted.encoder.head.weight, straight.encoder.head.weight)


def test_vae_resume_from_a_periodic_checkpoint_of_a_killed_run(tmp_path, mnist):
    """A run to 12 with checkpoints every 4 'dies' after step 9; resuming the step-8 file gives the straight run."""
    x, _ = mnist
    straight = _vae()
    h_straight = train.train_vae(straight, 12, x_train=x, log_every=2, **VAE_ARGS)

    path = tmp_path / "run.pt"

    def die_after_9(step, history):
        if step == 9:
            raise KeyboardInterrupt("the Colab session died")

    with pytest.raises(KeyboardInterrupt):
        train.train_vae(_vae(), 12, x_train=x, log_every=2, checkpoint_path=path, checkpoint_every=4,
                        callback=die_after_9, callback_every=1, **VAE_ARGS)
    assert load_checkpoint(path)["step"] == 8
    resumed = _vae()
    h_resumed = train.train_vae(resumed, 12, x_train=x, log_every=2, resume=load_checkpoint(path), **VAE_ARGS)
    assert_same_history(h_straight, h_resumed)
    assert_same_weights((straight, resumed))


def test_cvae_resume_is_bit_for_bit(tmp_path, mnist):
    x, y = mnist
    straight = _vae(conditional=True)
    h_straight = train.train_vae(straight, 9, x_train=x, y_train=y, log_every=1, **VAE_ARGS)
    path = tmp_path / "run.pt"
    train.train_vae(_vae(conditional=True), 4, x_train=x, y_train=y, log_every=1, checkpoint_path=path, **VAE_ARGS)
    resumed = _vae(conditional=True)
    h_resumed = train.train_vae(resumed, 9, x_train=x, y_train=y, log_every=1, resume=path, **VAE_ARGS)
    assert_same_history(h_straight, h_resumed)
    assert_same_weights((straight, resumed))


def test_vae_resume_refuses_what_cannot_continue(tmp_path, mnist):
    x, _ = mnist
    path = tmp_path / "run.pt"
    train.train_vae(_vae(), 6, x_train=x, checkpoint_path=path, **VAE_ARGS)
    other_arch = models.VAE(z_dim=4, arch="mlp", hidden_dims=(32,))
    with pytest.raises(ValueError, match="architecture"):
        train.train_vae(other_arch, 10, x_train=x, resume=path, **VAE_ARGS)
    with pytest.raises(ValueError, match=r"other settings \(beta: saved 1.0, now 2.0"):
        train.train_vae(_vae(), 10, x_train=x, resume=path, **{**VAE_ARGS, "beta": 2.0})
    with pytest.raises(ValueError, match=r"lr: saved 0.003, now 0.001"):
        train.train_vae(_vae(), 10, x_train=x, resume=path, **{**VAE_ARGS, "lr": 1e-3})
    with pytest.raises(ValueError, match="data: saved"):
        train.train_vae(_vae(), 10, x_train=x[:256], resume=path, **VAE_ARGS)
    with pytest.raises(ValueError, match="num_steps=4 is below the saved step 6"):
        train.train_vae(_vae(), 4, x_train=x, resume=path, **VAE_ARGS)
    with pytest.raises(FileExistsError, match="already holds a run; continue it with resume="):
        train.train_vae(_vae(), 10, x_train=x, checkpoint_path=path, **VAE_ARGS)
    with pytest.raises(ValueError, match="written by train_vae, not train_gan"):
        ring = data.make_toy("ring")
        train.train_gan(models.MLPGenerator(), models.MLPDiscriminator(), gan_lab.toy_batches(ring, 8), 10,
                        resume=path, show_progress=False)
    # a model file is not a run in progress
    model_file = tmp_path / "model.pt"
    torch.save({"model": _vae().state_dict()}, model_file)
    with pytest.raises(ValueError, match="not the checkpoint of a run in progress"):
        train.train_vae(_vae(), 10, x_train=x, resume=model_file, **VAE_ARGS)
    # the same number of steps: nothing to do, the saved history comes back
    same = _vae()
    history = train.train_vae(same, 6, x_train=x, resume=path, **VAE_ARGS)
    assert history.steps("loss")[-1] == 6


def test_the_explosion_check_keeps_its_reference_across_a_resume(tmp_path, mnist):
    """The reference is |value| at step 1; a run resumed at step 3 compares against it, not against 1."""
    x, _ = mnist
    path = tmp_path / "run.pt"
    history = train.train_vae(_vae(), 3, x_train=x, log_every=1, checkpoint_path=path, **VAE_ARGS)
    reference = load_checkpoint(path)["guard"]
    assert reference["loss"] == abs(history["loss"][0]) > 100  # about 543 nats at the start
    # with explode_factor=2 the loss (about 500) passes only because the saved reference came back
    train.train_vae(_vae(), 6, x_train=x, resume=path, explode_factor=2.0, **VAE_ARGS)
    # without it (the references of a file emptied by hand) the same resume stops at once
    state = load_checkpoint(path)
    state["guard"] = {}
    with pytest.raises(train.ExplodingLossError, match=r"loss = .* at step 4 is more than explode_factor=2"):
        train.train_vae(_vae(), 6, x_train=x, resume=state, explode_factor=2.0, **VAE_ARGS)


def test_loops_never_write_a_run_into_the_shipped_weights():
    from genimg_lib.checkpoints import WEIGHTS_DIR

    with pytest.raises(ValueError, match="checkpoint_path .* shipped weights"):
        train.train_vae(_vae(), 1, x_train=torch.rand(8, 1, 28, 28), batch_size=4,
                        checkpoint_path=WEIGHTS_DIR / "run.pt", show_progress=False)
    assert not (WEIGHTS_DIR / "run.pt").exists()


# ---------------------------------------------------------------------------
# the GAN (DCGAN on images) and the toy GAN
# ---------------------------------------------------------------------------
def _dcgan(conditional: bool = False) -> models.DCGAN:
    torch.manual_seed(0)
    return models.DCGAN(z_dim=8, width=8, num_classes=10 if conditional else 0)


@pytest.mark.parametrize("loss, n_critic, conditional", [
    ("non_saturating", 1, False), ("wasserstein_gp", 2, False), ("hinge", 1, True)])
def test_gan_resume_is_bit_for_bit(tmp_path, mnist, loss, n_critic, conditional):
    x, y = mnist
    xg, labels = x * 2 - 1, (y if conditional else None)

    def run(gan, num_steps, **kw):  # everything built afresh, as in a new session
        batches = data.infinite_batches(data.make_loader(xg, labels, batch_size=64, seed=2))
        return train.train_gan(gan.G, gan.D, batches, num_steps, loss=loss, n_critic=n_critic, lr_G=1e-3,
                               lr_D=1e-3, conditional=conditional, generator=torch.Generator().manual_seed(7),
                               show_progress=False, **kw)

    straight = _dcgan(conditional)
    h_straight = run(straight, 8)
    path = tmp_path / "gan.pt"
    run(_dcgan(conditional), 3, checkpoint_path=path)  # 3 G steps: inside the second epoch with n_critic=2
    resumed = _dcgan(conditional)
    torch.manual_seed(99)
    h_resumed = run(resumed, 8, resume=path)
    assert_same_history(h_straight, h_resumed)
    assert_same_weights((straight.G, resumed.G), (straight.D, resumed.D))  # BatchNorm buffers included


def test_gan_resume_with_the_global_rng(tmp_path):
    """generator=None draws the noise from torch's global RNG: its state is saved and restored too."""
    ring = data.make_toy("ring")

    def pair():
        torch.manual_seed(0)
        return models.MLPGenerator(hidden_dim=16), models.MLPDiscriminator(hidden_dim=16)

    G1, D1 = pair()
    torch.manual_seed(5)
    h_straight = train.train_gan(G1, D1, gan_lab.toy_batches(ring, 32, seed=1), 7, show_progress=False)
    path = tmp_path / "run.pt"
    G2, D2 = pair()
    torch.manual_seed(5)
    train.train_gan(G2, D2, gan_lab.toy_batches(ring, 32, seed=1), 3, checkpoint_path=path, show_progress=False)
    G3, D3 = pair()
    torch.manual_seed(1234)
    h_resumed = train.train_gan(G3, D3, gan_lab.toy_batches(ring, 32, seed=1), 7, resume=path, show_progress=False)
    assert_same_history(h_straight, h_resumed)
    assert_same_weights((G1, G3), (D1, D3))


def test_toy_gan_resume_is_bit_for_bit_with_snapshots(tmp_path):
    ring = data.make_toy("ring")
    args = dict(loss="non_saturating", batch_size=64, snapshot_every=4, num_fixed=32, resolution=8, seed=3)

    def pair():
        torch.manual_seed(0)
        return models.MLPGenerator(hidden_dim=32), models.MLPDiscriminator(hidden_dim=32)

    G1, D1 = pair()
    h_straight, snaps_straight = gan_lab.train_toy_gan(G1, D1, ring, 12, **args)
    path = tmp_path / "toy.pt"
    gan_lab.train_toy_gan(*pair(), ring, 8, checkpoint_path=path, **args)
    G3, D3 = pair()
    h_resumed, snaps_resumed = gan_lab.train_toy_gan(G3, D3, ring, 12, resume=path, **args)
    assert_same_history(h_straight, h_resumed)
    assert_same_weights((G1, G3), (D1, D3))
    assert [s.step for s in snaps_resumed] == [s.step for s in snaps_straight] == [0, 4, 8, 12]
    for a, b in zip(snaps_straight, snaps_resumed):
        assert (a.fake == b.fake).all() and (a.grad == b.grad).all() and (a.d_map == b.d_map).all()


def test_gan_resume_refuses_another_loss_and_unsaveable_batches(tmp_path):
    ring = data.make_toy("ring")
    path = tmp_path / "run.pt"
    G, D = models.MLPGenerator(hidden_dim=16), models.MLPDiscriminator(hidden_dim=16)
    train.train_gan(G, D, gan_lab.toy_batches(ring, 16), 2, checkpoint_path=path, show_progress=False)
    with pytest.raises(ValueError, match="loss: saved 'non_saturating', now 'hinge'"):
        train.train_gan(G, D, gan_lab.toy_batches(ring, 16), 4, loss="hinge", resume=path, show_progress=False)

    def plain_generator():
        while True:
            yield (ring.sample(16),)

    with pytest.raises(TypeError, match="batches whose position can be saved"):
        train.train_gan(G, D, plain_generator(), 4, resume=path, show_progress=False)


def test_batch_stream_position_round_trip():
    """The loader's position restored in a fresh stream gives the same next batches, across epochs."""
    x = torch.arange(10.0)[:, None]
    for consumed in range(0, 9):
        a = data.infinite_batches(data.make_loader(x, batch_size=3, seed=1))
        for _ in range(consumed):
            next(a)
        b = data.infinite_batches(data.make_loader(x, batch_size=3, seed=1))
        b.load_state_dict(a.state_dict())
        for _ in range(5):
            assert torch.equal(next(a)[0], next(b)[0])
