"""NeuralBandit: the bot's 43 -> 128 -> 64 -> 12 reward network, with NeuralLinear exploration.

Why NeuralLinear (Riquelme, Tucker & Snoek, "Deep Bayesian Bandits Showdown", ICLR 2018):
the network learns a representation by regression on the chosen arm's reward only, and a
Bayesian linear regression per arm on the last hidden layer (plus a bias) gives exact
posteriors for Thompson sampling. In the showdown it was among the most robust methods
across problems, it needs no approximate inference through the whole network (unlike
Neural-TS / NeuralUCB, whose gradient-feature covariances are as large as the network),
and its posterior mean is again a linear layer: folding it into the head gives one
deterministic scoring network to export, whose argmax is the greedy policy the bot runs.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils import skip_init

from pipelines.interrupt import checkpoint

logger = logging.getLogger(__name__)


class SeededDropout(nn.Module):
    """Dropout whose masks come from a private generator, not torch's global one.

    Same arithmetic as ``torch.nn.Dropout`` on CPU (a Bernoulli(1 - p) mask divided by
    1 - p), so a generator seeded like the old global seed gives the same masks; identity in
    eval mode, so the exported graph has no dropout node.
    """

    def __init__(self, p: float, generator: torch.Generator) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = p
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        noise = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator)
        noise.div_(1.0 - self.p)
        return x * noise


def _linear(n_in: int, n_out: int, generator: torch.Generator) -> nn.Linear:
    """``nn.Linear`` with its default init (Kaiming-uniform weight, then uniform bias, as
    ``reset_parameters`` does) drawn from ``generator``. ``skip_init`` keeps the constructor
    off torch's global generator, which another thread (SB3) may be using."""
    layer = skip_init(nn.Linear, n_in, n_out)
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    bound = 1.0 / math.sqrt(n_in) if n_in > 0 else 0.0
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


