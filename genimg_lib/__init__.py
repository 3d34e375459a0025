"""genimg_lib: the small companion library of the genimg book.

One module per idea, each readable in one sitting, listed in the order the book meets them:

- `device`: pick CUDA/MPS/CPU, seed everything, print the environment;
- `data`: MNIST-5k, scikit-learn's digits and toy distributions, all offline; the one image checker;
- `viz`: image grids, loss curves, 2-D plots and animations in one style;
- `widgets`: ipywidgets that keep working on the static website;
- `checkpoints`: atomic saves, checksummed loads, the shipped-weights manifest, `load_model`;
- `losses`: the objectives (ELBO pieces, GAN losses), formulas in the docstrings;
- `models`: the book's models (VAE, CVAE, DCGAN, the toy GAN's MLPs), shapes written down;
- `monitor`: what every loop records (`History`) and the checks that stop a run gone wrong;
- `train`: the training loops, `train_vae` and `train_gan`, and resuming a run;
- `gan_lab`: watching a toy GAN train (heat maps, gradient arrows) and measuring mode collapse;
- `classifier`: the domain classifier whose features the measures use;
- `measures`: FID, KID, precision/recall, class coverage and likelihoods;
- `scoreboard`: every shipped model scored the same way;
- `morpho`: morphometrics of a digit (slant, thickness, width, height, area), after Morpho-MNIST;
- `edit`: editing in latent space: interpolation (lerp, slerp), class vectors, attribute directions, measured edits;
- `invert`: inversion (optimization, encoder, hybrid), inpainting and denoising with a generative prior, PSNR, the typical set;
- `hybrid`: the VAE-GAN, a VAE whose decoder is also a GAN generator (an adversarial fine-tune, its likelihood kept);
- `fewlabels`: classification with 100 labels, helped by a VAE's codes or a conditional generator's samples;
- `troubleshoot`: diagnostics for training that goes wrong (guarded runs, grey share, the aggregate posterior, compute);
- `diffusion`: a denoising diffusion model on the 2-D toys, and its loss as a weighted ELBO;
- `recipes`: how each shipped checkpoint was trained, and shipping a new one safely;
- `cli`: the command line, ``python -m genimg_lib`` (``genimg``);
- `explorer`: a decoder's forward pass exported to JavaScript, for latent sliders that run in the browser;
- `exercises`: checkers for the exercises at the end of each chapter;
- `teaching`: student editions of the chapters, and a grader for a class's notebooks.
"""

__version__ = "0.2.0"
