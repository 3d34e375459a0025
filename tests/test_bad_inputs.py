"""Bad inputs to the public API and the command line (issue #9): each one gets a clear error.

One table, `CASES`: every row calls the library the way a new user might get it wrong and
states the exact exception type and a pattern that the message must contain, one that
names the argument at fault. The command line has its own table, `CLI_CASES`; every one of
its rows also checks that the shipped weights (every file in ``genimg_lib/weights/``,
the manifest included) keep their sha256. Further down: training stops *before* a NaN or
an exploded loss reaches the weights, and a save killed with SIGKILL never costs the
previous checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from genimg_lib import cli, data, device, edit, exercises, gan_lab, losses, measures, models, recipes, scoreboard, train
from genimg_lib import monitor, viz, widgets
from genimg_lib.checkpoints import (
    WEIGHTS_DIR, CheckpointError, load_checkpoint, load_model, load_shipped, read_manifest, register_shipped,
    save_checkpoint, update_metrics,
)
from genimg_lib.classifier import train_classifier

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------
# small objects the cases share (built once, cheap)
# ---------------------------------------------------------------------------
torch.manual_seed(0)
X = torch.rand(8, 1, 28, 28)  # grey images in [0, 1]
X_TANH = X * 2 - 1
NAN_X = X.clone()
NAN_X[0, 0, 0, 0] = float("nan")
VAE = models.VAE(z_dim=2, arch="mlp", hidden_dims=(16,))
CVAE = models.CVAE(z_dim=2, arch="mlp", hidden_dims=(16,))
GAN = models.DCGAN(z_dim=8, width=4)
CGAN = models.DCGAN(z_dim=8, width=4, num_classes=10)
RING = data.make_toy("ring")
F = torch.randn(20, 4)  # features (N, d)
F_NAN = F.clone()
F_NAN[3, 1] = float("nan")
W_PPCA = torch.randn(5, 2, dtype=torch.float64)
X_PPCA = torch.randn(3, 5, dtype=torch.float64)
MU_PPCA = torch.zeros(5, dtype=torch.float64)


def _gan_batches(x=X_TANH, y=None, batch_size=4):
    return data.infinite_batches(data.make_loader(x, y, batch_size=batch_size))


def _save_then_corrupt(path: Path) -> Path:
    save_checkpoint({"w": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:100])
    return path


@dataclass
class Case:
    id: str
    call: Callable[[Path], Any]  # takes a temporary folder
    exc: type[BaseException]
    match: str  # a pattern the message must contain: it names the argument at fault


def C(id: str, call: Callable, exc: type[BaseException], match: str) -> Case:
    return Case(id, call if call.__code__.co_argcount == 1 else (lambda tmp, f=call: f()), exc, match)


CASES = [
    # --- data: the one image checker, loaders, toys, MNIST-5k --------------------------
    C("check_images-list", lambda: data.check_images([0.5], name="x"), TypeError, r"^x: expected a torch.Tensor"),
    C("check_images-no-channel", lambda: data.check_images(X[:, 0], name="x"), ValueError, r"^x: expected images of shape \(N, 1, 28, 28\).*unsqueeze"),
    C("check_images-uint8", lambda: data.check_images((X * 255).byte(), name="x"), TypeError, r"^x: expected float pixels.*x.float\(\) / 255"),
    C("check_images-nan", lambda: data.check_images(NAN_X, name="x"), ValueError, r"^x: 1 pixel\(s\) are NaN or infinite"),
    C("check_images-inf", lambda: data.check_images(X / 0, name="x"), ValueError, r"^x: \d+ pixel\(s\) are NaN or infinite"),
    C("check_images-0-255", lambda: data.check_images(X * 255, name="x"), ValueError, r"^x: expected pixels in \[0, 1\].*divide by 255"),
    C("check_images-tanh-range", lambda: data.check_images(X_TANH, name="x"), ValueError, r"^x: expected pixels in \[0, 1\].*\(x \+ 1\) / 2"),
    C("check_images-value_range", lambda: data.check_images(X, value_range=(0, 2)), ValueError, r"value_range must be one of"),
    C("dynamic_binarize-nan", lambda: data.dynamic_binarize(NAN_X), ValueError, r"dynamic_binarize\(x\): 1 pixel\(s\) are NaN"),
    C("dynamic_binarize-range", lambda: data.dynamic_binarize(X_TANH), ValueError, r"dynamic_binarize\(x\): expected pixels in \[0, 1\]"),
    C("make_loader-batch_size-0", lambda: data.make_loader(X, batch_size=0), ValueError, r"batch_size must be a positive integer, got 0"),
    C("make_loader-batch_size-float", lambda: data.make_loader(X, batch_size=2.5), ValueError, r"batch_size must be a (positive|non-negative) integer, got 2.5 \(float\)"),
    C("make_loader-batch_size-bool", lambda: data.make_loader(X, batch_size=True), ValueError, r"batch_size must be a (positive|non-negative) integer, got True \(bool\)"),
    C("make_loader-empty", lambda: data.make_loader(X[:0], batch_size=1), ValueError, r"x is empty \(0 items\)"),
    C("make_loader-list", lambda: data.make_loader([1, 2, 3], batch_size=1), TypeError, r"x must be a torch.Tensor"),
    C("make_loader-y-length", lambda: data.make_loader(X, torch.arange(3), batch_size=2), ValueError, r"x has 8 items but y has 3"),
    C("make_loader-batch-too-big", lambda: data.make_loader(X, batch_size=100), ValueError, r"batch_size=100 is larger than the 8 items.*drop_last"),
    C("make_loader-seed", lambda: data.make_loader(X, batch_size=2, seed=-1), ValueError, r"seed must be a non-negative integer"),
    C("infinite_batches-empty", lambda: data.infinite_batches(DataLoader(TensorDataset(X[:0]))), ValueError, r"the loader yields no batches"),
    C("batch_stream-global-rng", lambda: data.infinite_batches(DataLoader(TensorDataset(X), shuffle=True)).state_dict(),
      ValueError, r"this loader shuffles with the global random generator.*make_loader"),
    C("make_toy-unknown", lambda: data.make_toy("donut"), ValueError, r"unknown toy 'donut'"),
    C("make_toy-ring-n_modes-0", lambda: data.make_toy("ring", n_modes=0), ValueError, r"n_modes must be a positive integer, got 0"),
    C("make_toy-ring-n_modes-float", lambda: data.make_toy("ring", n_modes=2.5), ValueError, r"n_modes must be a positive integer, got 2.5 \(float\)"),
    C("make_toy-ring-radius", lambda: data.make_toy("ring", radius=-1.0), ValueError, r"radius must be > 0"),
    C("make_toy-ring-std-nan", lambda: data.make_toy("ring", std=float("nan")), ValueError, r"every std must be a positive finite number"),
    C("make_toy-grid-side", lambda: data.make_toy("grid", side=0), ValueError, r"side must be a positive integer"),
    C("make_toy-moons-noise", lambda: data.make_toy("moons", noise=0.0), ValueError, r"noise must be > 0"),
    C("make_toy-unknown-parameter", lambda: data.make_toy("ring", colour="red"), ValueError, r"bad parameters for toy 'ring'.*colour"),
    C("toy-sample-n", lambda: RING.sample(0), ValueError, r"n must be a positive integer, got 0"),
    C("toy-log_prob-shape", lambda: RING.log_prob(torch.zeros(4, 3)), ValueError, r"expected points of shape \(n, 2\)"),
    C("load_mnist5k-split", lambda: data.load_mnist5k("validation"), ValueError, r"unknown split 'validation'"),
    C("load_mnist5k-binarize", lambda: data.load_mnist5k("test", binarize="dynamic"), ValueError, r"unknown binarize 'dynamic'"),
    C("load_mnist5k-binarize-range", lambda: data.load_mnist5k("test", (-1, 1), binarize="static"), ValueError, r"binarize='static'.*value_range=\(0, 1\)"),
    # --- losses -----------------------------------------------------------------------
    C("bernoulli-nan", lambda: losses.bernoulli_log_likelihood(NAN_X, torch.zeros_like(X)), ValueError, r"bernoulli_log_likelihood\(x\): 1 pixel\(s\) are NaN"),
    C("bernoulli-range", lambda: losses.bernoulli_log_likelihood(X * 255, torch.zeros_like(X)), ValueError, r"bernoulli_log_likelihood\(x\): expected pixels in \[0, 1\]"),
    C("bernoulli-shapes", lambda: losses.bernoulli_log_likelihood(X, torch.zeros(8, 784)), ValueError, r"bernoulli_log_likelihood\(x, logits\): shapes differ"),
    C("gaussian_kl-shapes", lambda: losses.gaussian_kl(torch.zeros(4, 2), torch.zeros(4, 3)), ValueError, r"gaussian_kl\(mu, logvar\): shapes differ"),
    C("elbo-beta-negative", lambda: losses.elbo(X, torch.zeros_like(X), torch.zeros(8, 2), torch.zeros(8, 2), beta=-1), ValueError, r"beta must be >= 0 \(the weight of the KL term\)"),
    C("elbo-beta-nan", lambda: losses.elbo(X, torch.zeros_like(X), torch.zeros(8, 2), torch.zeros(8, 2), beta=float("nan")), ValueError, r"beta must be a finite number"),
    C("vae_loss-free_bits", lambda: losses.vae_loss(X, torch.zeros_like(X), torch.zeros(8, 2), torch.zeros(8, 2), free_bits=-0.1), ValueError, r"free_bits must be >= 0 \(nats per dimension\)"),
    C("iwae_bound-K-0", lambda: losses.iwae_bound(torch.zeros(0, 3)), ValueError, r"iwae_bound needs K >= 1 importance samples along dim=0 of log_w"),
    C("log_mean_exp-empty", lambda: losses.log_mean_exp(torch.zeros(3, 0), dim=1), ValueError, r"log_mean_exp needs at least one value along dim=1"),
    C("bits_per_dim-num_dims", lambda: losses.bits_per_dim(100.0, num_dims=0), ValueError, r"num_dims must be a positive integer"),
    C("ppca_elbo-negative-definite", lambda: losses.ppca_elbo(X_PPCA, W_PPCA, MU_PPCA, 0.5, torch.zeros(3, 2, dtype=torch.float64), -torch.eye(2, dtype=torch.float64)),
      ValueError, r"q_cov must be a symmetric positive definite"),
    C("ppca_elbo-asymmetric", lambda: losses.ppca_elbo(X_PPCA, W_PPCA, MU_PPCA, 0.5, torch.zeros(3, 2, dtype=torch.float64), torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=torch.float64)),
      ValueError, r"q_cov must be a symmetric positive definite"),
    C("ppca-sigma2", lambda: losses.ppca_log_likelihood(X_PPCA, W_PPCA, MU_PPCA, -1.0), ValueError, r"sigma2 must be one positive number"),
    C("ppca-W-shape", lambda: losses.ppca_log_likelihood(X_PPCA, W_PPCA[:4], MU_PPCA, 0.5), ValueError, r"W must be \(D, d\) with D = x.shape\[1\] = 5"),
    C("gan_losses-unknown", lambda: losses.gan_losses("wgan"), ValueError, r"unknown GAN loss 'wgan'"),
    C("gradient_penalty-shapes", lambda: losses.gradient_penalty(GAN.D, X_TANH, X_TANH[:4]), ValueError, r"gradient_penalty\(real, fake\): shapes differ"),
    # --- models -------------------------------------------------------------------------
    C("VAE-z_dim-0", lambda: models.VAE(z_dim=0), ValueError, r"z_dim must be a positive integer \(the number of latent dimensions\), got 0"),
    C("VAE-z_dim-float", lambda: models.VAE(z_dim=2.5), ValueError, r"z_dim must be a positive integer \(the number of latent dimensions\), got 2.5 \(float\)"),
    C("VAE-arch", lambda: models.VAE(arch="rnn"), ValueError, r"arch must be 'mlp' or 'conv', got 'rnn'"),
    C("CVAE-num_classes", lambda: models.CVAE(num_classes=1), ValueError, r"num_classes must be an integer >= 2"),
    C("encode-float64", lambda: VAE.encode(X.double()), TypeError, r"VAE.encode\(x\): the model's weights are torch.float32 but the input is torch.float64"),
    C("encode-uint8", lambda: VAE.encode((X * 255).byte()), TypeError, r"VAE.encode\(x\): expected float pixels"),
    C("encode-0-255", lambda: VAE.encode(X * 255), ValueError, r"VAE.encode\(x\): expected pixels in \[0, 1\].*divide by 255"),
    C("encode-nan", lambda: VAE.encode(NAN_X), ValueError, r"VAE.encode\(x\): 1 pixel\(s\) are NaN"),
    C("encode-flat", lambda: VAE.encode(X.view(8, 784)), ValueError, r"VAE.encode\(x\): expected images of shape"),
    C("encode-labels-to-VAE", lambda: VAE.encode(X, torch.zeros(8, dtype=torch.long)), ValueError, r"unconditional: pass no labels y"),
    C("decode-z-shape", lambda: VAE.decode(torch.zeros(8, 3)), ValueError, r"expected latents of shape \(N, 2\)"),
    C("CVAE-encode-no-y", lambda: CVAE.encode(X), ValueError, r"needs labels y: pass labels y of shape \(8,\)"),
    C("CVAE-encode-y-range", lambda: CVAE.encode(X, torch.full((8,), 10)), ValueError, r"labels must lie in 0..9"),
    C("CVAE-encode-y-float", lambda: CVAE.encode(X, torch.zeros(8)), ValueError, r"labels y must be integers"),
    C("CVAE-sample-y-2.7", lambda: CVAE.sample(4, y=2.7), TypeError, r"labels y must be integer class indices in 0..9, got 2.7"),
    C("CVAE-sample-y-10", lambda: CVAE.sample(4, y=10), ValueError, r"labels y must lie in 0..9"),
    C("CVAE-sample-y-count", lambda: CVAE.sample(4, y=[1, 2]), ValueError, r"labels y must be one class or 4 labels"),
    C("VAE-sample-0", lambda: VAE.sample(0), ValueError, r"num_samples must be a positive integer, got 0"),
    C("VAE-sample-float", lambda: VAE.sample(2.5), ValueError, r"num_samples must be a (positive|non-negative) integer, got 2.5"),
    C("VAE-sample-y", lambda: VAE.sample(4, y=3), ValueError, r"unconditional .*call sample\(\) without y"),
    C("DCGAN-sample-2.5", lambda: GAN.sample(2.5), ValueError, r"num_samples must be a (positive|non-negative) integer, got 2.5"),
    C("DCGAN-sample-bool", lambda: GAN.sample(True), ValueError, r"num_samples must be a (positive|non-negative) integer, got True"),
    C("DCGAN-sample-y", lambda: GAN.sample(3, y=1), ValueError, r"unconditional .*without y"),
    C("cGAN-sample-y-float", lambda: CGAN.sample(3, y=2.5), TypeError, r"labels y must be integer class indices"),
    C("estimate_log_px-batch_size-0", lambda: VAE.estimate_log_px(X, batch_size=0), ValueError, r"batch_size must be a positive integer, got 0"),
    C("estimate_log_px-num_samples-0", lambda: VAE.estimate_log_px(X, num_samples=0), ValueError, r"num_samples must be a positive integer"),
    C("estimate_log_px-nan", lambda: VAE.estimate_log_px(NAN_X), ValueError, r"VAE.estimate_log_px\(x\): 1 pixel\(s\) are NaN"),
    C("estimate_log_px-y-length", lambda: CVAE.estimate_log_px(X, y=torch.zeros(2, dtype=torch.long)), ValueError, r"x has 8 images but y has 2 labels"),
    C("DCGAN-G-z-shape", lambda: GAN.G(torch.zeros(4, 3)), ValueError, r"the generator expects noise of shape \(N, 8\)"),
    C("DCGAN-D-x-shape", lambda: GAN.D(torch.zeros(4, 784)), ValueError, r"the discriminator expects images of shape \(N, 1, 28, 28\)"),
    C("check_tanh_range-0-1", lambda: models.check_tanh_range(X), ValueError, r"real images are all >= 0.*value_range=\(-1, 1\)"),
    C("reparameterize-shapes", lambda: models.reparameterize(torch.zeros(4, 2), torch.zeros(4, 3)), ValueError, r"mu and logvar must have the same shape"),
    C("MLPGenerator-num_layers", lambda: models.MLPGenerator(num_layers=1), ValueError, r"num_layers must be an integer >= 2 \(one hidden layer at least\)"),
    C("MLPGenerator-sample-0", lambda: models.MLPGenerator().sample(0), ValueError, r"num_samples must be a positive integer"),
    # --- training loops -------------------------------------------------------------------
    C("train_vae-lr-0", lambda: train.train_vae(VAE, 1, batch_size=4, lr=0, x_train=X), ValueError, r"lr must be > 0 \(the learning rate\), got 0"),
    C("train_vae-lr-nan", lambda: train.train_vae(VAE, 1, batch_size=4, lr=float("nan"), x_train=X), ValueError, r"lr must be a finite number \(the learning rate\)"),
    C("train_vae-num_steps-negative", lambda: train.train_vae(VAE, -1, x_train=X), ValueError, r"num_steps must be a non-negative integer, got -1"),
    C("train_vae-num_steps-float", lambda: train.train_vae(VAE, 2.0, x_train=X), ValueError, r"num_steps must be a (positive|non-negative) integer, got 2.0"),
    C("train_vae-batch_size-0", lambda: train.train_vae(VAE, 1, batch_size=0, x_train=X), ValueError, r"batch_size must be a positive integer"),
    C("train_vae-beta", lambda: train.train_vae(VAE, 1, batch_size=4, beta=-1, x_train=X), ValueError, r"beta must be >= 0"),
    C("train_vae-kl_warmup_steps", lambda: train.train_vae(VAE, 1, batch_size=4, kl_warmup_steps=-5, x_train=X), ValueError, r"kl_warmup_steps must be >= 0"),
    C("train_vae-x_train-nan", lambda: train.train_vae(VAE, 1, batch_size=4, x_train=NAN_X), ValueError, r"x_train: 1 pixel\(s\) are NaN"),
    C("train_vae-x_train-0-255", lambda: train.train_vae(VAE, 1, batch_size=4, x_train=X * 255), ValueError, r"x_train: expected pixels in \[0, 1\]"),
    C("train_vae-cvae-without-labels", lambda: train.train_vae(CVAE, 1, batch_size=4, x_train=X), ValueError, r"a conditional model needs y_train"),
    C("train_vae-callback", lambda: train.train_vae(VAE, 1, batch_size=4, x_train=X, callback="plot"), TypeError, r"callback must be a function"),
    C("train_vae-explode_factor", lambda: train.train_vae(VAE, 1, batch_size=4, x_train=X, explode_factor=0.5), ValueError, r"explode_factor must be > 1"),
    C("train_vae-checkpoint_every", lambda: train.train_vae(VAE, 1, batch_size=4, x_train=X, checkpoint_every=0), ValueError, r"checkpoint_every must be a positive integer"),
    C("train_vae-resume-type", lambda: train.train_vae(VAE, 1, batch_size=4, x_train=X, resume=42), TypeError, r"resume must be a path or a dict"),
    C("train_vae-resume-missing", lambda tmp: train.train_vae(VAE, 1, batch_size=4, x_train=X, resume=tmp / "nope.pt"), CheckpointError, r"checkpoint .*nope.pt does not exist"),
    C("train_vae-model", lambda: train.train_vae("vae", 1, x_train=X), TypeError, r"model must be a VAE or CVAE"),
    C("train_gan-conditional-no-labels", lambda: train.train_gan(CGAN.G, CGAN.D, _gan_batches(), 1, conditional=True, show_progress=False),
      ValueError, r"conditional=True needs batches of \(x, y\)"),
    C("train_gan-conditional-bare-tensors", lambda: train.train_gan(CGAN.G, CGAN.D, iter([X_TANH] * 3), 1, conditional=True, show_progress=False),
      ValueError, r"conditional=True needs batches of \(x, y\)"),
    C("train_gan-conditional-unconditional-G", lambda: train.train_gan(GAN.G, GAN.D, _gan_batches(), 1, conditional=True), ValueError, r"conditional=True needs a conditional generator"),
    C("train_gan-loss", lambda: train.train_gan(GAN.G, GAN.D, _gan_batches(), 1, loss="wgan"), ValueError, r"unknown GAN loss 'wgan'"),
    C("train_gan-n_critic", lambda: train.train_gan(GAN.G, GAN.D, _gan_batches(), 1, n_critic=0), ValueError, r"n_critic is the number of D updates per G update and must be an integer >= 1"),
    C("train_gan-lr_D", lambda: train.train_gan(GAN.G, GAN.D, _gan_batches(), 1, lr_D=-1e-4), ValueError, r"lr_D must be > 0"),
    C("train_gan-betas", lambda: train.train_gan(GAN.G, GAN.D, _gan_batches(), 1, betas=(0.5, 1.5)), ValueError, r"betas must be two numbers in \[0, 1\)"),
    C("train_gan-gp_weight", lambda: train.train_gan(GAN.G, GAN.D, _gan_batches(), 1, gp_weight=-1), ValueError, r"gp_weight must be >= 0"),
    C("train_gan-dataloader", lambda: train.train_gan(GAN.G, GAN.D, data.make_loader(X_TANH, batch_size=4), 1), TypeError, r"batches must be an iterator.*infinite_batches"),
    C("train_gan-images-0-1", lambda: train.train_gan(GAN.G, GAN.D, _gan_batches(X), 1, show_progress=False), ValueError, r"real images are all >= 0"),
    C("train_gan-G-without-z_dim", lambda: train.train_gan(torch.nn.Linear(2, 2), GAN.D, _gan_batches(), 1), TypeError, r"G must have an integer attribute z_dim"),
    C("train_toy_gan-seed", lambda: gan_lab.train_toy_gan(models.MLPGenerator(), models.MLPDiscriminator(), RING, 1, seed=-1), ValueError, r"seed must be a non-negative integer"),
    C("toy_batches-batch_size", lambda: gan_lab.toy_batches(RING, 0), ValueError, r"batch_size must be a positive integer"),
    C("toy_batches-toy", lambda: gan_lab.toy_batches("ring", 8), TypeError, r"toy must be a ToyDistribution"),
    C("ToySnapshots-every", lambda: gan_lab.ToySnapshots(models.MLPGenerator(), models.MLPDiscriminator(), "non_saturating", 0, 10), ValueError, r"every must be a positive integer \(steps between snapshots\)"),
    C("train_classifier-lr", lambda: train_classifier(num_steps=1, lr=0), ValueError, r"lr must be > 0 \(the learning rate\)"),
    C("train_classifier-batch_size", lambda: train_classifier(num_steps=1, batch_size=2), ValueError, r"batch_size must be >= 4 with outlier exposure"),
    C("train_classifier-num_steps", lambda: train_classifier(num_steps=0), ValueError, r"num_steps must be a positive integer"),
    C("check_finite-nan", lambda: train.check_finite(3, loss_D=float("nan")), train.NonFiniteLossError, r"loss 'loss_D' became nan at step 3"),
    # --- checkpoints and recipes -------------------------------------------------------------
    C("save_checkpoint-not-weights-only", lambda tmp: save_checkpoint({"model": VAE}, tmp / "vae.pt"), TypeError,
      r"save_checkpoint\(vae.pt\): the object would not load back with weights_only=True.*state_dict"),
    C("load_checkpoint-missing", lambda tmp: load_checkpoint(tmp / "nope.pt"), CheckpointError, r"checkpoint .*nope.pt does not exist"),
    C("load_checkpoint-sha256", lambda tmp: load_checkpoint(_save_then_corrupt(tmp / "a.pt"), expected_sha256="0" * 64), CheckpointError, r"checkpoint .*a.pt has sha256"),
    C("load_checkpoint-truncated", lambda tmp: load_checkpoint(_save_then_corrupt(tmp / "a.pt")), CheckpointError, r"checkpoint .*a.pt could not be read"),
    C("load_shipped-unknown", lambda: load_shipped("vae_huge"), ValueError, r"no shipped checkpoint named 'vae_huge'"),
    C("load_model-unknown", lambda: load_model("vae_huge"), ValueError, r"no shipped model named 'vae_huge'"),
    C("load_model-results", lambda: load_model("vae_latent_study"), ValueError, r"'vae_latent_study' .* is not a model"),
    C("register_shipped-outside", lambda tmp: register_shipped("x", tmp / "x.pt", "cmd"), ValueError, r"x.pt must be in .*weights to be shipped"),
    C("update_metrics-unknown", lambda tmp: update_metrics("nope", {}, tmp / "MANIFEST.json"), ValueError, r"no entry 'nope'"),
    C("read_manifest-invalid", lambda tmp: (tmp / "M.json").write_text("{") and read_manifest(tmp / "M.json"), CheckpointError, r"M.json is not valid JSON"),
    C("save_run-into-package", lambda: recipes.save_run(recipes.Run("vae_mlp_z2", {"model": {}}, {}), WEIGHTS_DIR, "cmd"), PermissionError,
      r"holds the book's shipped weights.*--ship"),
    C("save_run-nan-weights", lambda tmp: recipes.save_run(recipes.Run("x", {"model": {"w": torch.tensor([float("nan")])}}, {}), tmp, "cmd"), ValueError,
      r"state\['model'\]\['w'\] holds NaN"),
    C("run_recipe-unknown", lambda: recipes.run_recipe("vae_huge"), ValueError, r"unknown recipe 'vae_huge'"),
    C("run_recipe-num_steps-0", lambda: recipes.run_recipe("vae_mlp_z2", num_steps=0), ValueError, r"num_steps must be a positive integer, got 0"),
    C("run_recipe-iwae_k-0", lambda: recipes.run_recipe("vae_mlp_z2", iwae_k=0), ValueError, r"iwae_k must be a positive integer, got 0"),
    C("run_recipe-iwae_k-gan", lambda: recipes.run_recipe("gan_dcgan", iwae_k=5), ValueError, r"iwae_k only applies to VAE recipes"),
    C("run_recipe-seed", lambda: recipes.run_recipe("gan_dcgan", seed=-1), ValueError, r"seed must be a non-negative integer"),
    # --- measures and the scoreboard ----------------------------------------------------------
    C("precision_recall-k-0", lambda: measures.precision_recall(F, F, k=0), ValueError, r"k must be a positive integer \(the number of nearest neighbours\), got 0"),
    C("precision_recall-k-negative", lambda: measures.precision_recall(F, F, k=-1), ValueError, r"k must be a positive integer \(the number of nearest neighbours\), got -1"),
    C("precision_recall-k-float", lambda: measures.precision_recall(F, F, k=2.5), ValueError, r"k must be a positive integer \(the number of nearest neighbours\), got 2.5 \(float\)"),
    C("precision_recall-dims", lambda: measures.precision_recall(F, torch.randn(20, 5)), ValueError, r"fake_features: expected features of shape \(N, 4\) like real_features, got \(20, 5\)"),
    C("precision_recall-nan-real", lambda: measures.precision_recall(F_NAN, F), ValueError, r"real_features: 1 feature value\(s\) are NaN"),
    C("precision_recall-nan-fake", lambda: measures.precision_recall(F, F_NAN), ValueError, r"fake_features: 1 feature value\(s\) are NaN"),
    C("precision_recall-empty", lambda: measures.precision_recall(F[:0], F), ValueError, r"real_features: the set is empty"),
    C("precision_recall-k-too-big", lambda: measures.precision_recall(F[:3], F[:3]), ValueError, r"k=3 nearest neighbours need more than 3 points"),
    C("fid_from_features-nan", lambda: measures.fid_from_features(torch.full((200, 64), float("nan")), torch.randn(200, 64)), ValueError, r"real_features: \d+ feature value\(s\) are NaN"),
    C("fid_from_features-few", lambda: measures.fid_from_features(torch.randn(20, 64), torch.randn(20, 64)), ValueError, r"FID needs at least 128 images per set"),
    C("kid_from_features-subset_size", lambda: measures.kid_from_features(torch.randn(200, 64), torch.randn(200, 64), subset_size=500), ValueError, r"subset_size=500 is larger than the smaller set"),
    C("kid_from_features-subsets", lambda: measures.kid_from_features(torch.randn(200, 64), torch.randn(200, 64), subsets=0), ValueError, r"subsets must be a positive integer"),
    C("estimate_nll-empty", lambda: measures.estimate_nll(VAE, X[:0]), ValueError, r"estimate_nll needs at least one image in x"),
    C("estimate_nll-nan", lambda: measures.estimate_nll(VAE, NAN_X), ValueError, r"estimate_nll\(x\): 1 pixel\(s\) are NaN"),
    C("estimate_nll-gan", lambda: measures.estimate_nll(GAN, X), TypeError, r"DCGAN has no estimate_log_px"),
    C("estimate_nll-batch_size", lambda: measures.estimate_nll(VAE, X, batch_size=0), ValueError, r"batch_size must be a positive integer"),
    C("evaluate_vae-cvae-no-y", lambda: measures.evaluate_vae(CVAE, X), ValueError, r"CVAE is conditional: pass the labels y"),
    C("evaluate_vae-iwae_k", lambda: measures.evaluate_vae(VAE, X, iwae_k=0), ValueError, r"iwae_k is the number of importance samples and must be an integer >= 1, got 0"),
    C("evaluate_vae-y-length", lambda: measures.evaluate_vae(CVAE, X, torch.zeros(3, dtype=torch.long)), ValueError, r"x has 8 images but y has 3 labels"),
    C("fid-tanh-images", lambda: measures.fid(X_TANH, X), ValueError, r"x_real: expected pixels in \[0, 1\]"),
    C("class_coverage-empty", lambda: measures.class_coverage(X[:0]), ValueError, r"class_coverage needs at least one image in x"),
    C("class_coverage-min_share", lambda: measures.class_coverage(X, min_share=-1), ValueError, r"min_share must be >= 0"),
    C("gaussian_blur-sigma", lambda: measures.gaussian_blur(X, -1.0), ValueError, r"sigma must be >= 0"),
    C("gaussian_blur-nan", lambda: measures.gaussian_blur(NAN_X, 1.0), ValueError, r"gaussian_blur\(x\): 1 pixel\(s\) are NaN"),
    C("add_pixel_noise-std", lambda: measures.add_pixel_noise(X, float("nan")), ValueError, r"std must be a finite number"),
    C("Scorer-num_samples", lambda: scoreboard.Scorer(num_samples=5000), ValueError, r"num_samples must be an integer in 1..1000"),
    C("Scorer-k", lambda: scoreboard.Scorer(num_samples=200, k=0), ValueError, r"k must be a positive integer \(the number of nearest neighbours\)"),
    C("Scorer-score-size", lambda: scoreboard.Scorer(x_real=data.load_mnist5k("test")[0][:128]).score(X), ValueError, r"this Scorer compares sets of 128 images.*got 8"),
    C("scoreboard-names-string", lambda: scoreboard.scoreboard(names="vae_mlp_z2"), TypeError, r"names must be a list of model names, e.g. \['vae_mlp_z2'\]"),
    C("scoreboard-names-unknown", lambda: scoreboard.scoreboard(names=["vae_huge"]), ValueError, r"not shipped generative models: \['vae_huge'\]"),
    C("manifest_nll-unknown", lambda: scoreboard.manifest_nll("vae_huge"), ValueError, r"no shipped model named 'vae_huge'"),
    # --- viz, widgets, gan_lab drawing ---------------------------------------------------------
    C("image_grid-empty", lambda: viz.image_grid(X[:0]), ValueError, r"x is empty \(shape \(0, 1, 28, 28\)\)"),
    C("image_grid-nan", lambda: viz.image_grid(NAN_X), ValueError, r"x: 1 value\(s\) are NaN or infinite"),
    C("image_grid-nrow", lambda: viz.image_grid(X, nrow=0), ValueError, r"nrow must be at least 1"),
    C("image_grid-channels", lambda: viz.image_grid(torch.rand(2, 5, 4, 4)), ValueError, r"expected images of shape \(N, C, H, W\)"),
    C("to_unit_range-value_range", lambda: viz.to_unit_range(X, "wide"), ValueError, r"value_range must be \(lo, hi\) or 'auto', got 'wide'"),
    C("to_unit_range-lo-hi", lambda: viz.to_unit_range(X, (1, 0)), ValueError, r"value_range must be \(lo, hi\) with lo < hi"),
    C("plot_losses-missing-key", lambda: viz.plot_losses({"loss": [1.0, 0.5]}, keys=["kl"]), ValueError, r"no curve 'kl' in the history"),
    C("scatter_2d-shape", lambda: viz.scatter_2d(torch.zeros(4, 3)), ValueError, r"expected points of shape \(n, 2\)"),
    C("animation_html-num_frames", lambda: viz.animation_html(None, lambda i: None, 0), ValueError, r"num_frames must be at least 1"),
    C("frame_scrubber-empty", lambda: widgets.frame_scrubber([]), ValueError, r"frame_scrubber needs at least one frame"),
    C("frame_scrubber-captions", lambda: widgets.frame_scrubber([np.zeros((4, 4))] * 2, captions=["one"]), ValueError, r"got 2 frames but 1 captions; give one caption per frame"),
    C("frame_scrubber-frame-type", lambda: widgets.frame_scrubber(["frame.png"]), TypeError, r"frames\[0\] must be PNG bytes"),
    C("frame_scrubber-interval", lambda: widgets.frame_scrubber([np.zeros((4, 4))], interval=0), ValueError, r"interval must be a positive integer \(milliseconds\)"),
    C("array_to_png-shape", lambda: widgets.array_to_png(np.zeros(5)), ValueError, r"image: expected an \(H, W\) or \(H, W, 3\) image"),
    C("array_to_png-nan", lambda: widgets.array_to_png(np.full((4, 4), np.nan)), ValueError, r"image: 16 pixel\(s\) are NaN"),
    C("array_to_png-scale", lambda: widgets.array_to_png(np.zeros((4, 4)), scale=0), ValueError, r"scale must be a positive integer"),
    C("snapshot_frames-empty", lambda: gan_lab.snapshot_frames([], torch.zeros(4, 2)), ValueError, r"need at least one snapshot"),
    C("ring_mode_coverage-std", lambda: gan_lab.ring_mode_coverage(torch.zeros(4, 2), torch.zeros(8, 2), std=0), ValueError, r"std and num_std must be positive"),
    # --- latent editing (Part V) -------------------------------------------------------------
    C("lerp-t-outside", lambda: edit.lerp(torch.zeros(2), torch.ones(2), 1.5), ValueError, r"t: interpolation steps must lie in \[0, 1\]"),
    C("lerp-t-nan", lambda: edit.lerp(torch.zeros(2), torch.ones(2), float("nan")), ValueError, r"t: interpolation steps must lie in \[0, 1\]"),
    C("interpolation_steps-0", lambda: edit.interpolation_steps(0), ValueError, r"num_steps must be an integer >= 2, got 0"),
    C("class_means-float-labels", lambda: edit.class_means(torch.zeros(4, 2), torch.zeros(4)), ValueError, r"y: expected integer labels of shape \(4,\)"),
    C("class_vector-source", lambda: edit.class_vector(torch.zeros(4, 2), torch.arange(4), 2.5, 1), ValueError, r"source must be a class index"),
    # --- exercises and the device -----------------------------------------------------------
    C("check-unknown-key", lambda: exercises.check("vae_99.1", 1.0), ValueError, r"unknown exercise 'vae_99.1'"),
    C("check-key-type", lambda: exercises.check(3, 1.0), TypeError, r"key must be a string such as 'vae_03_building.1'"),
    C("grade-unknown-key", lambda: exercises.grade("getting_started", 1.0), ValueError, r"unknown exercise 'getting_started'"),
    C("exercise-registered-twice", lambda: exercises.exercise("getting_started.1")(lambda a: (True, "")), ValueError, r"exercise 'getting_started.1' is registered twice"),
    C("get_device-unknown", lambda: device.get_device("tpu"), ValueError, r"unknown device 'tpu'"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_a_clear_error(case: Case, tmp_path):
    with pytest.raises(BaseException) as info:
        case.call(tmp_path)
    assert type(info.value) is case.exc, f"{case.id}: expected {case.exc.__name__}, got {type(info.value).__name__}: {info.value}"
    assert info.match(case.match)


def test_the_table_is_large_and_covers_every_area():
    assert len(CASES) >= 80
    assert len({c.id for c in CASES}) == len(CASES)


def test_what_should_work_still_works():
    """The other side of the checks: integral types of every kind, one label for many samples."""
    loader = data.make_loader(X, batch_size=np.int64(4), seed=np.int32(1))
    assert len(loader) == 2 and loader.batch_size == 4
    assert data.make_loader(X, batch_size=torch.tensor(4)).batch_size == 4
    assert CVAE.sample(np.int64(3), y=np.int64(7)).shape == (3, 1, 28, 28)
    assert CGAN.sample(3, y=7).shape == (3, 1, 28, 28)
    assert RING.sample(np.int64(5), seed=0).shape == (5, 2)
    assert len(edit.interpolation_steps(np.int64(5))) == 5
    assert edit.class_vector(torch.randn(4, 2), torch.arange(4), np.int64(0), np.int64(1)).shape == (2,)
    assert len(gan_lab.ring_mode_coverage(RING.sample(50, seed=0), data._ring_means(8, 2.0), 0.05).counts) == 8
    history = train.train_vae(models.VAE(z_dim=2, arch="mlp", hidden_dims=(8,)), np.int64(2), batch_size=np.int64(4),
                              x_train=X, show_progress=False)
    assert history.steps("loss") == [1, 2]


# ---------------------------------------------------------------------------
# The command line: every subcommand with bad arguments; the shipped weights never change
# (list, train, score, verify, student-edition, grade: `test_every_subcommand_has_bad_cases`)
# ---------------------------------------------------------------------------
def weights_sha256() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(WEIGHTS_DIR.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def shipped_before():
    before = weights_sha256()
    assert before and "MANIFEST.json" in before
    yield before
    assert weights_sha256() == before  # once more, after every case of this module


def _cli_cases(tmp: Path) -> list[tuple[str, list[str], str]]:
    a_file = tmp / "a_file.txt"
    a_file.write_text("not a folder")
    bad_json = tmp / "MANIFEST.json"
    bad_json.write_text("{not json")
    empty = tmp / "empty"
    empty.mkdir(exist_ok=True)
    W = str(WEIGHTS_DIR)
    return [
        ("no-subcommand", [], r"SUBCOMMAND"),
        ("unknown-subcommand", ["frobnicate"], r"invalid choice: 'frobnicate'"),
        ("list-missing-manifest", ["list", "--manifest", str(tmp / "nope.json")], r"argument --manifest: no manifest file"),
        ("list-invalid-manifest", ["list", "--manifest", str(bad_json)], r"argument --manifest: .*is not valid JSON"),
        ("list-extra-argument", ["list", "extra"], r"unrecognized arguments: extra"),
        ("verify-missing-manifest", ["verify", "--manifest", str(tmp / "nope.json")], r"argument --manifest: no manifest file"),
        ("verify-unknown-option", ["verify", "--fix"], r"unrecognized arguments: --fix"),
        ("train-vae-steps-0", ["train", "vae_mlp_z2", "--ship", "--steps", "0"], r"argument --steps: expected a positive integer, got 0"),
        ("train-vae-steps-negative", ["train", "vae_mlp_z2", "--ship", "--steps=-3"], r"argument --steps: expected a positive integer"),
        ("train-vae-steps-float", ["train", "vae_mlp_z2", "--ship", "--steps", "1.5"], r"argument --steps: expected a positive integer, got '1.5'"),
        ("train-vae-iwae-k-negative", ["train", "vae_mlp_z2", "--ship", "--steps", "1", "--iwae-k=-3"], r"argument --iwae-k: expected a positive integer"),
        ("train-vae-iwae-k-0", ["train", "vae_mlp_z2", "--ship", "--steps", "1", "--iwae-k", "0"], r"argument --iwae-k: expected a positive integer, got 0"),
        ("train-gan-steps-0", ["train", "gan_dcgan", "--ship", "--steps", "0"], r"argument --steps"),
        ("train-gan-iwae-k", ["train", "gan_dcgan", "--ship", "--steps", "1", "--iwae-k", "5"], r"--iwae-k applies to VAE recipes only"),
        ("train-classifier-batch-size-0", ["train", "classifier", "--ship", "--batch-size", "0"], r"unrecognized arguments: --batch-size 0"),
        ("train-unknown-name", ["train", "vae_huge", "--ship"], r"argument NAME: invalid choice: 'vae_huge'"),
        ("train-no-destination", ["train", "vae_mlp_z2", "--steps", "1"], r"--out DIR .* or --ship"),
        ("train-out-and-ship", ["train", "vae_mlp_z2", "--steps", "1", "--ship", "--out", str(tmp)], r"argument --out: not allowed with argument --ship"),
        ("train-out-is-weights", ["train", "vae_mlp_z2", "--steps", "1", "--out", W], r"--out .* is the package's weights folder; use --ship"),
        ("train-out-is-weights-relative", ["train", "vae_mlp_z2", "--steps", "1", "--out", W + "/../weights"], r"--out .* is the package's weights folder"),
        ("train-out-is-a-file", ["train", "vae_mlp_z2", "--steps", "1", "--out", str(a_file)], r"--out .*a_file.txt is a file, not a folder"),
        ("train-out-unwritable", ["train", "vae_mlp_z2", "--steps", "1", "--out", "/proc/genimg_out"], r"--out /proc/genimg_out cannot be written"),
        ("train-device", ["train", "vae_mlp_z2", "--ship", "--steps", "1", "--device", "tpu"], r"argument --device: unknown device 'tpu'"),
        ("train-seed", ["train", "vae_mlp_z2", "--ship", "--steps", "1", "--seed=-1"], r"argument --seed: expected a non-negative integer"),
        ("train-threads", ["train", "vae_mlp_z2", "--ship", "--steps", "1", "--threads", "0"], r"argument --threads: expected a positive integer"),
        ("score-num-samples-0", ["score", "--write", "--num-samples", "0"], r"argument --num-samples: expected a positive integer, got 0"),
        ("score-num-samples-small", ["score", "--write", "--num-samples", "10"], r"argument --num-samples: expected 128 to 1000 images"),
        ("score-num-samples-big", ["score", "--write", "--num-samples", "5000"], r"argument --num-samples: expected 128 to 1000 images"),
        ("score-names", ["score", "--write", "--names", "vae_huge"], r"score: --names vae_huge: not generative models"),
        ("score-names-classifier", ["score", "--write", "--names", "classifier"], r"score: --names classifier: not generative models"),
        ("score-seed", ["score", "--write", "--seed", "x"], r"argument --seed: expected a non-negative integer, got 'x'"),
        ("score-manifest", ["score", "--write", "--manifest", str(tmp / "nope.json")], r"argument --manifest: no manifest file"),
        ("student-edition-missing-path", ["student-edition", str(tmp / "nope.ipynb"), "--out", str(tmp / "s")], r"student-edition: .*nope.ipynb does not exist"),
        ("student-edition-no-notebooks", ["student-edition", str(empty), "--out", str(tmp / "s")], r"student-edition: no .ipynb in"),
        ("student-edition-no-out", ["student-edition", str(REPO / "book" / "getting_started.ipynb")], r"the following arguments are required: --out"),
        ("student-edition-out-in-weights", ["student-edition", str(REPO / "book" / "getting_started.ipynb"), "--out", W], r"--out .* is in the package's weights folder"),
        ("grade-missing-folder", ["grade", str(tmp / "nope"), "--out", str(tmp / "g")], r"grade: folder: expected a folder of submissions"),
        ("grade-empty-folder", ["grade", str(empty), "--out", str(tmp / "g")], r"grade: folder: .* holds no submissions"),
        ("grade-out-in-weights", ["grade", str(empty), "--out", W + "/grades"], r"grade: --out .* is in the package's weights folder"),
        ("grade-timeout", ["grade", str(empty), "--out", str(tmp / "g"), "--timeout", "0"], r"argument --timeout: expected a positive number of seconds"),
        ("grade-jobs", ["grade", str(empty), "--out", str(tmp / "g"), "--jobs", "0"], r"argument --jobs: expected a positive integer"),
    ]


def _cli_ids() -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return [case[0] for case in _cli_cases(Path(tmp))]


_CLI_IDS = _cli_ids()


@pytest.mark.parametrize("index", range(len(_CLI_IDS)), ids=_CLI_IDS)
def test_cli_bad_arguments_exit_2_and_leave_the_weights_alone(index, tmp_path, capsys, shipped_before):
    name, argv, match = _cli_cases(tmp_path)[index]
    try:
        status = cli.main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2, f"{name}: exit status {status}, stderr: {err}"
    assert __import__("re").search(match, err, __import__("re").S), f"{name}: {err!r} does not match {match!r}"
    assert weights_sha256() == shipped_before
    assert list(WEIGHTS_DIR.glob(".*.tmp")) == []


def test_every_subcommand_has_bad_cases(tmp_path):
    subcommands = set(cli.build_parser()._subparsers._group_actions[0].choices)
    covered = {argv[0] for _, argv, _ in _cli_cases(tmp_path) if argv}
    assert subcommands <= covered, f"subcommands without a bad-argument case: {subcommands - covered}"


def test_cli_bad_arguments_through_the_real_entry_point(shipped_before):
    """The issue's own commands, as a process: exit status 2, the argument named, nothing written."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "GENIMG_PROGRESS": "0"}
    for argv, match in [(["train", "vae_mlp_z2", "--ship", "--steps", "0"], "--steps"),
                        (["train", "vae_mlp_z2", "--ship", "--steps", "1", "--iwae-k=-3"], "--iwae-k")]:
        proc = subprocess.run([sys.executable, "-m", "genimg_lib", *argv], capture_output=True, text=True, env=env,
                              cwd=REPO, timeout=120)
        assert proc.returncode == 2 and match in proc.stderr, proc.stderr
    assert weights_sha256() == shipped_before


