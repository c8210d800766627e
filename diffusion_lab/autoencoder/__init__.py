"""The autoencoder stage of latent diffusion: an image <-> latent map trained (or loaded) before
the diffusion model, which then only learns the latents' distribution.

* ``kl_autoencoder``: the KL-regularised convolutional autoencoder (Stable Diffusion's kind);
* ``pretrained``: diffusers' ``AutoencoderKL`` read from a local folder, same interface;
* ``lit_module``: the Lightning module that trains a ``KLAutoencoder``;
* ``reconstructions``: the dashboard callback (input / reconstruction grid, error, latent stats);
* ``load``: an autoencoder from a checkpoint file or a diffusers folder, with its identity;
* ``train``: the stage's task (``scripts/train_autoencoder.py``), with checkpoints and resume.

Every autoencoder offers ``encode(x) -> (mean, logvar)`` and ``decode(z) -> x`` on images in
[-1, 1], and ``latent_shape(image_shape)``.
"""