class RewardNet(nn.Module):
    """Standardise -> [Linear, ReLU, Dropout] x len(hidden) -> Linear(n_arms).

    The feature mean/std are buffers, so the exported graph takes raw features. Weights and
    dropout masks draw from ``generator`` only (thread-safe reproducibility).
    """

    x_mean: torch.Tensor
    x_std: torch.Tensor

    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int],
        n_arms: int,
        dropout: float,
        generator: torch.Generator,
    ):
        super().__init__()
        self.register_buffer("x_mean", torch.zeros(n_features))
        self.register_buffer("x_std", torch.ones(n_features))
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [_linear(width, h, generator), nn.ReLU(), SeededDropout(dropout, generator)]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = _linear(width, n_arms, generator)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.x_mean) / self.x_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class SafeScoringNet(nn.Module):
    """features -> per-arm ``mean - z * std`` of the advantage over a baseline arm.

    ``mean = phi @ W.T`` and ``std = ||phi @ L_a||`` with ``L_a L_a^T`` arm a's posterior
    covariance, ``phi = [embedding, 1]``. Built for a small inference graph (it is what the
    bot runs per bar): the division by the feature std is folded into the first layer (in
    float64; the centring stays a Sub so features far from zero lose no float32 precision),
    the constant 1 of ``phi`` becomes the two heads' biases (no Concat of a ones column), and
    ``z`` is folded into the projection's weights (``z * ||phi @ L|| = ||phi @ (z L)||``, no
    Mul by ``z``). The graph is then Sub, Gemm/Relu layers, two Gemm heads, Reshape, Mul,
    ReduceSum, Sqrt, Sub. The baseline arm has W = 0 and L = 0: its value is exactly 0.
    """

    def __init__(self, net: RewardNet, weight: np.ndarray, chol: np.ndarray, z: float):
        super().__init__()
        k, d = weight.shape
        self.k, self.d, self.z = k, d, float(z)
        self.x_mean: torch.Tensor
        self.register_buffer("x_mean", net.x_mean.detach().clone())
        self.body = _folded_body(net)
        emb = d - 1
        # skip_init: every weight is copied in below; never draw from the global generator
        self.mean_head = skip_init(nn.Linear, emb, k)
        # [d, K * d]: column block a is L_a; row d - 1 multiplies phi's constant 1
        stacked = np.transpose(chol, (1, 0, 2)).reshape(d, k * d)
        self.proj = skip_init(nn.Linear, emb, k * d)  # z * phi @ L_a per arm, side by side
        stacked = stacked * self.z
        with torch.no_grad():
            self.mean_head.weight.copy_(torch.from_numpy(weight[:, :emb].astype(np.float32)))
            self.mean_head.bias.copy_(torch.from_numpy(weight[:, emb].astype(np.float32)))
            self.proj.weight.copy_(torch.from_numpy(stacked[:emb].T.astype(np.float32)))
            self.proj.bias.copy_(torch.from_numpy(stacked[emb].astype(np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        emb = self.body(x - self.x_mean)
        proj = self.proj(emb).reshape(-1, self.k, self.d)
        return self.mean_head(emb) - torch.sqrt((proj * proj).sum(dim=2))


#: Rows per forward pass when scoring a whole span: the posterior projection is
#: rows x arms x (embedding + 1) floats, ~120 MB at once for the demo's 40,000 rows.
SCORE_CHUNK = 1024


def score_rows(module: nn.Module, x: np.ndarray, chunk: int = SCORE_CHUNK) -> np.ndarray:
    """``module(x)`` in eval mode, ``chunk`` rows at a time, as float32 numpy."""
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    module = module.eval()
    with torch.no_grad():
        parts = [
            module(torch.from_numpy(x32[i : i + chunk])).numpy()
            for i in range(0, max(len(x32), 1), chunk)
        ]
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _folded_body(net: RewardNet) -> nn.Sequential:
    """``net.body`` in eval form for centred input ``x - x_mean``: the division by ``x_std``
    folded into its first Linear (``W' = W / std`` in float64) and Dropout removed."""
    layers: list[nn.Module] = []
    inv = 1.0 / net.x_std.detach().double()
    first = True
    for layer in net.body:
        if isinstance(layer, nn.Dropout | SeededDropout):
            continue
        if isinstance(layer, nn.Linear):
            w = layer.weight.detach().double()
            if first:
                w = w * inv
                first = False
            lin = skip_init(nn.Linear, layer.in_features, layer.out_features)
            with torch.no_grad():
                lin.weight.copy_(w.float())
                lin.bias.copy_(layer.bias.detach())
            layers.append(lin)
        else:
            layers.append(copy.deepcopy(layer))
    if first:  # no hidden layer: the scaling itself as a (diagonal) Linear
        n = inv.shape[0]
        lin = skip_init(nn.Linear, n, n)
        with torch.no_grad():
            lin.weight.copy_(torch.diag(inv).float())
            lin.bias.zero_()
        layers.insert(0, lin)
    return nn.Sequential(*layers).eval()


class NeuralBandit:
    """Contextual bandit over K arms: arm values from a neural net with a Bayesian last layer.

    Parameters
    ----------
    hidden : hidden widths (the bot's shape is (128, 64)).
    dropout : dropout after each hidden layer.
    epochs, batch_size, learning_rate, weight_decay : Adam training budget.
    patience : early stopping on the later ``val_fraction`` of the (time-ordered) rows.
    prior_precision : precision of the Gaussian prior of each arm's last-layer weights.
    seed : seeds weight init, shuffling and dropout.
    """

    def __init__(
        self,
        hidden: Sequence[int] = (128, 64),
        dropout: float = 0.2,
        epochs: int = 60,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        patience: int = 8,
        val_fraction: float = 0.2,
        prior_precision: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.val_fraction = val_fraction
        self.prior_precision = prior_precision
        self.seed = seed

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        X: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        n_arms: int,
        propensity: np.ndarray | None = None,
        max_weight: float = 20.0,
    ) -> NeuralBandit:
        """Fit on logged decisions, time-ordered.

        With ``propensity`` the fit is importance-weighted: each row's squared error (and
        its term in the last-layer posterior) counts ``min(1 / propensity, max_weight)``,
        normalised to mean 1. An arm's rows then stand for every context, not only those
        where the logging policy favoured it (the logging policy's choices depend on x, so
        unweighted per-arm regression fits a shifted context distribution); clipping bounds
        the variance that rare, low-propensity rows add. Without it every row counts 1.

        Parameters
        ----------
        X : [N, F] float features of each decision.
        action : [N] int, the arm the logging policy chose.
        reward : [N] float, that arm's reward (the only one observed).
        n_arms : K, the number of arms.
        propensity : [N] optional logged probability of each chosen arm, in (0, 1].
        max_weight : clip of the importance weights (>= 1).
        """
        X = np.asarray(X, dtype=np.float32)
        action = np.asarray(action, dtype=np.int64)
        reward = np.asarray(reward, dtype=np.float64)
        if X.ndim != 2 or len(X) != len(action) or len(X) != len(reward):
            raise ValueError("X must be [N, F] with one action and reward per row")
        weight = np.ones(len(X))
        if propensity is not None:
            p = np.asarray(propensity, dtype=np.float64)
            if p.shape != reward.shape or np.any(~(p > 0)) or np.any(p > 1):
                raise ValueError("propensity must be [N] with values in (0, 1]")
            if max_weight < 1:
                raise ValueError(f"max_weight must be >= 1, got {max_weight}")
            weight = np.minimum(1.0 / p, max_weight)
            weight = weight / weight.mean()
        if not np.isfinite(X).all() or not np.isfinite(reward).all():
            raise ValueError("X and reward must be finite")
        if len(X) < 20:
            raise ValueError(f"need at least 20 decisions, got {len(X)}")
        if action.min() < 0 or action.max() >= n_arms:
            raise ValueError(f"actions must be in [0, {n_arms})")
        init_gen = torch.Generator().manual_seed(self.seed)  # weights and dropout
        gen = torch.Generator().manual_seed(self.seed)  # mini-batch order

        self.n_arms_ = n_arms
        self.n_features_in_ = X.shape[1]
        self.target_ = "reward"
        self.reward_scale_ = float(reward.std()) or 1.0
        y = reward / self.reward_scale_
        n_val = max(1, round(len(X) * self.val_fraction))
        n_tr = len(X) - n_val

        net = RewardNet(X.shape[1], self.hidden, n_arms, self.dropout, init_gen)
        mean = X[:n_tr].mean(axis=0)
        std = X[:n_tr].std(axis=0)
        net.x_mean.copy_(torch.from_numpy(mean))
        net.x_std.copy_(torch.from_numpy(np.where(std > 1e-8, std, 1.0).astype(np.float32)))
        xt = torch.from_numpy(np.ascontiguousarray(X))
        at = torch.from_numpy(action)
        yt = torch.from_numpy(y.astype(np.float32))
        wt = torch.from_numpy(weight.astype(np.float32))
        opt = torch.optim.Adam(
            net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )

        def chosen_loss(rows: torch.Tensor) -> torch.Tensor:
            pred = net(xt[rows]).gather(1, at[rows, None]).squeeze(1)
            return torch.mean(wt[rows] * (pred - yt[rows]) ** 2)

        self._train_loop(net, opt, chosen_loss, n_tr, len(X), gen)
        self._fit_posterior(xt, action, y, weight)
        logger.info(
            "NeuralBandit: %d epochs, best val MSE %.4f (scaled), noise var %.4f",
            self.epochs_run_,
            self.best_val_loss_,
            self.noise_var_,
        )
        return self

    def fit_full_information(
        self, X: np.ndarray, rewards: np.ndarray, baseline_arm: int
    ) -> NeuralBandit:
        """Fit each arm's *advantage over* ``baseline_arm`` from every arm's reward per row.

        The arms are rule strategies whose P&L is computable from bars, so every arm's
        reward is known at every decision. Regressing the paired difference
        ``r_a - r_baseline`` removes the market noise the arms share (trend arms move
        together), which is what makes small regime-conditional advantages learnable.

        Parameters
        ----------
        X : [N, F] float features, time-ordered.
        rewards : [N, K] every arm's reward at each decision.
        baseline_arm : the safe default arm; its advantage is exactly 0 (mean and variance).
        """
        X = np.asarray(X, dtype=np.float32)
        rewards = np.asarray(rewards, dtype=np.float64)
        if X.ndim != 2 or rewards.ndim != 2 or len(X) != len(rewards):
            raise ValueError("X must be [N, F] and rewards [N, K] with the same N")
        if not np.isfinite(X).all() or not np.isfinite(rewards).all():
            raise ValueError("X and rewards must be finite")
        if len(X) < 20:
            raise ValueError(f"need at least 20 decisions, got {len(X)}")
        n_arms = rewards.shape[1]
        if not 0 <= baseline_arm < n_arms:
            raise ValueError(f"baseline_arm must be in [0, {n_arms})")
        adv = rewards - rewards[:, [baseline_arm]]
        self.n_arms_ = n_arms
        self.n_features_in_ = X.shape[1]
        self.baseline_arm_ = baseline_arm
        self.target_ = "advantage"
        self.reward_scale_ = float(adv.std()) or 1.0
        y = adv / self.reward_scale_
        mask = np.ones_like(y)
        self._train_net(X, y, mask)
        self._fit_posterior_full(torch.from_numpy(np.ascontiguousarray(X)), y)
        return self

    def _train_net(self, X: np.ndarray, y: np.ndarray, mask: np.ndarray) -> None:
        """Adam on the masked MSE of [N, K] targets; early stopping on the later rows."""
        init_gen = torch.Generator().manual_seed(self.seed)  # weights and dropout
        gen = torch.Generator().manual_seed(self.seed)  # mini-batch order
        n_val = max(1, round(len(X) * self.val_fraction))
        n_tr = len(X) - n_val
        net = RewardNet(X.shape[1], self.hidden, y.shape[1], self.dropout, init_gen)
        std = X[:n_tr].std(axis=0)
        net.x_mean.copy_(torch.from_numpy(X[:n_tr].mean(axis=0)))
        net.x_std.copy_(torch.from_numpy(np.where(std > 1e-8, std, 1.0).astype(np.float32)))
        xt = torch.from_numpy(np.ascontiguousarray(X))
        yt = torch.from_numpy(y.astype(np.float32))
        mt = torch.from_numpy(mask.astype(np.float32))
        opt = torch.optim.Adam(
            net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )

        def loss_of(rows: torch.Tensor) -> torch.Tensor:
            err = (net(xt[rows]) - yt[rows]) ** 2 * mt[rows]
            return err.sum() / mt[rows].sum().clamp_min(1.0)

        self._train_loop(net, opt, loss_of, n_tr, len(X), gen)

    def _train_loop(
        self,
        net: RewardNet,
        opt: torch.optim.Optimizer,
        loss_of: Callable[[torch.Tensor], torch.Tensor],
        n_tr: int,
        n_total: int,
        gen: torch.Generator,
    ) -> None:
        """Mini-batch Adam on rows [0, n_tr), early stopping on rows [n_tr, n_total)."""
        val_rows = torch.arange(n_tr, n_total)
        best, best_state, stale, history = np.inf, copy.deepcopy(net.state_dict()), 0, []
        epochs_run = 0
        for _ in range(self.epochs):
            epochs_run += 1
            net.train()
            perm = torch.randperm(n_tr, generator=gen)
            for start in range(0, n_tr, self.batch_size):
                checkpoint()
                opt.zero_grad()
                loss = loss_of(perm[start : start + self.batch_size])
                loss.backward()
                opt.step()
            net.eval()
            with torch.no_grad():
                val = float(loss_of(val_rows))
            history.append(val)
            if val < best - 1e-6:
                best, best_state, stale = val, copy.deepcopy(net.state_dict()), 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        net.load_state_dict(best_state)
        net.eval()
        self.net_ = net
        self.val_loss_ = history
        self.epochs_run_ = epochs_run
        self.best_val_loss_ = float(best)

    def _fit_posterior_full(self, xt: torch.Tensor, y: np.ndarray) -> None:
        """Bayesian linear regression per arm on [embedding, 1] over all rows; each arm's
        noise variance from the network's residuals on that arm; the baseline arm's
        advantage is identically 0, so its posterior is a point mass at 0."""
        phi = self._features(xt)
        with torch.no_grad():
            pred = self.net_(xt).double().numpy()
        d = phi.shape[1]
        gram = phi.T @ phi
        self.noise_var_ = float(np.mean((pred - y) ** 2))
        self.post_mean_ = np.zeros((self.n_arms_, d))
        self.post_cov_ = np.zeros((self.n_arms_, d, d))
        for a in range(self.n_arms_):
            if a == self.baseline_arm_:
                continue
            noise = max(float(np.mean((pred[:, a] - y[:, a]) ** 2)), 1e-12)
            cov = np.linalg.inv(self.prior_precision * np.eye(d) + gram / noise)
            self.post_cov_[a] = (cov + cov.T) / 2
            self.post_mean_[a] = cov @ (phi.T @ y[:, a]) / noise
        logger.info(
            "NeuralBandit (full information, advantage over arm %d): %d epochs, val MSE %.4f",
            self.baseline_arm_,
            self.epochs_run_,
            self.best_val_loss_,
        )

    def _features(self, X: np.ndarray | torch.Tensor) -> np.ndarray:
        """``phi = [embedding, 1]`` in float64, written into one array (no float64 copy of
        the embedding and no stacked copy: the posterior's peak over all rows)."""
        if isinstance(X, torch.Tensor):
            xt = X.to(torch.float32)
        else:
            xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        with torch.no_grad():
            emb = self.net_.embed(xt).numpy()
        phi = np.empty((len(emb), emb.shape[1] + 1))
        phi[:, :-1] = emb
        phi[:, -1] = 1.0
        return phi

    def _fit_posterior(
        self, xt: torch.Tensor, action: np.ndarray, y: np.ndarray, weight: np.ndarray
    ) -> None:
        """(Weighted) Bayesian linear regression per arm on [embedding, 1], noise from the
        net's fit; ``weight`` is 1 per row for an unweighted fit."""
        phi = self._features(xt)
        with torch.no_grad():
            pred = self.net_(xt).double().numpy()[np.arange(len(action)), action]
        self.noise_var_ = float(np.mean(weight * (pred - y) ** 2))
        d = phi.shape[1]
        self.post_mean_ = np.zeros((self.n_arms_, d))
        self.post_cov_ = np.zeros((self.n_arms_, d, d))
        for a in range(self.n_arms_):
            rows = action == a
            pw = phi[rows] * weight[rows, None]
            precision = self.prior_precision * np.eye(d) + pw.T @ phi[rows] / self.noise_var_
            cov = np.linalg.inv(precision)
            self.post_cov_[a] = (cov + cov.T) / 2
            self.post_mean_[a] = cov @ (pw.T @ y[rows]) / self.noise_var_

    # ------------------------------------------------------------------ using
    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise RuntimeError("NeuralBandit is not fitted; call fit() first")

    def scoring_module(self) -> RewardNet:
        """The deterministic scoring network (eval mode): posterior means folded into the head.

        Its output is each arm's expected reward in reward units; this is what is exported.
        """
        self._check_fitted()
        module = copy.deepcopy(self.net_)
        weight = self.post_mean_[:, :-1] * self.reward_scale_
        bias = self.post_mean_[:, -1] * self.reward_scale_
        with torch.no_grad():
            module.head.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
            module.head.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
        return module.eval()

    def _advantage_posterior(self, baseline_arm: int) -> tuple[np.ndarray, np.ndarray]:
        """Per arm: weights [K, d] and covariance [K, d, d] of its (scaled) advantage over
        ``baseline_arm``. Posteriors of different arms are independent, so for a reward
        model the difference's covariance is the sum."""
        if self.target_ == "advantage":
            if baseline_arm != self.baseline_arm_:
                raise ValueError(f"fitted against arm {self.baseline_arm_}, not {baseline_arm}")
            return self.post_mean_.copy(), self.post_cov_.copy()
        mean = self.post_mean_ - self.post_mean_[baseline_arm]
        cov = self.post_cov_ + self.post_cov_[baseline_arm]
        mean[baseline_arm] = 0.0
        cov[baseline_arm] = 0.0
        return mean, cov

    def advantage_moments(self, X: np.ndarray, baseline_arm: int) -> tuple[np.ndarray, np.ndarray]:
        """[N, K] posterior mean and std of each arm's advantage over ``baseline_arm``
        (reward units); the baseline's own entries are 0."""
        self._check_fitted()
        w, cov = self._advantage_posterior(baseline_arm)
        phi = self._features(X)
        var = np.stack([np.sum((phi @ c) * phi, axis=1) for c in cov], axis=1)
        scale = self.reward_scale_
        return phi @ w.T * scale, np.sqrt(np.maximum(var, 0.0)) * scale

    def safe_scoring_module(self, baseline_arm: int, z: float) -> SafeScoringNet:
        """The exported policy: per arm the lower confidence bound ``mean - z * std`` of its
        advantage over ``baseline_arm`` (reward units), 0 for the baseline itself.

        Its argmax keeps the baseline unless some arm's advantage is positive with
        confidence (safe policy improvement over a baseline, Thomas et al. 2015; Laroche
        et al. 2019, SPIBB), so on rows it is unsure of the policy is the best single arm.
        """
        self._check_fitted()
        if z < 0:
            raise ValueError(f"z must be >= 0, got {z}")
        w, cov = self._advantage_posterior(baseline_arm)
        d = w.shape[1]
        chol = np.zeros_like(cov)
        for a in range(len(cov)):
            if np.any(cov[a]):
                chol[a] = np.linalg.cholesky(cov[a] + 1e-12 * np.eye(d))
        return SafeScoringNet(
            self.net_, w * self.reward_scale_, chol * self.reward_scale_, z
        ).eval()

    def predict(self, X: np.ndarray) -> np.ndarray:
        """[N, K] expected reward of each arm (posterior mean), float32."""
        self._check_fitted()
        return score_rows(self.scoring_module(), np.asarray(X))

    def _posterior_moments(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N, K] posterior mean and std of each arm's (scaled) value per row."""
        phi = self._features(X)
        mean = phi @ self.post_mean_.T
        var = np.stack([np.sum((phi @ cov) * phi, axis=1) for cov in self.post_cov_], axis=1)
        return mean, np.sqrt(np.maximum(var, 0.0))

    def sample_values(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """[N, K] one Thompson draw of each arm's value per row, in reward units."""
        self._check_fitted()
        mean, std = self._posterior_moments(X)
        return (mean + std * rng.standard_normal(mean.shape)) * self.reward_scale_

    def select_action(
        self, X: np.ndarray, rng: np.random.Generator | None = None, explore: bool = True
    ) -> np.ndarray:
        """[N] arm per row: argmax of a Thompson draw (explore) or of the posterior mean."""
        if explore:
            if rng is None:
                raise ValueError("exploration needs an rng")
            return np.argmax(self.sample_values(X, rng), axis=1)
        return np.argmax(self.predict(X), axis=1)

    def action_distribution(
        self, X: np.ndarray, rng: np.random.Generator, n_samples: int = 64
    ) -> np.ndarray:
        """[N, K] Monte-Carlo probabilities of the Thompson-sampling policy, for OPE."""
        self._check_fitted()
        mean, std = self._posterior_moments(X)
        counts = np.zeros((len(X), self.n_arms_))
        rows = np.arange(len(X))
        for _ in range(n_samples):
            draw = mean + std * rng.standard_normal(mean.shape)
            counts[rows, np.argmax(draw, axis=1)] += 1
        return counts / n_samples
