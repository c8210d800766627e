"""Super-resolution diffusion (SR3, Saharia et al. 2022): a model of p(x | y) for the
high-resolution image x given its low-resolution version y = A x (``degradation.py``), trained
with ``python scripts/train.py stage=super_resolution`` and sampled with
``python scripts/super_resolve.py ckpt=...`` through the same samplers as every model, the
low-resolution image being the denoiser's condition: D(x, sigma, y) -> x0_hat.

``degradation`` and ``oracle`` are pure torch; ``module`` is the Lightning module and
``evaluation`` the end-of-training report (bicubic, posterior mean and posterior samples).
"""