# ---------------------------------------------------------------------------
# NaN and exploding losses: the loops stop before the update, the caller's weights stay finite
# ---------------------------------------------------------------------------
def all_finite(*modules: torch.nn.Module) -> bool:
    return all(torch.isfinite(t).all() for m in modules for t in m.state_dict().values() if t.is_floating_point())


class NaNAfter(torch.nn.Module):
    """Wraps a model; from its ``k``-th forward call on, it multiplies the first output by NaN."""

    def __init__(self, inner: torch.nn.Module, k: int) -> None:
        super().__init__()
        self.inner, self.k, self.calls = inner, k, 0
        self.z_dim, self.num_classes = getattr(inner, "z_dim", 0), getattr(inner, "num_classes", 0)

    def forward(self, *args, **kwargs):
        self.calls += 1
        out = self.inner(*args, **kwargs)
        poison = float("nan") if self.calls >= self.k else 1.0
        return (out[0] * poison, *out[1:]) if isinstance(out, tuple) else out * poison


def test_train_vae_stops_before_a_nan_reaches_the_weights():
    torch.manual_seed(0)
    model = NaNAfter(models.VAE(z_dim=2, arch="mlp", hidden_dims=(16,)), k=4)
    with pytest.raises(train.NonFiniteLossError, match=r"loss 'loss' became nan at step 4"):
        train.train_vae(model, 10, batch_size=4, x_train=X, show_progress=False)
    assert all_finite(model)


