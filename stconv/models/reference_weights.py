"""The map from the reference PyTorch implementation's weights to stconv's.

The reference (github MLRG-CEFET-RJ/stconvs2s) names its parameters and
buffers by PyTorch module path (``stconvs2s_r.conv.0.conv_layers.1.conv.0.weight``)
and lays them out channels-first. `weight_map` gives, for every registry model
with a reference counterpart, one `Entry` per reference tensor: its name, the
path of the stconv variable it becomes and the `Layout` that turns one into
the other. `load_reference_weights` applies the map to a PyTorch
``state_dict`` (as numpy arrays) and refuses a map that leaves any tensor of
either side out, so nothing keeps its initial value unnoticed.

Layouts:

- ``conv``: a convolution kernel ``(out, in, *kernel)`` becomes
  ``(*kernel, in, out)``.
- ``conv_transpose``: a transposed convolution's ``(in, out, *kernel)``
  becomes ``(*kernel, in, out)`` with the kernel flipped along every spatial
  axis: stconv computes a transposed convolution as a convolution of the
  dilated input, which visits the kernel in reverse.
- ``channels_last``: ``(channels, *rest)`` becomes ``(*rest, channels)``:
  LayerNorm's elementwise ``[C, H, W]`` scale and bias and MIM's per-channel
  ``(C, W, W)`` matrices ``ct_weight`` and ``oc_weight``.
- ``same``: vectors, unchanged: conv biases, BatchNorm ``weight`` (stconv's
  ``scale``), ``bias``, ``running_mean`` (``mean``) and ``running_var``
  (``var``).

BatchNorm's ``num_batches_tracked`` has no counterpart: PyTorch uses it only
when ``momentum=None``, and the reference keeps the default 0.1.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import jax.numpy as jnp
import numpy as np
from flax import nnx

Layout = Literal["conv", "conv_transpose", "channels_last", "same"]
Path = tuple[str | int, ...]

# Reference buffers that no computation of the paper's settings reads.
UNUSED_BUFFER_SUFFIX = ".num_batches_tracked"


@dataclass(frozen=True)
class Entry:
    """One reference tensor: its ``state_dict`` name, the stconv variable's path
    (as in ``nnx.to_flat_state(nnx.state(model))``) and the layout between them."""

    reference: str
    path: Path
    layout: Layout


def to_stconv_layout(array: np.ndarray, layout: Layout) -> np.ndarray:
    """A reference tensor (or its gradient) in stconv's layout."""
    array = np.asarray(array)
    spatial = tuple(range(2, array.ndim))
    if layout == "conv":
        return np.transpose(array, (*spatial, 1, 0))
    if layout == "conv_transpose":
        return np.flip(np.transpose(array, (*spatial, 0, 1)), axis=tuple(range(len(spatial))))
    if layout == "channels_last":
        return np.moveaxis(array, 0, -1)
    if layout == "same":
        return array
    raise ValueError(f"layout={layout!r} is invalid: choose from {list(Layout.__args__)}")


def activations_to_stconv(array: np.ndarray) -> np.ndarray:
    """``(batch, channels, time, lat, lon)`` to stconv's ``(batch, time, lat, lon, channels)``."""
    return np.moveaxis(np.asarray(array), 1, -1)


# Builders of entries, one per kind of reference module.


def _module(model: nnx.Module, path: Path) -> nnx.Module:
    for key in path:
        model = model[key] if isinstance(key, int) else getattr(model, key)
    return model


def _join(*parts: str) -> str:
    return ".".join(part for part in parts if part)


def _conv(model: nnx.Module, reference: str, path: Path, layout: Layout = "conv") -> list[Entry]:
    """A convolution: kernel, and bias where the stconv `Conv` at ``path`` has one."""
    entries = [Entry(f"{reference}.weight", (*path, "kernel"), layout)]
    if _module(model, path).bias is not None:
        entries.append(Entry(f"{reference}.bias", (*path, "bias"), "same"))
    return entries


def _batch_norm(reference: str, path: Path) -> list[Entry]:
    names = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}
    return [Entry(f"{reference}.{ours}", (*path, theirs), "same") for ours, theirs in names.items()]


