"""genimg_lib.recipes: one recipe per shipped file, the manifest agrees with it, arguments are
checked before any training, and a run never lands in the shipped weights unless asked.

(The recipes run end to end, two steps each, in tests/test_cli.py.)"""

import pytest
import torch

from genimg_lib import checkpoints as ck
from genimg_lib import recipes
from genimg_lib.models import DCGAN
from genimg_lib.train import History


def test_one_recipe_per_shipped_file():
    assert set(recipes.RECIPES) == set(ck.read_manifest())
    assert set(recipes.RECIPES) == {"vae_conv_z16", "vae_mlp_z2", "cvae_z8", "vae_latent_study",
                                    "gan_dcgan", "gan_wgan_gp", "gan_cgan", "classifier", "gan_dcgan_encoder",
                                    "vaegan_conv_z16", "vaegan_sweep", "faq_study"}


@pytest.mark.parametrize("name", sorted(recipes.RECIPES))
def test_the_manifest_records_the_recipes_command_cost_and_config(name):
    recipe, entry = recipes.RECIPES[name], ck.read_manifest()[name]
    assert entry["command"] == recipes.recipe_command(name) == f"python -m genimg_lib train {name} --ship"
    kind = recipe["kind"]
    if kind == "vae":
        assert entry["class"] == recipe["cls"] and entry["family"] == "vae"
        assert entry["config"] == recipe["model"]
        assert entry["cost"]["steps"] == recipe["train"]["num_steps"]
        assert entry["metrics"]["iwae_k"] == recipe["iwae_k"]
    elif kind == "gan":
        assert entry["class"] == "DCGAN" and entry["family"] == "gan" and entry["config"] == recipe["model"]
        assert entry["cost"]["steps"] == recipe["num_steps"]
        expected = {k: (list(v) if isinstance(v, tuple) else v) for k, v in recipe.items() if k not in ("kind", "model")}
        assert entry["training"] == expected
    elif kind == "classifier":
        assert entry["class"] == "MNISTClassifier" and entry["family"] == "classifier"
        assert {k: v for k, v in entry["config"].items() if k != "feature_scale"} == recipe["model"]
        assert entry["cost"]["steps"] == recipe["train"]["num_steps"]
    elif kind == "gan_encoder":
        assert entry["class"] == "GANEncoder" and entry["family"] == "encoder"
        gan = ck.read_manifest()[recipe["gan"]]
        assert entry["config"] == {"z_dim": gan["config"]["z_dim"], **recipe["model"]}
        assert entry["training"] == dict(recipe["train"], gan=recipe["gan"], gan_sha256=gan["sha256"]), (
            "the shipped encoder was trained for another checkpoint of its GAN: retrain it with "
            f"python -m genimg_lib train {name} --ship")
        assert entry["cost"]["steps"] == recipe["train"]["num_steps"]
        assert entry["bytes"] < 1_000_000
    elif kind == "vaegan":
        assert entry["class"] == "VAEGAN" and entry["family"] == "hybrid"
        assert entry["config"]["d_width"] == recipe["model"]["d_width"]
        assert entry["cost"]["steps"] == recipe["train"]["num_steps"]
        assert entry["metrics"]["iwae_k"] == recipe["iwae_k"]
        assert entry["training"] == {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in recipe["train"].items()},
                                     "init": recipe["init"], "init_sha256": entry["training"]["init_sha256"]}
    elif kind == "vaegan_sweep":
        assert entry["family"] == "results" and "class" not in entry
        assert entry["cost"]["steps"] == recipe["train"]["num_steps"] * len(recipe["adv_weights"])
        assert entry["config"]["adv_weights"] == recipe["adv_weights"] and entry["metrics"]["iwae_k"] == recipe["iwae_k"]
    elif kind == "faq_study":  # the sweeps of Troubleshooting and FAQ: results, not a model
        assert entry["family"] == "results" and "class" not in entry
        assert {k: v for k, v in entry["config"].items() if k != "gan_recipe"} == \
            {k: v for k, v in recipe.items() if k != "kind"}
        assert entry["config"]["gan_recipe"]["model"] == recipes.RECIPES[recipe["gan"]["recipe"]]["model"]
        assert entry["metrics"]["iwae_k"] == recipe["iwae_k"] and entry["bytes"] < 1_000_000
    else:  # the latent study: results, not a model
        assert kind == "vae_study" and entry["family"] == "results" and "class" not in entry
        runs = len(recipe["sweep"]["betas"]) + len(recipe["collapse"]["runs"])
        assert entry["cost"]["steps"] == recipe["sweep"]["train"]["num_steps"] * runs
        assert {k: v for k, v in entry["config"].items() if k in ("sweep", "collapse", "iwae_k")} == \
            {k: v for k, v in recipe.items() if k in ("sweep", "collapse", "iwae_k")}


def test_the_shipped_vaegan_was_fine_tuned_from_the_shipped_vae_and_holds_its_history():
    state, recipe = ck.load_shipped("vaegan_conv_z16"), recipes.RECIPES["vaegan_conv_z16"]
    entry = ck.read_manifest()["vaegan_conv_z16"]
    steps = recipe["train"]["num_steps"]
    # the VAE it started from is still the shipped one (else: train vaegan_conv_z16 --ship again)
    assert entry["training"]["init_sha256"] == ck.read_manifest()[recipe["init"]]["sha256"]
    assert state["snapshots"]["steps"].tolist() == [s for s in recipes.VAEGAN_SNAPSHOT_STEPS if s <= steps]
    assert state["snapshots"]["images"].dtype == torch.uint8
    assert History.from_state_dict(state["history"]).steps("loss")[-1] == steps
    sweep = ck.load_shipped("vaegan_sweep")
    assert sweep["config"]["init_sha256"] == entry["training"]["init_sha256"]
    assert sweep["results"]["adv_weights"].tolist() == recipes.RECIPES["vaegan_sweep"]["adv_weights"]


