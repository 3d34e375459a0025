"""Saving and loading model weights safely, and the checkpoints that ship with the book.

Chapter: Getting started. Every chapter that trains a model loads its shipped model
with `load_model` (or the raw checkpoint with `load_shipped`).

- `save_checkpoint` is atomic: it writes a temporary file next to the target,
  flushes it to disk, then renames it over the target, so a crash never leaves half
  a file under the real name.
- `load_checkpoint` uses ``torch.load(weights_only=True)``, which refuses to run
  code hidden in a pickle, and checks a sha256 checksum when one is given.
- Shipped checkpoints live in ``genimg_lib/weights/`` and are listed in
  ``MANIFEST.json`` with their sha256, the command that regenerates each one, its
  training cost and its metrics. `load_shipped` verifies the checksum on every load.
- `load_model` rebuilds a shipped model by name: the manifest names its class, looked
  up in the explicit table `MODEL_CLASSES`, and its constructor arguments.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genimg_lib.classifier import MNISTClassifier
from genimg_lib.invert import GANEncoder
from genimg_lib.hybrid import VAEGAN
from genimg_lib.models import CVAE, DCGAN, VAE

#: Every class a shipped checkpoint can hold, by the name the manifest's ``"class"`` gives.
MODEL_CLASSES: dict[str, type[nn.Module]] = {
    "VAE": VAE,
    "CVAE": CVAE,
    "DCGAN": DCGAN,
    "MNISTClassifier": MNISTClassifier,
    "GANEncoder": GANEncoder,
    "VAEGAN": VAEGAN,
}
#: The manifest families of generative models (the others: ``"classifier"``, ``"encoder"``, ``"results"``);
#: ``"hybrid"``: a VAE trained with a GAN's loss too (`genimg_lib.hybrid`).
GENERATIVE_FAMILIES = ("vae", "gan", "hybrid")

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST_PATH = WEIGHTS_DIR / "MANIFEST.json"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupted, or not the file the manifest expects."""


def sha256_file(path: str | Path) -> str:
    """The hex sha256 digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(obj: dict[str, Any], path: str | Path) -> str:
    """Save ``obj`` (tensors, numbers, strings, lists, dicts) atomically; return its sha256.

    The object is written to a temporary file next to ``path``, flushed to disk, read
    back with ``weights_only=True`` (so a file that `load_checkpoint` would refuse is
    never created), renamed over ``path``, and the folder is flushed too. A crash at any
    moment leaves either the old file or the new one under ``path``, never half a file;
    temporary files left by a killed earlier save are removed. The object must load under
    ``weights_only=True``: state dicts, tensors and plain Python containers, not arbitrary classes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left behind by a killed save
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        try:
            torch.load(tmp, map_location="cpu", weights_only=True)
        except Exception as err:
            raise TypeError(
                f"save_checkpoint({path.name}): the object would not load back with weights_only=True "
                f"({type(err).__name__}: {str(err).splitlines()[0]}); save only tensors, numbers, strings, "
                "lists and dicts (e.g. model.state_dict(), not the model)"
            ) from None
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return sha256_file(path)