def _conv_block(model: nnx.Module, conv: str, norm: str, path: Path, **kwargs) -> list[Entry]:
    """A `stconv.models.layers.ConvBlock` from a reference convolution and its BatchNorm."""
    return _conv(model, conv, (*path, "conv"), **kwargs) + _batch_norm(norm, (*path, "norm"))


def _gate_conv(model: nnx.Module, reference: str, path: Path) -> list[Entry]:
    """A recurrent `GateConv` from a reference ``Sequential(conv, LayerNorm, Dropout2d)``."""
    norm = [
        Entry(f"{reference}.1.weight", (*path, "norm", "scale"), "channels_last"),
        Entry(f"{reference}.1.bias", (*path, "norm", "bias"), "channels_last"),
    ]
    return _conv(model, f"{reference}.0", (*path, "conv")) + norm


# The convolutional models.


def _reversed_layers(model: nnx.Module, reference: str, path: Path) -> list[Entry]:
    """RNet layers (``.conv`` and ``.conv_k2``, each ``Sequential(conv, BatchNorm, ...)``)."""
    entries = []
    for i in range(len(_module(model, path).layers)):
        layer = (*path, "layers", i)
        for theirs, ours in (("conv", "long"), ("conv_k2", "short")):
            prefix = f"{reference}.{i}.{theirs}"
            entries += _conv_block(model, f"{prefix}.0", f"{prefix}.1", (*layer, ours))
    return entries


def _causal_layers(model: nnx.Module, block: str, path: Path) -> list[Entry]:
    """Causal temporal layers: convs in ``{block}.conv_layers``, BatchNorms in
    ``{block}.batch_layers``."""
    entries = []
    for i in range(len(_module(model, path).layers)):
        conv, norm = _join(block, f"conv_layers.{i}"), _join(block, f"batch_layers.{i}")
        entries += _conv_block(model, conv, norm, (*path, "layers", i))
    return entries


def _sequential_layers(
    model: nnx.Module, reference: str, path: Path, conv: str = "0", **kwargs
) -> list[Entry]:
    """Layers ``{reference}.{i}`` that are ``Sequential(conv, BatchNorm, LeakyReLU)``;
    ``conv`` names the convolution inside each (``"0"``, or ``"0.conv"``)."""
    return [
        entry
        for i in range(len(_module(model, path)))
        for entry in _conv_block(
            model, f"{reference}.{i}.{conv}", f"{reference}.{i}.1", (*path, i), **kwargs
        )
    ]


def _head(model: nnx.Module, generator: str | None, final: str) -> list[Entry]:
    """`stconv.models.blocks.ForecastHead`: the temporal generator, if any, and the final conv."""
    entries = _conv(model, final, ("head", "final"))
    if model.head.generator is None:
        return entries
    if generator is None:
        raise ValueError(
            "the reference's model has no temporal generator: it cannot forecast "
            "beyond the input length"
        )
    path = ("head", "generator")
    entries += _sequential_layers(
        model, f"{generator}.tconv_layers", (*path, "upsampling"), layout="conv_transpose"
    )
    return entries + _sequential_layers(model, f"{generator}.conv_layers", (*path, "spatial"))


def _temporal(model: nnx.Module, kind: str, block: str, layers: str = "conv_layers") -> list[Entry]:
    """A temporal block whose layers are ``{block}.{layers}.{i}``: RNets
    (``"reversed"``), convs with BatchNorms in ``{block}.batch_layers``
    (``"causal"``), ``Sequential(conv, BatchNorm, ...)`` (``"symmetric"``) or
    ``Sequential(Conv3DBlock, BatchNorm, ...)`` (``"conv3d"``)."""
    path = ("temporal",)
    if kind == "reversed":
        return _reversed_layers(model, _join(block, layers), path)
    if kind == "causal":
        return _causal_layers(model, block, path)
    conv = "0.conv" if kind == "conv3d" else "0"
    return _sequential_layers(model, _join(block, layers), (*path, "layers"), conv=conv)


