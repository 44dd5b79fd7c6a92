"""Online BOCD: the batch ``bocd_changepoint_prob`` loop, one return at a time.

A bot sees one return per bar; re-running the batch detector over the history each bar costs
O(T*R). :class:`OnlineBocd` holds the run-length posterior and the per-run sufficient
statistics between bars and applies, per observation, exactly the operations of
:func:`pipelines.models.regime.bocd.bocd_changepoint_prob` (same arrays, same order), so its
output equals the batch output bit for bit (tested), at O(R) per bar.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln

from pipelines.models.regime.bocd import _logsumexp, check_bocd_params


class OnlineBocd:
    """Changepoint probability ``P(run length <= window | x_1..x_t)`` updated per return.

    Parameters are those of :func:`~pipelines.models.regime.bocd.bocd_changepoint_prob`
    (``prior_var``: the training span's return variance, ``params["bocd_prior_var"]``).
    """

    def __init__(
        self,
        hazard: float,
        max_run_length: int,
        *,
        window: int = 24,
        prior_var: float = 1e-4,
        mu0: float = 0.0,
        kappa0: float = 1.0,
        alpha0: float = 2.0,
    ) -> None:
        check_bocd_params(hazard, max_run_length, window, prior_var, kappa0, alpha0)
        size = max_run_length
        self._size = size
        self._mu0, self._kappa0, self._alpha0 = mu0, kappa0, alpha0
        self._beta0 = alpha0 * prior_var
        self._alpha_run = alpha0 + 0.5 * np.arange(1, size + 1, dtype=np.float64)
        self._nu_run = 2.0 * self._alpha_run
        self._log_norm_run = (
            gammaln(self._alpha_run + 0.5)
            - gammaln(self._alpha_run)
            - 0.5 * np.log(self._nu_run * math.pi)
        )
        self._nu0 = 2.0 * alpha0
        self._scale2_0 = self._beta0 * (kappa0 + 1.0) / (alpha0 * kappa0)
        self._log_norm0 = (
            math.lgamma(alpha0 + 0.5)
            - math.lgamma(alpha0)
            - 0.5 * math.log(self._nu0 * math.pi * self._scale2_0)
        )
        self._log_h, self._log_1mh = math.log(hazard), math.log1p(-hazard)
        self._mu = np.full(size, mu0)
        self._kappa = np.full(size, kappa0)
        self._beta = np.full(size, self._beta0)
        self._log_r = np.full(size, -np.inf)
        self._n_active = 0
        self._k = min(window, size)
        self.prob = 1.0  #: the last value (1.0 before any observation: every run is young)

    def update(self, xt: float) -> float:
        """Add one return; the changepoint probability after it (NaN: unchanged, repeated)."""
        xt = float(xt)
        if xt != xt:
            return self.prob
        if math.isinf(xt):
            raise ValueError("return is inf")
        size = self._size
        mu, kappa, beta, log_r = self._mu, self._kappa, self._beta, self._log_r
        if self._n_active == 0:
            log_r[0] = 0.0
        else:
            a = self._n_active
            m, kp, b = mu[:a], kappa[:a], beta[:a]
            scale2 = b * (kp + 1.0) / (self._alpha_run[:a] * kp)
            pred = (
                self._log_norm_run[:a]
                - 0.5 * np.log(scale2)
                - 0.5
                * (self._nu_run[:a] + 1.0)
                * np.log1p((xt - m) ** 2 / (self._nu_run[:a] * scale2))
            )
            grow = log_r[:a] + self._log_1mh + pred
            prior_lp = self._log_norm0 - 0.5 * (self._nu0 + 1.0) * math.log1p(
                (xt - self._mu0) ** 2 / (self._nu0 * self._scale2_0)
            )
            if a == size:
                grow[-2] = np.logaddexp(grow[-2], grow[-1])
                grow = grow[:-1]
            n_new = grow.shape[0] + 1
            log_r[1:n_new] = grow
            log_r[0] = self._log_h + prior_lp
            log_r[:n_new] -= _logsumexp(log_r[:n_new])
        a = min(self._n_active + 1, size)
        km, mm, bm = kappa[: a - 1], mu[: a - 1], beta[: a - 1]
        beta[1:a] = bm + km * (xt - mm) ** 2 / (2.0 * (km + 1.0))
        mu[1:a] = (km * mm + xt) / (km + 1.0)
        kappa[1:a] = km + 1.0
        k0, mu0 = self._kappa0, self._mu0
        mu[0] = (k0 * mu0 + xt) / (k0 + 1.0)
        kappa[0] = k0 + 1.0
        beta[0] = self._beta0 + k0 * (xt - mu0) ** 2 / (2.0 * (k0 + 1.0))
        self._n_active = a
        self.prob = float(min(1.0, np.exp(log_r[: min(self._k, a)]).sum()))
        return self.prob