def load_checkpoint(
    path: str | Path,
    expected_sha256: str | None = None,
    map_location: str | torch.device = "cpu",
    regenerate: str | None = None,
) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``, verifying its sha256 if given.

    ``regenerate`` is the command that recreates the file; it goes into any error
    message so that the reader knows how to fix the problem.
    """
    path = Path(path)
    fix = f" Regenerate it with: {regenerate}" if regenerate else ""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist.{fix}")
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise CheckpointError(
                f"checkpoint {path} has sha256 {actual[:16]}..., but {expected_sha256[:16]}... "
                f"was expected: the file is corrupted or is not the one the manifest lists.{fix}"
            )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"checkpoint {path} could not be read ({type(err).__name__}: {str(err).splitlines()[0]}); "
            f"it is truncated, corrupted or not a torch checkpoint.{fix}"
        ) from err


def read_manifest(manifest_path: str | Path = MANIFEST_PATH) -> dict[str, dict[str, Any]]:
    """The shipped checkpoints: ``{name: {"file", "sha256", "command", "cost", "metrics", ...}}``."""
    manifest_path = Path(manifest_path)
    if not manifest_path.exists():
        return {}
    try:
        return json.loads(manifest_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{manifest_path} is not valid JSON ({err}); restore it with git") from err


def _write_manifest(manifest: dict[str, dict[str, Any]], manifest_path: Path) -> None:
    """Replace the manifest atomically (write a temporary file, flush, rename): the one writer."""
    tmp = manifest_path.with_suffix(".json.tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, manifest_path)


def register_shipped(
    name: str,
    path: str | Path,
    command: str,
    manifest_path: str | Path = MANIFEST_PATH,
    **info: Any,
) -> dict[str, Any]:
    """Add or replace ``name`` in the manifest with the file's sha256, size and ``info``.

    ``path`` must lie in the manifest's folder. ``command`` is what regenerates it;
    ``info`` holds the rest (training cost, device, metrics).
    """
    manifest_path = Path(manifest_path)
    path = Path(path).resolve()
    if path.parent != manifest_path.resolve().parent:
        raise ValueError(f"{path} must be in {manifest_path.parent} to be shipped")
    manifest = read_manifest(manifest_path)
    entry = {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size, "command": command, **info}
    manifest[name] = entry
    _write_manifest(manifest, manifest_path)
    return entry


def update_metrics(name: str, metrics: dict[str, Any], manifest_path: str | Path = MANIFEST_PATH) -> dict[str, Any]:
    """Merge ``metrics`` into ``manifest[name]["metrics"]``; the file and its sha256 are untouched."""
    manifest_path = Path(manifest_path)
    manifest = read_manifest(manifest_path)
    if name not in manifest:
        raise ValueError(f"no entry {name!r} in {manifest_path}; entries: {sorted(manifest) or 'none'}")
    manifest[name]["metrics"] = {**(manifest[name].get("metrics") or {}), **metrics}
    _write_manifest(manifest, manifest_path)
    return manifest[name]


def load_shipped(
    name: str, map_location: str | torch.device = "cpu", manifest_path: str | Path = MANIFEST_PATH
) -> dict[str, Any]:
    """Load a checkpoint that ships with the package, after checking its sha256."""
    manifest = read_manifest(manifest_path)
    if name not in manifest:
        raise ValueError(f"no shipped checkpoint named {name!r}; available: {sorted(manifest) or 'none yet'}")
    entry = manifest[name]
    path = Path(manifest_path).parent / entry["file"]
    return load_checkpoint(path, entry["sha256"], map_location, regenerate=entry.get("command"))


def verify_shipped(manifest_path: str | Path = MANIFEST_PATH) -> dict[str, str]:
    """Check every shipped file against its sha256; returns ``{name: "ok" or the problem}``."""
    results = {}
    for name, entry in read_manifest(manifest_path).items():
        path = Path(manifest_path).parent / entry["file"]
        if not path.is_file():
            results[name] = "missing"
        elif sha256_file(path) != entry["sha256"]:
            results[name] = "sha256 mismatch"
        else:
            results[name] = "ok"
    return results


def shipped_entries(families: tuple[str, ...] | None = None, manifest_path: str | Path = MANIFEST_PATH) -> dict[str, dict[str, Any]]:
    """The manifest's entries, by name (sorted), restricted to ``families`` (e.g. `GENERATIVE_FAMILIES`) if given."""
    manifest = read_manifest(manifest_path)
    return {n: e for n, e in sorted(manifest.items()) if families is None or e.get("family") in families}


def load_model(
    name: str, device: str | torch.device = "cpu", manifest_path: str | Path = MANIFEST_PATH
) -> nn.Module:
    """Rebuild the shipped model ``name``: its class from `MODEL_CLASSES`, its config and verified weights, in eval mode.

    ``manifest_path`` may point at the manifest of a folder written by
    ``python -m genimg_lib train NAME --out DIR`` to load a model you trained yourself.
    """
    manifest = read_manifest(manifest_path)
    if name not in manifest:
        raise ValueError(f"no shipped model named {name!r} in {manifest_path}; available: {sorted(manifest) or 'none'}")
    entry = manifest[name]
    cls_name = entry.get("class")
    if cls_name not in MODEL_CLASSES:
        raise ValueError(
            f"{name!r} in {manifest_path} is not a model (class {cls_name!r}); the model classes are "
            f"{sorted(MODEL_CLASSES)}. Load a results file with load_shipped({name!r})"
        )
    model = MODEL_CLASSES[cls_name](**entry.get("config", {}))
    model.load_state_dict(load_shipped(name, map_location=device, manifest_path=manifest_path)["model"])
    return model.to(device).eval()