def _stconvs2s(prefix: str, kind: str, spatial_first: bool = False, generator: bool = False):
    """The reference's ``Model`` and ``ModelInverted``: ``{prefix}.conv`` is a
    Sequential of the two blocks (spatial first if inverted) and, with a
    generator, the generator; then ``{prefix}.conv_final``."""
    temporal, spatial = ("conv.1", "conv.0") if spatial_first else ("conv.0", "conv.1")

    def build(model: nnx.Module) -> list[Entry]:
        entries = _temporal(model, kind, _join(prefix, temporal))
        entries += _sequential_layers(
            model, _join(prefix, spatial, "conv_layers"), ("spatial", "layers")
        )
        generator_block = _join(prefix, "conv.2") if generator else None
        return entries + _head(model, generator_block, _join(prefix, "conv_final"))

    return build


def _not_factorized(kind: str):
    """The reference's ``conv3D_layers`` of (k, k, k) kernels, then ``conv_final``."""

    def build(model: nnx.Module) -> list[Entry]:
        return _temporal(model, kind, "", layers="conv3D_layers") + _head(model, None, "conv_final")

    return build


def _no_temporal(model: nnx.Module) -> list[Entry]:
    entries = _sequential_layers(model, "conv.conv_layers", ("spatial", "layers"))
    return entries + _head(model, None, "conv_final")


def _conv2plus1d(model: nnx.Module) -> list[Entry]:
    """Each ``conv2plus1_layers.{i}`` is ``Sequential(block, BatchNorm, LeakyReLU)``
    where the block holds ``spatial_conv`` (conv, BatchNorm) and ``temporal_conv``."""
    entries = []
    for i in range(len(model.layers)):
        reference, path = f"conv2plus1_layers.{i}", ("layers", i, "layers")
        spatial = f"{reference}.0.spatial_conv"
        entries += _conv_block(model, f"{spatial}.0", f"{spatial}.1", (*path, 0))
        entries += _conv_block(model, f"{reference}.0.temporal_conv", f"{reference}.1", (*path, 1))
    return entries + _head(model, None, "out_conv")


def _encoder_decoder(model: nnx.Module) -> list[Entry]:
    entries = []
    for i in range(len(model.encoder)):
        entries += _conv(model, f"down_block.{i}.down_block.0", ("encoder", i))
    entries += _batch_norm("batch", ("norm",))
    for i in range(len(model.decoder)):
        entries += _conv(model, f"up_block.{i}.conv.0", ("decoder", i), layout="conv_transpose")
    return entries + _head(model, None, "out_conv")


# The recurrent models.


def _convlstm(model: nnx.Module) -> list[Entry]:
    entries = []
    for i in range(len(model.layers)):
        entries += _conv(model, f"convlstm.cell_list.{i}.conv.0", ("layers", i, "gates"))
        entries += _conv(model, f"convlstm.conv_list.{i}", ("layers", i, "feedback"))
    return entries + _conv(model, "conv_layer", ("output",))


def _predrnn(model: nnx.Module) -> list[Entry]:
    entries = []
    for i in range(len(model.cells)):
        reference, path = f"cell_list.{i}", ("cells", i)
        for gate in ("conv_x", "conv_h", "conv_m", "conv_o"):
            entries += _gate_conv(model, f"{reference}.{gate}", (*path, gate))
        entries += _conv(model, f"{reference}.conv_last", (*path, "conv_last"))
    return entries + _conv(model, "conv_last", ("conv_last",))


def _mims(model: nnx.Module, reference: str, path: Path) -> list[Entry]:
    entries = []
    for gate in ("conv_h", "conv_x"):
        entries += _gate_conv(model, f"{reference}.{gate}", (*path, gate))
    for matrix in ("ct_weight", "oc_weight"):
        entries.append(Entry(f"{reference}.{matrix}", (*path, matrix), "channels_last"))
    return entries


def _mim(model: nnx.Module) -> list[Entry]:
    """``stlstm_layer.0`` is the first cell, ``stlstm_layer.{i}`` block ``i - 1``
    (with its own ``mims``), ``stlstm_layer_diff.{i}`` the diff MIMS ``i``."""
    cells = [("stlstm_layer.0", ("first",))]
    cells += [(f"stlstm_layer.{i + 1}", ("blocks", i)) for i in range(len(model.blocks))]
    entries = []
    for reference, path in cells:
        for gate in ("t_cc", "s_cc", "x_cc"):
            entries += _gate_conv(model, f"{reference}.{gate}", (*path, gate))
        entries += _conv(model, f"{reference}.last", (*path, "last"))
        if path[0] == "blocks":
            entries += _mims(model, f"{reference}.mims", (*path, "mims"))
    for i in range(len(model.diffs)):
        entries += _mims(model, f"stlstm_layer_diff.{i}", ("diffs", i))
    return entries + _conv(model, "conv_last", ("conv_last",))


