"""genimg_lib.classifier: the domain classifier's shapes, its training loop, and the shipped copy."""

import math

import pytest
import torch

from genimg_lib import classifier
from genimg_lib.checkpoints import load_model, read_manifest
from genimg_lib.data import load_mnist5k
from genimg_lib.train import History


def test_classifier_shapes_and_feature_scale():
    model = classifier.MNISTClassifier(feature_scale=2.0)
    x = torch.rand(5, 1, 28, 28)
    assert model(x).shape == (5, 10)
    assert model.features(x).shape == (5, model.num_features) == (5, 64)
    torch.testing.assert_close(model.features(x), model.body(x) / 2.0)
    torch.testing.assert_close(model(x), model.head(model.body(x)))


def test_train_classifier_returns_the_model_and_a_history_and_calls_back():
    calls = []
    model, history = classifier.train_classifier(num_steps=2, batch_size=8, log_every=1,
                                                 callback=lambda step, h: calls.append((step, len(h["loss"]))))
    assert isinstance(model, classifier.MNISTClassifier) and not model.training
    assert isinstance(history, History) and set(history) == {"loss", "acc"}
    assert history.steps("loss") == [1, 2] and calls == [(1, 1), (2, 2)]
    assert all(0 <= a <= 1 for a in history["acc"]) and all(math.isfinite(v) for v in history["loss"])
    # feature_scale: the root mean squared feature on the training split, rounded to 4 digits
    x, _ = load_mnist5k("train")
    with torch.no_grad():
        rms = model.body(x).pow(2).mean().sqrt().item()
    assert model.feature_scale == pytest.approx(rms, abs=6e-5)
    # the default log_every logs the mean of every 100 steps and the last one
    _, short = classifier.train_classifier(num_steps=2, batch_size=8)
    assert short.steps("loss") == [2]


def test_train_classifier_bad_arguments():
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        classifier.train_classifier(num_steps=0)
    with pytest.raises(ValueError, match="log_every must be a positive integer"):
        classifier.train_classifier(num_steps=1, log_every=0)


def test_outlier_images_are_noise_salt_and_blobs_in_range():
    out = classifier.outlier_images(8, torch.Generator().manual_seed(0))
    assert out.shape == (8, 1, 28, 28) and out.min() >= 0 and out.max() <= 1
    salt = out[4:6]
    assert set(salt.unique().tolist()) <= {0.0, 1.0}  # a quarter: sparse salt
    blobs = out[6:]
    assert torch.allclose(blobs.amin((1, 2, 3)), torch.zeros(2)) and torch.allclose(blobs.amax((1, 2, 3)), torch.ones(2), atol=1e-6)
    torch.testing.assert_close(out, classifier.outlier_images(8, torch.Generator().manual_seed(0)))


def test_random_shift_translates_by_at_most_max_shift():
    x = torch.zeros(50, 1, 28, 28)
    x[:, 0, 14, 14] = 1.0
    shifted = classifier._random_shift(x, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape and (shifted.flatten(1).sum(1) == 1).all()  # the pixel is moved, not lost
    rows, cols = shifted[:, 0].flatten(1).argmax(1).div(28, rounding_mode="floor"), shifted[:, 0].flatten(1).argmax(1) % 28
    assert ((rows - 14).abs() <= 2).all() and ((cols - 14).abs() <= 2).all()
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 10  # the shifts vary


def test_classifier_accuracy_counts_matching_predictions():
    model = classifier.MNISTClassifier()
    x, y = torch.rand(30, 1, 28, 28), torch.randint(0, 10, (30,))
    with torch.no_grad():
        expected = (model(x).argmax(1) == y).float().mean().item()
    assert classifier.classifier_accuracy(model, x, y, batch_size=7) == pytest.approx(expected)


def test_shipped_classifier_accuracy():
    x_test, y_test = load_mnist5k("test")
    clf = load_model("classifier")
    acc = classifier.classifier_accuracy(clf, x_test, y_test)
    assert acc >= 0.97
    entry = read_manifest()["classifier"]
    assert entry["metrics"]["test_accuracy"] == pytest.approx(acc, abs=1e-4)
    assert entry["bytes"] <= 2_000_000
    assert clf.feature_scale == entry["config"]["feature_scale"]
