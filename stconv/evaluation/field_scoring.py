"""Where a forecast is good: the per-cell sums (`stconv.evaluation.cells`,
from which the per-cell and regional scores follow) and the zonal power
spectra (`stconv.evaluation.spectra`) of every forecast of an evaluation,
accumulated from the physical values of each batch, as
`stconv.evaluation.scoring.evaluate`'s ``on_batch`` sees them.

The anomaly correlation per cell is against the training climatology at the
target frames' times (each cell's mean for annual data). An ensemble is
scored by its mean.
"""

import numpy as np
import xarray as xr

from stconv.data.climatology import Climatology
from stconv.data.grid import Grid
from stconv.data.normalization import Normalizer
from stconv.evaluation.cells import CellAccumulator
from stconv.evaluation.inference import PhysicalBatches
from stconv.evaluation.spectra import TRUTH, SpectrumAccumulator


class FieldScoring(PhysicalBatches):
    """Per-cell sums and power spectra of every forecast, batch by batch
    (`stconv.evaluation.inference.PhysicalBatches`), the forecasts named by
    the first batch's predictions.

    Args:
      model: the name of the forecast ``"model"`` in the results.
      ensembles: the forecasts given as members.
      normalizer: the targets' normalizer.
      climatology: the targets' training climatology, or None (no ACC).
      valid_times: ``(window, lead)`` the target frames' times, or None.
    """

    def __init__(
        self,
        model: str,
        ensembles: tuple[str, ...],
        normalizer: Normalizer,
        climatology: Climatology | None,
        valid_times: np.ndarray | None,
    ):
        super().__init__(normalizer, valid_times)
        self.model = model
        self.cells: CellAccumulator | None = None
        self.spectra: SpectrumAccumulator | None = None
        self.ensembles = ensembles
        self.climatology = climatology

    def reference(self, valid: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
        """The climatology at the batch's target frames, physical units."""
        if self.climatology is None:
            return None
        if self.climatology.kind == "annual" or valid is None:
            return np.broadcast_to(self.climatology.values[0], shape)
        return np.broadcast_to(self.climatology.at(valid), shape)

    def observe(self, truth, mask, predictions: dict, valid: np.ndarray | None) -> None:
        climatology = self.reference(valid, truth.shape)
        if self.cells is None:
            self.cells = CellAccumulator(tuple(map(self.named, predictions)))
            self.spectra = SpectrumAccumulator((*map(self.named, predictions), TRUTH))
        self.spectra.add(TRUTH, truth, mask)
        for name, prediction in predictions.items():
            prediction = np.asarray(prediction)
            if name in self.ensembles:
                prediction = prediction.mean(axis=0)
            physical = self.physical(prediction, valid)
            self.cells.add(self.named(name), physical, truth, mask, climatology)
            self.spectra.add(self.named(name), physical, mask)

    def named(self, forecast: str) -> str:
        return self.model if forecast == "model" else forecast

    def cell_sums(self, grid: Grid) -> xr.Dataset:
        """The per-cell sums on ``grid`` (the targets' `stconv.data.grid.Grid`)."""
        return self.cells.cell_sums(
            lat=grid.lat, lon=grid.lon, variables=list(grid.channels), units=list(grid.units)
        )

    def power(self, grid: Grid) -> xr.Dataset:
        """The mean zonal power spectra of the truth and every forecast."""
        return self.spectra.result(list(grid.channels), list(grid.units))