@pytest.mark.parametrize("poisoned", ["G", "D"])
def test_train_gan_images_stops_before_a_nan_reaches_the_weights(poisoned):
    torch.manual_seed(0)
    gan = models.DCGAN(z_dim=8, width=4)
    G, D = (NaNAfter(gan.G, 5), gan.D) if poisoned == "G" else (gan.G, NaNAfter(gan.D, 5))
    G.z_dim = 8
    with pytest.raises(train.NonFiniteLossError, match=r"loss 'loss_[DG]' became nan at step [23]"):
        train.train_gan(G, D, _gan_batches(), 10, show_progress=False)
    assert all_finite(gan)


def test_train_toy_gan_stops_before_a_nan_batch_reaches_the_weights():
    torch.manual_seed(0)
    G, D = models.MLPGenerator(hidden_dim=16), models.MLPDiscriminator(hidden_dim=16)

    def batches():
        for step in range(1, 100):
            x = RING.sample(32, seed=step)
            yield (x * float("nan") if step == 6 else x,)

    with pytest.raises(train.NonFiniteLossError, match=r"loss 'loss_D' became nan at step 6"):
        train.train_gan(G, D, batches(), 10, show_progress=False)
    assert all_finite(G, D)


def test_train_classifier_refuses_to_diverge_silently(monkeypatch):
    """The issue's lr=1e6 returned feature_scale=inf; now a DivergenceError before the update, weights finite."""
    import genimg_lib.classifier as classifier_module

    built = []

    class Recorded(classifier_module.MNISTClassifier):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(classifier_module, "MNISTClassifier", Recorded)
    with pytest.raises(train.DivergenceError, match=r"at step \d+"):
        train_classifier(num_steps=30, batch_size=16, lr=1e6, log_every=5)
    assert len(built) == 1 and all_finite(built[0])