@pytest.mark.parametrize("name", ["gan_dcgan", "gan_wgan_gp", "gan_cgan"])
def test_shipped_gans_hold_their_history_and_the_snapshots_of_the_recipe(name):
    state, steps = ck.load_shipped(name), recipes.RECIPES[name]["num_steps"]
    expected_steps = [s for s in recipes.GAN_SNAPSHOT_STEPS if s <= steps]
    expected_steps += [] if steps in expected_steps else [steps]
    assert state["snapshots"]["steps"].tolist() == expected_steps
    model = DCGAN(**state["config"])
    z, y = recipes.fixed_noise(model)
    assert state["snapshots"]["images"].shape == (len(expected_steps), len(z), 1, 28, 28)
    assert state["snapshots"]["images"].dtype == torch.uint8
    assert all(len(curve["value"]) == steps for curve in state["history"].values())


def test_recipe_command():
    assert recipes.recipe_command("gan_dcgan") == "python -m genimg_lib train gan_dcgan --ship"
    assert recipes.recipe_command("vae_mlp_z2", num_steps=2, seed=3, iwae_k=5) == \
        "python -m genimg_lib train vae_mlp_z2 --ship --steps 2 --iwae-k 5 --seed 3"
    # a run written to a folder records that folder, never --ship (quoted for the shell)
    assert recipes.recipe_command("gan_dcgan", num_steps=2, out_dir="my runs") == \
        "python -m genimg_lib train gan_dcgan --out 'my runs' --steps 2"


def test_check_recipe_name_returns_a_copy():
    recipe = recipes.check_recipe_name("gan_dcgan")
    recipe["model"]["z_dim"] = 1
    assert recipes.RECIPES["gan_dcgan"]["model"]["z_dim"] == 64
    with pytest.raises(ValueError, match=r"unknown recipe 'gan_stylegan'; the shipped names are \['classifier'"):
        recipes.check_recipe_name("gan_stylegan")


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="nope"), "unknown recipe 'nope'"),
    (dict(name="gan_dcgan", num_steps=0), "num_steps must be a positive integer, got 0"),
    (dict(name="gan_dcgan", num_steps=True), "num_steps must be a positive integer, got True"),
    (dict(name="vae_mlp_z2", iwae_k=0), "iwae_k must be a positive integer"),
    (dict(name="gan_dcgan", iwae_k=5), "iwae_k only applies to VAE recipes, not to 'gan_dcgan'"),
    (dict(name="classifier", seed=-1), "seed must be a non-negative integer, got -1"),
    (dict(name="classifier", seed=1.5), "seed must be a non-negative integer"),
])
def test_run_recipe_checks_every_argument_before_training(kwargs, match):
    logged = []
    with pytest.raises(ValueError, match=match):
        recipes.run_recipe(log=logged.append, **kwargs)
    assert logged == []  # nothing ran


def test_fixed_noise():
    z, y = recipes.fixed_noise(DCGAN(z_dim=8, width=4))
    assert z.shape == (64, 8) and y is None
    torch.testing.assert_close(z, torch.randn(64, 8, generator=torch.Generator().manual_seed(1234)))
    z, y = recipes.fixed_noise(DCGAN(z_dim=8, width=4, num_classes=10))
    assert z.shape == (60, 8) and y.tolist() == list(range(10)) * 6  # one class per column of a 10-wide grid


# ---------------------------------------------------------------------------
# save_run: never over the shipped weights unless asked
# ---------------------------------------------------------------------------
def _run(name="toy"):
    state = {"model": {"w": torch.arange(4.0)}, "config": {"z_dim": 2}}
    return recipes.Run(name, state, {"family": "results", "config": {"z_dim": 2}, "cost": {"seconds": 0.1}, "metrics": {"a": 1}})


def test_save_run_writes_the_file_then_registers_it(tmp_path):
    out = tmp_path / "runs"
    entry = recipes.save_run(_run(), out, "python -m genimg_lib train toy --out runs")
    assert sorted(p.name for p in out.iterdir()) == ["MANIFEST.json", "toy.pt"]
    assert entry == ck.read_manifest(out / "MANIFEST.json")["toy"]
    assert entry["sha256"] == ck.sha256_file(out / "toy.pt") and entry["metrics"] == {"a": 1}
    assert entry["command"] == "python -m genimg_lib train toy --out runs"
    torch.testing.assert_close(ck.load_shipped("toy", manifest_path=out / "MANIFEST.json")["model"]["w"], torch.arange(4.0))


def test_save_run_refuses_the_package_weights_unless_shipping(tmp_path):
    before = {p.name: p.read_bytes() for p in ck.WEIGHTS_DIR.iterdir()}
    for folder in (ck.WEIGHTS_DIR, ck.WEIGHTS_DIR / ".." / "weights"):
        with pytest.raises(PermissionError, match=r"holds the book's shipped weights.*--ship.*--out DIR"):
            recipes.save_run(_run("vae_mlp_z2"), folder, "cmd")
    with pytest.raises(ValueError, match=r"ship=True writes into .*weights"):
        recipes.save_run(_run(), tmp_path, "cmd", ship=True)
    assert list(tmp_path.iterdir()) == []
    assert {p.name: p.read_bytes() for p in ck.WEIGHTS_DIR.iterdir()} == before

