"""Every shipped model scored the same way: one reference set, one N, one table.

Chapter: Measuring generative models (Part IV). A `Scorer` holds ``N`` test images and
their features once, then scores any set of ``N`` samples with every measure of
`genimg_lib.measures` (FID, KID, precision/recall, class coverage). `scoreboard` does it
for every VAE and GAN in the manifest, next to data baselines that frame the numbers;
`format_scoreboard` and `plot_scoreboard` show the result. ``python -m genimg_lib score``
writes each model's scores into its manifest entry.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from torch import nn

from genimg_lib import viz
from genimg_lib.checkpoints import GENERATIVE_FAMILIES, MANIFEST_PATH, load_model, read_manifest, shipped_entries
from genimg_lib.data import IMAGE_SHAPE, NUM_CLASSES, check_int, load_mnist5k
from genimg_lib.losses import bits_per_dim
from genimg_lib.measures import (
    DomainFeatures,
    check_enough_samples,
    check_fake_images,
    coverage_from_predictions,
    default_extractor,
    fid_from_features,
    kid_from_features,
    knn_radii,
    manifold_fraction,
)
from genimg_lib.models import count_parameters


class Scorer:
    """Scores sets of ``num_samples`` images against as many images of the test split.

    The reference images (a seeded choice of test images, or ``x_real``), their
    features and k-NN radii are computed once; `score` then returns FID, KID,
    precision, recall and class coverage for one set of fakes, with the functions of
    `genimg_lib.measures`. FID depends on the number of images (see the chapter), so
    `score` refuses a set of another size.
    """

    def __init__(
        self,
        num_samples: int = 1000,
        seed: int = 0,
        x_real: torch.Tensor | None = None,
        extractor: DomainFeatures | None = None,
        k: int = 3,
        kid_subsets: int = 50,
    ) -> None:
        self.k, self.seed = check_int(k, "k", meaning="the number of nearest neighbours"), check_int(seed, "seed", minimum=0)
        self.kid_subsets = check_int(kid_subsets, "kid_subsets")
        self.extractor = extractor or default_extractor()
        if x_real is None:
            x_test, _ = load_mnist5k("test")
            num_samples = check_int(num_samples, "num_samples")
            if num_samples > len(x_test):
                raise ValueError(f"num_samples must be an integer in 1..{len(x_test)} (the test split), got {num_samples!r}")
            x_real = x_test[torch.randperm(len(x_test), generator=torch.Generator().manual_seed(seed))[:num_samples]]
        self.x_real = check_fake_images(x_real, "x_real")
        self.num_samples = len(self.x_real)
        check_enough_samples(self.num_samples, self.extractor, "Scoring")
        self.features_real, _ = self.features_and_predictions(self.x_real)
        self.radii_real = knn_radii(self.features_real, k)

    @torch.no_grad()
    def features_and_predictions(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``(N, d)`` and predicted digits ``(N,)`` of images, from one pass through the classifier."""
        classifier = self.extractor.classifier
        device = next(classifier.parameters()).device
        features, preds = [], []
        for xb in x.split(500):
            hidden = classifier.body(xb.to(device))  # one pass: features and the class vote
            features.append((hidden / classifier.feature_scale).float().cpu())
            preds.append(classifier.head(hidden).argmax(1).cpu())
        return torch.cat(features), torch.cat(preds)

    def score(self, x_fake: torch.Tensor) -> dict[str, Any]:
        """``{"fid", "kid", "kid_std", "precision", "recall", "classes_covered", "kl_uniform", "histogram"}``."""
        x_fake = check_fake_images(x_fake, "x_fake")
        if len(x_fake) != self.num_samples:
            raise ValueError(
                f"this Scorer compares sets of {self.num_samples} images (FID depends on the number); "
                f"got {len(x_fake)}. Sample exactly {self.num_samples} images, or build a "
                f"Scorer(num_samples={len(x_fake)})"
            )
        features_fake, preds = self.features_and_predictions(x_fake)
        kid_mean, kid_std = kid_from_features(self.features_real, features_fake, self.num_samples // 2,
                                              self.kid_subsets, self.seed)
        precision = manifold_fraction(self.features_real, self.radii_real, features_fake)
        recall = manifold_fraction(features_fake, knn_radii(features_fake, self.k), self.features_real)
        return {"fid": fid_from_features(self.features_real, features_fake), "kid": kid_mean, "kid_std": kid_std,
                "precision": precision, "recall": recall, **coverage_from_predictions(preds)}