def _toy_pair():
    torch.manual_seed(0)
    return models.MLPGenerator(hidden_dim=32), models.MLPDiscriminator(hidden_dim=32)


def test_a_gan_that_diverges_while_staying_finite_is_stopped():
    """lr = 1 makes the toy GAN diverge: its losses reach 1e4 times their first values, yet stay finite."""
    G, D = _toy_pair()
    history, _ = gan_lab.train_toy_gan(G, D, RING, 100, lr_G=1.0, lr_D=1.0, batch_size=64, explode_factor=None)
    values = torch.tensor([history[k] for k in ("loss_D", "loss_G", "grad_norm_G")])
    assert torch.isfinite(values).all()  # it never becomes NaN: check_finite alone would let it run on
    reference = values[:, :monitor.EXPLODE_REFERENCE_STEPS].abs().amax(1).clamp(min=1.0)
    assert (values.abs().amax(1) > 1e4 * reference).any()

    G, D = _toy_pair()
    with pytest.raises(train.ExplodingLossError, match=r"(loss|grad_norm)_[DG] = .* at step \d+ is more than explode_factor=10000"):
        gan_lab.train_toy_gan(G, D, RING, 100, lr_G=1.0, lr_D=1.0, batch_size=64)
    assert all_finite(G, D)


def test_a_vae_that_diverges_while_staying_finite_is_stopped():
    torch.manual_seed(0)
    model = models.VAE(z_dim=2, arch="mlp", hidden_dims=(32,))
    with pytest.raises(train.DivergenceError, match=r"at step \d+"):
        train.train_vae(model, 200, batch_size=8, lr=1e3, x_train=X, log_every=1, show_progress=False)
    assert all_finite(model)


