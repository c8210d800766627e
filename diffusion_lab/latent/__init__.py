"""Diffusion in an autoencoder's latent space (Rombach et al. 2022).

* ``scale``: the shift and scale that bring the encoded training set to zero mean and unit
  variance, measured (never hard-coded), and the check of the scaled latents' std;
* ``cache``: the data set encoded once, on disk, keyed by the autoencoder's weights;
* ``datamodule``: batches of scaled latents z ~ q(z|x) for any backbone;
* ``codec``: what a latent diffusion model decodes with (autoencoder, its identity, the scale),
  stored in the diffusion checkpoint and checked when it is sampled;
* ``display``: latents as images (one tile per channel) for the x_t strips;
* ``stage``: a train config made latent (backbone shape, the autoencoder stage run first).
"""