def data_baselines(num_samples: int = 1000, seed: int = 0) -> dict[str, torch.Tensor]:
    """Reference "models" made of data, ``{name: (num_samples, 1, 28, 28)}``, that frame the scoreboard.

    - ``"train split"``: real training images, the best a model can hope for;
    - ``"uniform noise"``: pixels drawn uniformly, no digit at all;
    - ``"one image copied"``: a single training image N times, perfect quality and no diversity.
    """
    x_train, _ = load_mnist5k("train")
    g = torch.Generator().manual_seed(seed + 1)
    idx = torch.randperm(len(x_train), generator=g)[:num_samples]
    return {
        "train split": x_train[idx],
        "uniform noise": torch.rand(num_samples, *IMAGE_SHAPE, generator=g),
        "one image copied": x_train[idx[:1]].repeat(num_samples, 1, 1, 1),
    }


def manifest_nll(name: str, manifest_path: str | Path = MANIFEST_PATH) -> dict[str, float] | None:
    """A shipped model's test NLL from its manifest entry: ``{"nll_nats", "bits_per_dim"}``, or None.

    The VAE command line stores ``metrics["nll_nats"]`` (IWAE, k = 1000, on the test
    split); bits/dim is converted with `genimg_lib.losses.bits_per_dim` when the entry lacks it.
    Models without a likelihood (GANs) return None.
    """
    manifest = read_manifest(manifest_path)
    if name not in manifest:
        raise ValueError(f"no shipped model named {name!r} in {manifest_path}")
    metrics = manifest[name].get("metrics") or {}
    if metrics.get("nll_nats") is None:
        return None
    nll = float(metrics["nll_nats"])
    bpd = metrics.get("bits_per_dim")
    return {"nll_nats": nll, "bits_per_dim": float(bpd) if bpd is not None else float(bits_per_dim(nll))}


SCOREBOARD_COLUMNS = (
    "name", "kind", "fid", "kid", "precision", "recall", "classes_covered", "kl_uniform",
    "nll_nats", "bits_per_dim", "parameters", "train_seconds", "train_device",
)


def scoreboard(
    num_samples: int = 1000,
    names: list[str] | None = None,
    seed: int = 0,
    manifest_path: str | Path = MANIFEST_PATH,
    baselines: bool = True,
    scorer: Scorer | None = None,
) -> list[dict[str, Any]]:
    """Score every shipped generative model (manifest family ``"vae"``, ``"gan"`` or ``"hybrid"``) with the same ``num_samples``.

    Rows are dicts with the keys `SCOREBOARD_COLUMNS` (missing values are None):
    the data baselines first (kind ``"baseline"``, see `data_baselines`), then each
    model (kind = its family), all against the same ``num_samples`` test images, each model
    sampled with the same ``seed``. ``names`` restricts the models; an unknown
    name is an error. A model whose samples are not ``(N, 1, 28, 28)`` (a 2-D toy
    GAN) is left off with a warning; samples outside [0, 1] are an error. NLL comes
    from the manifest (`manifest_nll`); parameters are
    counted on the rebuilt model; the training cost is the manifest's ``cost``.
    """
    entries = shipped_entries(GENERATIVE_FAMILIES, manifest_path)
    if isinstance(names, str):
        raise TypeError(f"names must be a list of model names, e.g. [{names!r}], got the string {names!r}")
    if names is not None:
        unknown = sorted(set(names) - set(entries))
        if unknown:
            raise ValueError(f"not shipped generative models: {unknown}; the manifest has {sorted(entries) or 'none'}")
        entries = {n: entries[n] for n in names}
    scorer = scorer or Scorer(num_samples, seed=seed)
    rows: list[dict[str, Any]] = []
    if baselines:
        for name, x in data_baselines(scorer.num_samples, seed).items():
            rows.append({**dict.fromkeys(SCOREBOARD_COLUMNS), "name": name, "kind": "baseline", **_headline(scorer.score(x))})
    for name, entry in entries.items():
        model = load_model(name, manifest_path=manifest_path)
        x_fake = _sample_or_skip(name, model, scorer.num_samples, seed)
        if x_fake is None:
            continue
        scores = scorer.score(x_fake)
        cost = entry.get("cost") or {}
        row = {**dict.fromkeys(SCOREBOARD_COLUMNS), "name": name, "kind": entry["family"], **_headline(scores),
               "parameters": count_parameters(model), "train_seconds": cost.get("seconds"), "train_device": cost.get("device")}
        row.update(manifest_nll(name, manifest_path) or {})
        rows.append(row)
    return rows