def test_normal_runs_do_not_trip_the_explosion_check():
    """The default factor leaves room: short runs of the book's settings pass with explode_factor=1e4."""
    torch.manual_seed(0)
    x, _ = data.load_mnist5k("train")
    train.train_vae(models.VAE(z_dim=2, arch="mlp", hidden_dims=(64,)), 60, x_train=x[:512], show_progress=False)
    G, D = _toy_pair()
    gan_lab.train_toy_gan(G, D, RING, 60, loss="wasserstein_gp", gp_weight=0.1, n_critic=2, lr_G=1e-3, lr_D=1e-3,
                          batch_size=64)


# ---------------------------------------------------------------------------
# Checkpoints: a refused object leaves nothing; stale temporary files go; SIGKILL never costs a file
# ---------------------------------------------------------------------------
def test_save_checkpoint_refuses_before_the_rename(tmp_path):
    path = tmp_path / "run.pt"
    save_checkpoint({"step": 1, "w": torch.ones(3)}, path)
    with pytest.raises(TypeError, match="weights_only"):
        save_checkpoint({"step": 2, "model": VAE}, path)  # a whole module: torch.load(weights_only=True) refuses it
    assert load_checkpoint(path)["step"] == 1  # the previous file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]  # and no temporary file is left


def test_save_checkpoint_removes_temporary_files_of_killed_saves(tmp_path):
    path = tmp_path / "run.pt"
    stale = [tmp_path / ".run.pt.abc123.tmp", tmp_path / ".run.pt.x.tmp"]
    for p in stale:
        p.write_bytes(b"half a checkpoint")
    other = tmp_path / ".other.pt.abc.tmp"  # another file's temporary file is not ours to remove
    other.write_bytes(b"x")
    save_checkpoint({"w": torch.ones(2)}, path)
    assert not any(p.exists() for p in stale) and other.exists()


