"""ConvLSTM, PredRNN and MIM: the paper's recurrent baselines.

They follow the reference PyTorch implementation (MLRG-CEFET-RJ/stconvs2s,
``model/baselines/``): the same layers, gate orders, initialisation and
trainable parameter counts, and, given the same weights, the same outputs,
gradients and optimizer steps (``tests/test_reference.py``).

Each model runs ``horizon`` time steps. At step ``t < input_length`` its input
is frame ``t``; afterwards the previous generated frame is fed back (in
ConvLSTM, each layer's own 1x1 projection of its previous hidden state). When
``horizon < input_length`` only the first ``horizon`` frames are used, as the
reference's ConvLSTM does (its PredRNN and MIM fail there).

The time loop is one `jax.lax.scan`, so compile time does not grow with the
horizon; the convolutions inside it are `stconv.models.layers.Conv`s, which stay fast
inside a loop body on XLA's CPU backend (`stconv.models.conv_algorithms.spatial_conv`, whose
gradients of 5x5 kernels are FFTs, and, between 32+ channels,
`stconv.models.conv_algorithms.fourier_conv`).
Dropout is PyTorch's Dropout2d, which drops whole channels, with a new mask at every step.

Differences from the reference:
  * Its LayerNorms normalise over ``[channels, W, W]`` with W the grid width,
    so it only runs on square grids. Here they normalise over
    ``(lat, lon, channels)`` jointly: the same on square grids, same parameter
    counts, and non-square grids (the embedded 37 x 49 dataset) work.
  * MIM's ``ct_weight`` and ``oc_weight`` are stored channels-last,
    ``(lon, lon, channels)`` instead of ``(channels, W, W)``; they are the
    same per-channel matrix products over the lon axis.
"""

from stconv.models.recurrent.convlstm import ConvLSTM
from stconv.models.recurrent.mim import MIM
from stconv.models.recurrent.predrnn import PredRNN

__all__ = ["MIM", "ConvLSTM", "PredRNN"]
