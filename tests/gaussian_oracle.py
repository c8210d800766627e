"""Test-side access to the Gaussian oracle (the implementation lives in diffusion_lab.oracle).

Importable as ``tests.gaussian_oracle`` from the repository root; tests import diffusion_lab.oracle.
"""

from diffusion_lab.oracle import GaussianOracle, affine_output_law, gaussian_w2

__all__ = ["GaussianOracle", "affine_output_law", "gaussian_w2"]
