"""Ensemble forecasts scored as WeatherBench 2 scores them, per lead time and
target variable, in physical units, area-weighted, streamed batch by batch.

An ensemble is ``M`` members ``(M, batch, lead, lat, lon, channel)``. For
every lead time, over all windows and valid cells (``x_m`` the members, ``y``
the truth, ``w`` the cell's area weight, `stconv.evaluation.metrics.area_weights`):

- CRPS with the fair (unbiased) ensemble estimator, as WeatherBench 2 defines
  it: ``CRPS = E|X - y| - 1/2 E|X - X'|`` with
  ``E|X - y| = 1/M sum_m |x_m - y|`` (the *skill* part) and
  ``1/2 E|X - X'| = 1/(2 M (M - 1)) sum_{m != m'} |x_m - x_m'|`` (the *spread*
  part), each the area-weighted mean over cells. For one member the spread
  part is 0 and the CRPS is the MAE: a deterministic forecast's CRPS is its
  area-weighted MAE.
- spread: ``sqrt(sum w var / sum w)`` with ``var`` the members' unbiased
  variance (``ddof = 1``);
- the ensemble mean's area-weighted RMSE ``skill``; the spread-skill ratio
  ``sqrt((M + 1) / M) * spread / skill``, with Fortin et al.'s (2014)
  finite-ensemble correction: 1 in expectation for a reliable ensemble of any
  size (WeatherBench 2's ``spread / skill`` leaves it out; for its 50 members
  it is 1.01, for 3 members 1.15);
- the rank histogram: per lead time, how often the truth has each rank
  ``0..M`` among the members (the number of members below it; unweighted
  counts of valid cells). A reliable ensemble's histogram is flat.

The pairwise spread is computed from the sorted members,
``sum_{m < m'} |x_m - x_m'| = sum_k (2k - M + 1) x_(k)``, so large
ensembles (a climatological one of 100 years) cost ``M log M``, not ``M^2``.
"""

import jax
import jax.numpy as jnp
import numpy as np

from stconv.evaluation.metrics import over_cells