def _sample_or_skip(name: str, model: nn.Module, num_samples: int, seed: int) -> torch.Tensor | None:
    """Samples of a shipped model, or None (with a warning) when it does not make MNIST images, e.g. a 2-D toy GAN."""
    model.eval()
    with torch.no_grad():
        params = list(model.parameters())
        generator = torch.Generator(device=params[0].device if params else "cpu").manual_seed(seed)
        x = model.sample(num_samples, generator=generator)
    if tuple(x.shape) != (num_samples, *IMAGE_SHAPE):
        warnings.warn(f"{name}: sample({num_samples}) has shape {tuple(x.shape)}, not MNIST images; "
                      "left off the scoreboard", stacklevel=3)
        return None
    return check_fake_images(x.detach().float().cpu(), f"{name}.sample({num_samples})")


def _headline(scores: dict[str, Any]) -> dict[str, Any]:
    """The scores a scoreboard row shows."""
    return {k: scores[k] for k in ("fid", "kid", "precision", "recall", "classes_covered", "kl_uniform")}


def format_scoreboard(rows: list[dict[str, Any]]) -> str:
    """The scoreboard as a Markdown table (numbers rounded for reading, "-" where undefined)."""
    header = ["model", "kind", "FID", "KID", "precision", "recall", "classes", "KL to uniform",
              "NLL (nats)", "bits/dim", "parameters", "training"]

    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cost = "-" if r["train_seconds"] is None else f"{r['train_seconds']:.0f} s, {r['train_device']}"
        lines.append("| " + " | ".join([
            r["name"], r["kind"], num(r["fid"], ".2f"), num(r["kid"], ".3f"), num(r["precision"], ".3f"),
            num(r["recall"], ".3f"), num(r["classes_covered"], "d"), num(r["kl_uniform"], ".3f"),
            num(r["nll_nats"], ".1f"), num(r["bits_per_dim"], ".3f"), num(r["parameters"], ","), cost,
        ]) + " |")
    return "\n".join(lines)


def plot_scoreboard(rows: list[dict[str, Any]], title: str | None = None):
    """The scoreboard in two rows of panels, sized for the book's column. Returns the figure.

    Top: FID (log scale) and the number of digits covered, as bars that share the
    rows' names; bottom: precision against recall, one labelled point per row. The
    figure is `genimg_lib.viz.COLUMN_WIDTH` wide, so its labels stay readable on the page.
    """
    colors = {"baseline": "0.6", "vae": viz.PALETTE[0], "gan": viz.PALETTE[3], "hybrid": viz.PALETTE[2]}
    names = [r["name"] for r in rows]
    c = [colors.get(r["kind"], "C2") for r in rows]
    bars_height = 0.8 + 0.3 * max(len(rows), 4)  # inches: one bar per row
    scatter_height = 4.0
    fig = plt.figure(figsize=viz.figsize(bars_height + scatter_height + 0.6))
    grid = fig.add_gridspec(2, 2, height_ratios=[bars_height, scatter_height], width_ratios=[2.2, 1],
                            hspace=0.35, wspace=0.08, top=0.9 if title else 0.97, bottom=0.07)
    ax_fid = fig.add_subplot(grid[0, 0])
    ax_cov = fig.add_subplot(grid[0, 1], sharey=ax_fid)
    ax_pr = fig.add_subplot(grid[1, :])
    y = list(range(len(rows)))[::-1]
    ax_fid.barh(y, [max(r["fid"], 1e-3) for r in rows], color=c)
    ax_fid.set(yticks=y, yticklabels=names, xscale="log", xlabel="domain FID (log scale, lower is better)",
               title="FID")
    ax_cov.barh(y, [r["classes_covered"] for r in rows], color=c)
    ax_cov.set(xlim=(0, NUM_CLASSES + 0.5), xticks=[0, 5, 10], xlabel="digits covered (of 10)",
               title="class coverage")
    ax_cov.tick_params(axis="y", labelleft=False)
    placed: list[tuple[float, float]] = []
    for r, cc in zip(rows, c):
        pt = (r["recall"], r["precision"])
        ax_pr.scatter(*pt, color=cc, s=40, zorder=3)
        # a label that would run into an already labelled point to its right goes on the left
        crowded = any(abs(pt[1] - q[1]) < 0.05 and -0.05 < q[0] - pt[0] < 0.3 for q in placed)
        ax_pr.annotate(r["name"], pt, textcoords="offset points", xytext=(-5, 3) if crowded else (4, 3),
                       ha="right" if crowded else "left", fontsize=9)
        placed.append(pt)
    ax_pr.set(xlim=(-0.05, 1.1), ylim=(-0.05, 1.1), xlabel="recall (diversity)", ylabel="precision (quality)",
              title="precision and recall (k = 3)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=col) for col in colors.values()]
    ax_pr.legend(handles, ["data baseline", "VAE", "GAN", "VAE-GAN"], loc="lower right")
    if title:
        fig.suptitle(title)
    return fig