# Registry name: the entries of a model built by `stconv.models.create(name, ...)`.
WEIGHT_MAPS = {
    "stconvs2s-r": _stconvs2s("stconvs2s_r", "reversed", generator=True),
    "stconvs2s-c": _stconvs2s("stconvs2s_c", "causal", generator=True),
    "conv3d": _not_factorized("conv3d"),
    "conv2plus1d": _conv2plus1d,
    "enc-dec3d": _encoder_decoder,
    "convlstm": _convlstm,
    "predrnn": _predrnn,
    "mim": _mim,
    "ablation-stconvs2s-nocausalconstraint": _stconvs2s("stconvs2s", "symmetric"),
    "ablation-stconvs2s-notemporal": _no_temporal,
    "ablation-stconvs2s-r-nochannelincrease": _stconvs2s("stconvs2s_r", "reversed"),
    "ablation-stconvs2s-c-nochannelincrease": _stconvs2s("stconvs2s_c", "causal"),
    "ablation-stconvs2s-r-inverted": _stconvs2s("stconvs2s_r", "reversed", spatial_first=True),
    "ablation-stconvs2s-c-inverted": _stconvs2s("stconvs2s_c", "causal", spatial_first=True),
    "ablation-stconvs2s-r-notfactorized": _not_factorized("reversed"),
    "ablation-stconvs2s-c-notfactorized": _not_factorized("conv3d"),
}


def weight_map(name: str, model: nnx.Module) -> list[Entry]:
    """The entries of ``model``, built by `stconv.models.create` as ``name``.

    Raises:
      ValueError: if ``name`` has no reference counterpart, or ``model`` has a
        part the reference's model lacks (a temporal generator in an ablation).
    """
    if name not in WEIGHT_MAPS:
        raise ValueError(
            f"model name {name!r} has no reference counterpart: choose from {sorted(WEIGHT_MAPS)}"
        )
    return WEIGHT_MAPS[name](model)


def load_reference_weights(
    model: nnx.Module, name: str, state_dict: Mapping[str, np.ndarray]
) -> None:
    """Copies a reference model's parameters and buffers into ``model``.

    Args:
      model: built by `stconv.models.create` as ``name``, with the reference
        model's configuration.
      name: the registry name.
      state_dict: the reference model's ``state_dict()`` as numpy arrays;
        ``num_batches_tracked`` buffers may be left out. The values keep their
        dtype (float64 arrays give a float64 model under ``jax_enable_x64``).

    Raises:
      ValueError: naming the tensors that the map leaves out on either side,
        or the first whose shape does not match.
    """
    entries = weight_map(name, model)
    state = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))
    variables = dict(nnx.to_flat_state(state))
    given = {key for key in state_dict if not key.endswith(UNUSED_BUFFER_SUFFIX)}
    mapped = {entry.reference for entry in entries}
    if given != mapped:
        raise ValueError(
            f"the reference weights of {name!r} do not match the model: not in the "
            f"state_dict {sorted(mapped - given)}, not in the model {sorted(given - mapped)}"
        )
    unset = set(variables) - {entry.path for entry in entries}
    if unset:
        raise ValueError(f"the reference weights of {name!r} leave {sorted(unset)} unset")
    for entry in entries:
        value = to_stconv_layout(state_dict[entry.reference], entry.layout)
        variable = variables[entry.path]
        if value.shape != variable.shape:
            raise ValueError(
                f"reference tensor {entry.reference!r} of shape {value.shape} in stconv's "
                f"layout does not fit {'.'.join(map(str, entry.path))} of shape {variable.shape}"
            )
        variable.set_value(jnp.asarray(value))
    nnx.update(model, nnx.from_flat_state(variables))