def crps_parts(members: jax.Array, truth: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per cell: the fair CRPS's skill part ``E|X - y|`` and spread part
    ``1/2 E|X - X'|`` of ``members`` ``(M, ...)`` against ``truth`` ``(...)``;
    the CRPS is their difference."""
    count = members.shape[0]
    skill = jnp.mean(jnp.abs(members - truth), axis=0)
    if count == 1:
        return skill, jnp.zeros_like(skill)
    ordered = sorted_members(members)
    coefficients = 2.0 * jnp.arange(count) - count + 1
    coefficients = coefficients.reshape((count,) + (1,) * (members.ndim - 1))
    pairs = jnp.sum(coefficients * ordered, axis=0)  # sum over m < m' of |x_m - x_m'|
    return skill, pairs / (count * (count - 1))


def sorted_members(members: jax.Array, on_host: bool | None = None) -> jax.Array:
    """``members`` ``(M, ...)`` sorted along their first axis. On the host
    (``on_host``; None: where JAX runs on the CPU) numpy sorts them, through
    `jax.pure_callback`: XLA's CPU sort is over ten times slower than numpy's
    for a climatological ensemble of hundreds of members."""
    if not (jax.default_backend() == "cpu" if on_host is None else on_host):
        return jnp.sort(members, axis=0)
    last = jnp.moveaxis(members, 0, -1)  # numpy sorts a contiguous last axis fastest
    shape = jax.ShapeDtypeStruct(last.shape, last.dtype)
    ordered = jax.pure_callback(lambda x: np.sort(x, axis=-1), shape, last)
    return jnp.moveaxis(ordered, -1, 0)


def truth_ranks(members: jax.Array, truth: jax.Array) -> jax.Array:
    """Per cell, how many of ``members`` ``(M, ...)`` lie below ``truth``: 0..M."""
    return jnp.sum(members < truth, axis=0)


@jax.jit
def ensemble_sums(
    members: jax.Array,
    targets: jax.Array,
    mask: jax.Array,
    std: jax.Array,
    weights: jax.Array,
) -> dict[str, jax.Array]:
    """The sums of one batch of normalized ``members`` ``(M, batch, lead, lat,
    lon, channel)`` against ``targets`` ``(batch, ...)``, in physical units
    (``std`` per channel), each ``(lead, channel)`` but ``ranks``
    ``(lead, channel, M + 1)``."""
    count = members.shape[0]
    members, targets = members * std, targets * std
    weight = jnp.where(mask, weights[:, None, None], 0.0)
    skill, spread = crps_parts(members, targets)
    mean = jnp.mean(members, axis=0)
    variance = jnp.var(members, axis=0, ddof=1) if count > 1 else jnp.zeros_like(mean)

    def weighted(x: jax.Array) -> jax.Array:  # cells outside the mask may hold anything
        return over_cells(jnp.where(mask, weight * x, 0.0))

    ranks = truth_ranks(members, targets)
    one_hot = (ranks[..., None] == jnp.arange(count + 1)) & mask[..., None]
    return {
        "crps_skill": weighted(skill),
        "crps_spread": weighted(spread),
        "variance": weighted(variance),
        "mean_squared": weighted(jnp.square(mean - targets)),
        "weight": over_cells(weight),
        "ranks": jnp.sum(one_hot, axis=(0, 2, 3)),
    }


def ensemble_scores(sums: dict[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
    """The scores of summed `ensemble_sums` of ``count`` members, elementwise
    (per lead time and channel, or per channel over all leads)."""
    weight = np.maximum(sums["weight"], 1e-30)
    skill, spread = sums["crps_skill"] / weight, sums["crps_spread"] / weight
    spread_std = np.sqrt(sums["variance"] / weight)
    mean_rmse = np.sqrt(sums["mean_squared"] / weight)
    correction = np.sqrt((count + 1) / count)
    return {
        "crps": skill - spread,
        "crps_skill": skill,
        "crps_spread": spread,
        "spread": spread_std,
        "ensemble_mean_rmse": mean_rmse,
        "spread_skill_ratio": correction * spread_std / np.maximum(mean_rmse, 1e-30),
    }


class EnsembleAccumulator:
    """Adds up `ensemble_sums` batch by batch (float64 on the host); `result`
    gives every score per target channel, overall and per lead time.

    Args:
      weights: ``(lat,)`` area weights; None weighs every cell alike.
    """

    def __init__(self, weights: np.ndarray | None = None):
        self.weights = weights
        self.sums = None
        self.members = None

    def add(self, members, targets, mask, std) -> None:
        """Adds one batch: ``members`` ``(M, batch, lead, lat, lon, channel)`` and
        ``targets`` ``(batch, ...)`` normalized, ``mask`` the valid cells."""
        if self.members is not None and members.shape[0] != self.members:
            raise ValueError(
                f"an ensemble of {self.members} members got a batch of {members.shape[0]}"
            )
        self.members = members.shape[0]
        lat = targets.shape[2]
        weights = np.ones(lat, np.float32) if self.weights is None else self.weights
        sums = ensemble_sums(members, targets, mask, std, weights)
        batch = {k: np.asarray(v, np.float64) for k, v in sums.items()}
        self.sums = batch if self.sums is None else {k: self.sums[k] + batch[k] for k in batch}

    def result(self) -> list[dict]:
        """Per channel: ``members``, every score of `ensemble_scores` and its
        ``..._per_lead``, and ``rank_histogram`` ``(lead, M + 1)`` counts."""
        totals = {name: sums.sum(axis=0) for name, sums in self.sums.items()}
        overall = ensemble_scores(totals, self.members)
        per_lead = ensemble_scores(self.sums, self.members)
        results = []
        for channel in range(self.sums["weight"].shape[1]):
            result = {"members": self.members}
            for name in overall:
                result[name] = float(overall[name][channel])
                result[f"{name}_per_lead"] = per_lead[name][:, channel].tolist()
            ranks = self.sums["ranks"][:, channel].astype(int)
            result["rank_histogram"] = ranks.tolist()
            results.append(result)
        return results