_SAVER = textwrap.dedent("""
    import sys, torch
    from genimg_lib.checkpoints import save_checkpoint
    path, start = sys.argv[1], int(sys.argv[2])
    print("ready", flush=True)
    step = start
    while True:  # save, save, save, until killed
        step += 1
        save_checkpoint({"step": step, "w": torch.full((1_000_000,), float(step))}, path)
""")


def test_sigkill_during_saves_never_costs_the_previous_checkpoint(tmp_path):
    """Kill a process that saves 4 MB checkpoints in a loop, at random moments, 8 times (bounded: 90 s)."""
    path = tmp_path / "run.pt"
    save_checkpoint({"step": 0, "w": torch.zeros(1_000_000)}, path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    rng = np.random.default_rng(0)
    deadline, kills, temps_seen, last_step = time.monotonic() + 90, 0, 0, 0
    while kills < 8 and time.monotonic() < deadline:
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(path), str(last_step)], stdout=subprocess.PIPE,
                                env=env, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.05, 0.6))
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            proc.stdout.close()
        kills += 1
        temps_seen += len(list(tmp_path.glob(".run.pt.*.tmp")))
        state = load_checkpoint(path)  # the last complete save, whole and consistent
        assert state["step"] >= last_step
        assert torch.equal(state["w"], torch.full((1_000_000,), float(state["step"])))
        last_step = state["step"]
    assert kills >= 3, "the machine was too slow to kill the saver even 3 times in 90 s"
    save_checkpoint({"step": last_step + 1, "w": torch.zeros(1)}, path)  # the next save cleans up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]
    print(f"{kills} kills, {temps_seen} half-written temporary files seen, last complete step {last_step}")
