"""An always-valid confidence sequence for the difference of two means, by the normal mixture.

Each variant's labelled rows give a per-row score (1/0 correctness, or a loss). Let d be the candidate's
mean minus production's, oriented so that larger is better ("gain"), d_hat its estimate and
V = s_c^2 / n_c + s_p^2 / n_p the estimate's variance. The mixture sequential probability ratio test of
Johari, Koomen, Pekelis and Walsh (2022, "Always valid inference: continuous monitoring of A/B tests",
Operations Research 70(3)) mixes the Gaussian likelihood ratio over a N(0, tau^2) prior on the effect:

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 (d_hat - d)^2 / (2 V (V + tau^2)))

and by Ville's inequality the chance that Lambda ever reaches 1/alpha, at any of the times it is looked at,
is at most alpha. Inverting it gives the interval every evaluation reports,

    d_hat +/- sqrt(V (V + tau^2) / tau^2 * log((V + tau^2) / (V alpha^2)))

which is the two-sided normal-mixture boundary of Howard, Ramdas, McAuliffe and Sekhon (2021,
"Time-uniform, nonparametric, nonasymptotic confidence sequences", Annals of Statistics 49(2), eq. (14))
in the estimate's units. With the variances estimated from the data the guarantee is asymptotic
(Waudby-Smith et al. 2024, "Time-uniform central limit theory and asymptotic confidence sequences",
Annals of Statistics 52(6)); `min_labelled` keeps the first look away from tiny samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

Floats = NDArray[np.float64]
# Verdicts of one look, as numbers so that the simulator can compute them for thousands of streams at once.
INFERIOR, UNDECIDED, NON_INFERIOR = -1, 0, 1


def mixture_radius(variance: ArrayLike, tau: ArrayLike, alpha: float) -> Floats:
    """Half-width of the (1 - alpha) confidence sequence for an estimate of variance `variance`."""
    v = np.maximum(np.asarray(variance, dtype=np.float64), 1e-300)
    t2 = np.square(np.asarray(tau, dtype=np.float64))
    return np.asarray(np.sqrt(v * (v + t2) / t2 * np.log((v + t2) / (v * alpha * alpha))), dtype=np.float64)


def difference(
    n_c: ArrayLike,
    mean_c: ArrayLike,
    var_c: ArrayLike,
    n_p: ArrayLike,
    mean_p: ArrayLike,
    var_p: ArrayLike,
    *,
    higher_is_better: bool,
    alpha: float,
    tau: ArrayLike,
) -> tuple[Floats, Floats, Floats]:
    """(gain, low, high): the candidate's gain over production and its confidence sequence. A stream with no
    variance yet (every row right so far) gets the variance of one disagreeing row among n + 1, so that a
    handful of lucky rows cannot shrink the interval to nothing."""
    nc = np.maximum(np.asarray(n_c, dtype=np.float64), 1.0)
    npr = np.maximum(np.asarray(n_p, dtype=np.float64), 1.0)
    vc, vp = np.asarray(var_c, dtype=np.float64), np.asarray(var_p, dtype=np.float64)
    vc = np.where(vc > 0, vc, nc / np.square(nc + 1.0))
    vp = np.where(vp > 0, vp, npr / np.square(npr + 1.0))
    sign = 1.0 if higher_is_better else -1.0
    gain = sign * (np.asarray(mean_c, dtype=np.float64) - np.asarray(mean_p, dtype=np.float64))
    radius = mixture_radius(vc / nc + vp / npr, tau, alpha)
    return gain, gain - radius, gain + radius


def verdict(low: ArrayLike, high: ArrayLike, margin: float) -> NDArray[Any]:
    """NON_INFERIOR when the whole interval is above -margin, INFERIOR when it is all below, else UNDECIDED."""
    lo, hi = np.asarray(low), np.asarray(high)
    return np.where(lo > -margin, NON_INFERIOR, np.where(hi < -margin, INFERIOR, UNDECIDED))


def mixing_scale(margin: float, pooled_sd: ArrayLike) -> Floats:
    """tau, the prior's scale: the effect the rollout cares about, the margin, but at least a twentieth of a
    row's standard deviation (a margin far below the metric's noise, or 0, would make the interval needlessly
    wide: the mixture spends its confidence on effects no sample could show)."""
    sd = np.asarray(pooled_sd, dtype=np.float64)
    return np.maximum(np.maximum(margin, 0.05 * sd), 1e-9).astype(np.float64)
