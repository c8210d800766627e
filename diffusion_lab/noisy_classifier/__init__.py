"""The noise-aware classifier stage of classifier guidance (Dhariwal & Nichol 2021): a classifier
p_phi(y | x_t, t) trained on noised images of the data at every timestep of a schedule, whose
gradient then steers a diffusion model's sampling towards a class
(:mod:`diffusion_lab.classifier_guidance`).

* ``lit_module``: the Lightning module (cross-entropy on x_t, t ~ U{0..T-1});
* ``train``: the stage's task (``scripts/train_noisy_classifier.py``), with checkpoints, resume
  and, at the end, the held-out accuracy at each noise level (``accuracy_vs_noise.png``);
* ``load``: the classifier of a stage checkpoint, as a sigma-space ``classifier(x, sigma)``.
"""
