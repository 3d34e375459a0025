"""genimg_lib: the small companion library of the genimg book.

One module per idea, each readable in one sitting:

- `device`: pick CUDA/MPS/CPU, seed everything, print the environment;
- `data`: MNIST-5k, scikit-learn digits and toy distributions, all offline;
- `viz`: image grids, loss curves, 2-D plots and animations in one style;
- `widgets`: ipywidgets that keep working on the static website;
- `train`: the shared pieces of a training loop (history, progress, NaN guard);
- `checkpoints`: atomic saves, checksummed loads, the shipped-weights manifest;
- `models`: the book's models, rebuilt by name from the manifest;
- `losses`: the objectives (ELBO pieces, GAN losses), formulas in the docstrings;
- `metrics`: FID, KID, precision/recall and coverage on a domain classifier's features;
- `gan_lab`: watching a toy GAN train (heat maps, gradient arrows) and measuring mode collapse;
- `exercises`: checkers for the exercises at the end of each chapter.
"""

__version__ = "0.1.0"
