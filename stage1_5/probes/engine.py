"""Batched multinomial L2 logistic regression in torch: thousands of probes as one tensor program.

Every probe of the protocol (representation × fold × seed × C × label permutation) solves
scikit-learn's objective

    C · Σ_i w_i · CE(softmax(x_i W + b), y_i) + ½‖W‖²        (intercept b unpenalised)

The L2 solution lies in the span of the training rows, so each training set ("fit set") is first
mapped to an orthogonal basis of that span (`fit_set_basis`): with d > n the Gram matrix is
eigendecomposed and every row becomes its coordinates in the n-dimensional span; with d ≤ n the
covariance is. The basis is exact (inner products are preserved), so the optimum and every
prediction equal the primal ones. In that basis the data Hessian is nearly diagonal (the columns are
orthogonal, with squared norms λ_j), which gives a cheap diagonal preconditioner, and all problems
sharing a fit set reuse one basis (a fit set with only a few problems and wide features skips the
eigendecomposition and uses the standardised features with a Jacobi preconditioner instead; the
objective is the same). Problems are padded into [fit set, problem, ...] tensors (padding
rows carry weight 0, padding columns are zero) and solved together by a batched L-BFGS with a
per-problem Armijo line search.

With exactly two classes present, scikit-learn fits one binomial coefficient vector; the engine
matches that by freezing the second class's coefficients at zero (softmax over [z, 0] = sigmoid(z)).
Classes absent from a training set are masked out (logit −inf), as scikit-learn only knows the
classes it saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from stage1_5 import runtime
from stage1_5.errors import ProbeError

NEG_INF = float("-inf")


def resolve_device(device: str) -> torch.device:
    """The probes' device ('auto' → CUDA when present); a bad one is a ProbeError naming probes.device."""
    return runtime.resolve_device(device, option="probes.device", error=ProbeError)


# --------------------------------------------------------------------------- basis


def _eigh(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric eigendecomposition on one thread: for fit-set-sized matrices (a few hundred rows)
    threads gain nothing, and on a shared CPU a multi-threaded call was measured to stall 100×."""
    if a.device.type != "cpu":
        return torch.linalg.eigh(a)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.eigh(a)
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class Basis:
    """Coordinates of one fit set's rows in an orthogonal basis of its span.

    train: [n, r] with orthogonal columns of squared norm `lam`; evals: [m, r]; `to_primal` [d, r]
    maps basis coefficients back to feature-space weights (W = to_primal @ V, after standardisation).
    """

    train: torch.Tensor
    evals: torch.Tensor
    lam: torch.Tensor
    mean: torch.Tensor
    scale: torch.Tensor
    to_primal: torch.Tensor


def fit_set_basis(
    X: torch.Tensor,
    train_idx: torch.Tensor,
    eval_idx: torch.Tensor,
    *,
    standardize: bool = True,
    rotate: bool = True,
    rtol: float = 1e-10,
) -> Basis:
    """Standardise on the training rows (StandardScaler: ddof=0, constant columns kept unscaled) and
    express training and evaluation rows in an orthogonal basis of the training rows' span.

    rotate=False keeps the standardised features as they are (r = d, no eigendecomposition): cheaper
    when only a few problems share the fit set; the preconditioner then uses the column norms (Jacobi)."""
    Xtr = X[train_idx].to(torch.float64)
    if standardize:
        mean = Xtr.mean(0)
        scale = Xtr.std(0, correction=0)
        scale = torch.where(scale > 1e-12 * mean.abs().clamp_min(1.0), scale, torch.ones_like(scale))
    else:
        mean = torch.zeros(X.shape[1], dtype=torch.float64, device=X.device)
        scale = torch.ones_like(mean)
    work = X.dtype if X.dtype in (torch.float32, torch.float64) else torch.float32
    Ztr = ((Xtr - mean) / scale).to(work)
    Zev = ((X[eval_idx].to(torch.float64) - mean) / scale).to(work)
    n, d = Ztr.shape
    if not rotate:
        eye = torch.eye(d, dtype=torch.float64, device=X.device)
        return Basis(train=Ztr, evals=Zev, lam=(Ztr.to(torch.float64) ** 2).sum(0), mean=mean, scale=scale, to_primal=eye)
    if d <= n:
        cov = (Ztr.T @ Ztr).to(torch.float64)
        lam, vec = _eigh(cov)
        keep = lam > rtol * lam.max().clamp_min(1e-300)
        lam, vec = lam[keep], vec[:, keep]
        rot = vec.to(work)
        train, evals, to_primal = Ztr @ rot, Zev @ rot, vec
    else:
        gram = (Ztr @ Ztr.T).to(torch.float64)
        lam, vec = _eigh(gram)
        keep = lam > rtol * lam.max().clamp_min(1e-300)
        lam, vec = lam[keep], vec[:, keep]
        inv_sqrt = lam.rsqrt()
        train = (vec * lam.sqrt()).to(work)
        evals = ((Zev @ Ztr.T).to(torch.float64) @ (vec * inv_sqrt)).to(work)
        to_primal = Ztr.T.to(torch.float64) @ (vec * inv_sqrt)
    return Basis(train=train, evals=evals, lam=lam, mean=mean, scale=scale, to_primal=to_primal)


# --------------------------------------------------------------------------- batched problems


@dataclass(frozen=True)
class ProblemBatch:
    """F fit sets × P problems each, padded.

    phi [F, n, r] training coordinates; lam [F, r] (0 on padding); y [F, P, n] labels (any value on
    padding rows); weight [F, P, n] per-row loss weights (0 on padding rows); C [F, P];
    class_mask [F, P, K] classes present in training; free [F, P, K] classes whose coefficients are
    optimised (present classes, minus the reference class of binary problems).
    """

    phi: torch.Tensor
    lam: torch.Tensor
    y: torch.Tensor
    weight: torch.Tensor
    C: torch.Tensor
    class_mask: torch.Tensor
    free: torch.Tensor


def balanced_weights(y: torch.Tensor, rows: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's class_weight='balanced' per row: n / (K_present · count[y]); 0 on padding rows.

    y [..., n] long; rows [..., n] bool, or float row multiplicities (a bootstrap draw: a row of
    multiplicity m counts as m copies of itself, in the class counts and in the loss).
    Returns (weights [..., n], present [..., K])."""
    mult = rows.to(torch.float64)
    yc = torch.where(mult > 0, y, torch.zeros_like(y))
    counts = torch.zeros(*y.shape[:-1], n_classes, dtype=torch.float64, device=y.device)
    counts.scatter_add_(-1, yc, mult)
    present = counts > 0
    n = mult.sum(-1, keepdim=True)
    k = present.sum(-1, keepdim=True).to(torch.float64)
    per_class = torch.where(present, n / (k * counts.clamp_min(1e-12)), torch.zeros_like(counts))
    return torch.gather(per_class, -1, yc) * mult, present


def free_classes(present: torch.Tensor) -> torch.Tensor:
    """Present classes, except the last present one when exactly two are present (binomial case)."""
    free = present.clone()
    binary = present.sum(-1) == 2
    if binary.any():
        last = present.shape[-1] - 1 - present.flip(-1).to(torch.int64).argmax(-1)
        drop = torch.zeros_like(present)
        drop.scatter_(-1, last.unsqueeze(-1), True)
        free = torch.where(binary.unsqueeze(-1) & drop, torch.zeros_like(free), free)
    return free


class _Objective:
    """Value and gradient of the preconditioned objective of a ProblemBatch.

    Parameters theta [F, P, R·K] with R = r + 1 (last row = intercept, fed by a column of ones);
    inside, coefficients are laid out [F, R, P·K] so that the logits of all P problems of a fit set
    are one [n, R] @ [R, P·K] matrix product. theta = coefficients / pre, where pre is the diagonal
    preconditioner.
    """

    def __init__(self, batch: ProblemBatch, dtype: torch.dtype):
        F, n, r = batch.phi.shape
        P, K = batch.y.shape[1], batch.class_mask.shape[-1]
        self.F, self.n, self.R, self.P, self.K = F, n, r + 1, P, K
        rows = batch.weight.gt(0).any(1)  # [F, n]
        ones = rows.to(dtype).unsqueeze(-1)
        self.phi = torch.cat([batch.phi.to(dtype), ones], -1)  # [F, n, R]
        self.phi_t = self.phi.transpose(1, 2).contiguous()
        cw = batch.weight * batch.C.unsqueeze(-1)  # C·w_i [F, P, n]
        self.cw = cw.transpose(1, 2).to(dtype).unsqueeze(-1)  # [F, n, P, 1]
        # the data Hessian in the orthogonal basis is ≈ diag(¼·C·Σw/n·λ_j); the intercept column has λ = n
        cwbar = (cw.sum(-1) / rows.sum(-1, keepdim=True).clamp_min(1)).to(dtype)  # [F, P]
        lam = torch.cat([batch.lam.to(dtype), rows.sum(-1, keepdim=True).to(dtype)], -1)  # [F, R]
        self.pre = (1.0 + 0.25 * cwbar.unsqueeze(-1) * lam.unsqueeze(1)).rsqrt().unsqueeze(-1)  # [F, P, R, 1]
        self.penalised = torch.ones(1, 1, self.R, 1, dtype=dtype, device=self.phi.device)
        self.penalised[:, :, -1] = 0.0
        self.logit_mask = torch.where(batch.class_mask, 0.0, -1e30).to(dtype).unsqueeze(1)  # [F, 1, P, K]
        self.free = batch.free.to(dtype).unsqueeze(2)  # [F, P, 1, K]
        self.y = batch.y.transpose(1, 2).unsqueeze(-1)  # [F, n, P, 1]
        self.size = self.R * K

    def coefficients(self, theta: torch.Tensor) -> torch.Tensor:
        """[F, P, R, K] coefficients (last row: intercepts)."""
        return theta.view(self.F, self.P, self.R, self.K) * self.pre * self.free

    def __call__(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        F, n, R, P, K = self.F, self.n, self.R, self.P, self.K
        v = self.coefficients(theta)  # [F, P, R, K]
        vr = v.transpose(1, 2).reshape(F, R, P * K)
        z = torch.bmm(self.phi, vr).view(F, n, P, K) + self.logit_mask
        logp = torch.log_softmax(z, -1)
        nll = logp.gather(-1, self.y)  # −loss, [F, n, P, 1]
        vp = v * self.penalised
        f = 0.5 * (vp * vp).sum((2, 3)) - (self.cw * nll).sum(1).squeeze(-1)  # [F, P]
        dz = logp.exp_()
        dz.scatter_add_(-1, self.y, torch.full_like(nll, -1.0))
        dz *= self.cw
        gv = torch.bmm(self.phi_t, dz.view(F, n, P * K)).view(F, R, P, K).transpose(1, 2) + vp
        return f, (gv * self.pre * self.free).reshape(F, P, R * K)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vecdot(a, b)  # per problem: [F, P]


def _col(s: torch.Tensor) -> torch.Tensor:
    return s.unsqueeze(-1)


def _lbfgs(fun, x: torch.Tensor, gnorm, *, max_iter: int, history: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched L-BFGS (one history per problem, x [F, P, D]) with per-problem Armijo backtracking.

    `gnorm(g) -> [F, P]` decides convergence (≤ 1). Returns (x, n_iter [F, P], converged [F, P])."""
    f, g = fun(x)
    S, Y, rho = [], [], []
    n_iter = torch.zeros(f.shape, dtype=torch.int64, device=x.device)
    done = gnorm(g) <= 1.0
    for _ in range(max_iter):
        if bool(done.all()):
            break
        q = g.clone()
        alphas = []
        for s_, y_, r_ in zip(reversed(S), reversed(Y), reversed(rho)):
            a = r_ * _dot(s_, q)
            q.sub_(_col(a) * y_)
            alphas.append(a)
        if S:
            yy = _dot(Y[-1], Y[-1])
            gamma = torch.where(yy > 0, _dot(S[-1], Y[-1]) / yy.clamp_min(1e-30), torch.ones_like(yy))
            q.mul_(_col(gamma))
        else:
            q.mul_(_col((1.0 / g.abs().sum(-1).clamp_min(1e-12)).clamp(max=1.0)))
        for s_, y_, r_, a in zip(S, Y, rho, reversed(alphas)):
            q.add_(_col(a - r_ * _dot(y_, q)) * s_)
        d = q.neg_()
        gd = _dot(g, d)
        bad = gd >= 0  # not a descent direction: restart along −g
        if bool(bad.any()):
            d = torch.where(_col(bad), -g, d)
            gd = torch.where(bad, -_dot(g, g), gd)
        d = d * _col(~done)
        step = torch.ones_like(f)
        accepted = done.clone()
        x_new, f_new, g_new = x, f, g
        for _ in range(20):
            xt = x + _col(step) * d
            ft, gt = fun(xt)
            ok = (~accepted) & (ft <= f + 1e-4 * step * gd)
            x_new = torch.where(_col(ok), xt, x_new)
            f_new = torch.where(ok, ft, f_new)
            g_new = torch.where(_col(ok), gt, g_new)
            accepted |= ok
            if bool(accepted.all()):
                break
            step = torch.where(accepted, step, step * 0.5)
        moved = accepted & ~done
        s, yv = x_new - x, g_new - g
        sy = _dot(s, yv)
        keep = moved & (sy > 1e-10 * _dot(yv, yv).sqrt() * _dot(s, s).sqrt())
        if bool(keep.any()):
            S.append(s * _col(keep))
            Y.append(yv * _col(keep))
            rho.append(torch.where(keep, 1.0 / torch.where(keep, sy, torch.ones_like(sy)), torch.zeros_like(sy)))
            if len(S) > history:
                S.pop(0), Y.pop(0), rho.pop(0)
        x, f, g = x_new, f_new, g_new
        n_iter += moved.to(torch.int64)
        # a problem whose line search cannot decrease f is at numerical precision: stop it
        done = done | ~accepted | (gnorm(g) <= 1.0)
    return x, n_iter, gnorm(g) <= 1.0


@dataclass(frozen=True)
class BatchSolution:
    coef: torch.Tensor  # [F, P, r, K] basis coefficients (zero for absent / reference classes)
    intercept: torch.Tensor  # [F, P, K]
    class_mask: torch.Tensor  # [F, P, K]
    n_iter: torch.Tensor  # [F, P]
    converged: torch.Tensor  # [F, P]


def solve_batch(
    batch: ProblemBatch,
    *,
    max_iter: int = 500,
    tol: float = 1e-4,
    history: int = 10,
    dtype=torch.float64,
    warm_start: Optional[BatchSolution] = None,
) -> BatchSolution:
    """Minimise every problem of the batch (objective in the module docstring).

    Converged when max|∂/∂(W,b)| ≤ tol · C·Σw, i.e. scikit-learn's lbfgs criterion on its normalised
    objective. `warm_start` (same shapes) starts from an earlier solution, e.g. the previous C."""
    obj = _Objective(batch, dtype)
    F, R, P, K = obj.F, obj.R, obj.P, obj.K
    if warm_start is not None:
        coef = torch.cat([warm_start.coef, warm_start.intercept.unsqueeze(2)], 2)  # [F, P, R, K]
        theta = (coef.to(dtype) / obj.pre).reshape(F, P, R * K)
    else:
        theta = obj.phi.new_zeros(F, P, R * K)
    scale = (batch.C * batch.weight.sum(-1)).to(dtype).clamp_min(1e-12)  # [F, P]
    inv_pre = (1.0 / obj.pre).expand(F, P, R, K).reshape(F, P, R * K)

    def gnorm(g: torch.Tensor) -> torch.Tensor:
        return (g * inv_pre).abs().amax(-1) / (tol * scale)

    theta, n_iter, converged = _lbfgs(obj, theta, gnorm, max_iter=max_iter, history=history)
    v = obj.coefficients(theta)
    return BatchSolution(
        coef=v[:, :, :-1],
        intercept=v[:, :, -1],
        class_mask=batch.class_mask,
        n_iter=n_iter,
        converged=converged,
    )


def decision_values(phi_eval: torch.Tensor, sol: BatchSolution) -> torch.Tensor:
    """Logits [F, P, m, K] for evaluation rows phi_eval [F, m, r]; absent classes are −inf."""
    z = torch.einsum("fmr,fprk->fpmk", phi_eval.to(sol.coef.dtype), sol.coef) + sol.intercept.unsqueeze(2)
    return z + torch.where(sol.class_mask, 0.0, NEG_INF).to(z.dtype).unsqueeze(2)



# --------------------------------------------------------------------------- jobs (protocol-facing)


@dataclass(frozen=True)
class FitJob:
    """One fit set and the problems solved on it: every labelling × every C of its row.

    X: [N, d] features (shared between jobs of one representation); fit_rows / eval_rows index X;
    y: [L, len(fit_rows)] integer labels in [0, n_classes); C: [L, G] (ascending along G: the
    engine walks each row's C path with warm starts); weight: None, or [L, len(fit_rows)] row
    multiplicities ≥ 0 (speaker-bootstrap refits: a speaker drawn twice counts twice, one not drawn
    not at all; class balancing counts the copies, as refitting on the duplicated rows would).
    """

    X: np.ndarray
    fit_rows: np.ndarray
    eval_rows: np.ndarray
    y: np.ndarray
    C: np.ndarray
    n_classes: int
    weight: Optional[np.ndarray] = None


class TorchBackend:
    """Solves FitJobs as padded batches on one device. `decision_function(jobs)` → list of
    [L, G, len(eval_rows), n_classes] float arrays (−inf for classes absent from training)."""

    name = "torch"

    def __init__(
        self,
        device: str = "auto",
        *,
        max_iter: int = 500,
        tol: float = 1e-4,
        dtype: torch.dtype = torch.float64,
        max_batch_bytes: int = 512 * 2**20,
    ):
        self.device = resolve_device(device)
        self.max_iter = max_iter
        self.tol = tol
        self.dtype = dtype
        self.max_batch_bytes = max_batch_bytes
        self._X_cache: dict[int, tuple[np.ndarray, torch.Tensor]] = {}

    def _tensor(self, X: np.ndarray) -> torch.Tensor:
        key = id(X)
        hit = self._X_cache.get(key)
        if hit is None or hit[0] is not X:  # float32 Gram products; eigendecompositions run in float64
            hit = (X, torch.as_tensor(np.asarray(X), device=self.device).to(torch.float32))
            self._X_cache = {key: hit}  # one representation at a time
        return hit[1]

    def decision_function(self, jobs: Sequence[FitJob], progress=None) -> list[np.ndarray]:
        out: list[Optional[np.ndarray]] = [None] * len(jobs)
        order = sorted(range(len(jobs)), key=lambda i: (jobs[i].n_classes, jobs[i].C.shape, len(jobs[i].fit_rows)))
        chunk: list[int] = []
        chunk_bytes = 0
        for i in order:
            job = jobs[i]
            r = (min(len(job.fit_rows), job.X.shape[1]) if self._rotate(job) else job.X.shape[1]) + 1
            n_rows = len(job.fit_rows) + len(job.eval_rows)
            cost = 8 * job.C.shape[0] * job.n_classes * (26 * r + 4 * n_rows) + 16 * n_rows * r
            if chunk and (
                chunk_bytes + cost > self.max_batch_bytes
                or jobs[chunk[0]].n_classes != job.n_classes
                or jobs[chunk[0]].C.shape != job.C.shape
                or self._rotate(jobs[chunk[0]]) != self._rotate(job)
            ):
                self._run(jobs, chunk, out)
                if progress is not None:
                    progress.update(len(chunk))
                chunk, chunk_bytes = [], 0
            chunk.append(i)
            chunk_bytes += cost
        if chunk:
            self._run(jobs, chunk, out)
            if progress is not None:
                progress.update(len(chunk))
        return out  # type: ignore[return-value]

    @staticmethod
    def _rotate(job: FitJob) -> bool:
        """The span basis costs an eigendecomposition per fit set; it pays off when the features are
        narrower than the fit set or when many problems (labellings × C) share the fit set."""
        return job.X.shape[1] <= len(job.fit_rows) or job.C.size >= 8

    def _run(self, jobs: Sequence[FitJob], idx: list[int], out: list) -> None:
        dev, dt = self.device, self.dtype
        bases = []
        for i in idx:
            job = jobs[i]
            X = self._tensor(job.X)
            bases.append(
                fit_set_basis(
                    X,
                    torch.as_tensor(job.fit_rows, device=dev),
                    torch.as_tensor(job.eval_rows, device=dev),
                    rotate=self._rotate(job),
                )
            )
        F, (P, G), K = len(idx), jobs[idx[0]].C.shape, jobs[idx[0]].n_classes
        n = max(len(jobs[i].fit_rows) for i in idx)
        m = max(len(jobs[i].eval_rows) for i in idx)
        r = max(b.train.shape[1] for b in bases)
        phi = torch.zeros(F, n, r, dtype=dt, device=dev)
        phi_ev = torch.zeros(F, m, r, dtype=dt, device=dev)
        lam = torch.zeros(F, r, dtype=dt, device=dev)
        y = torch.zeros(F, P, n, dtype=torch.int64, device=dev)
        rows = torch.zeros(F, P, n, dtype=torch.float64, device=dev)
        C = torch.zeros(F, P, G, dtype=dt, device=dev)
        for f, (i, b) in enumerate(zip(idx, bases)):
            job = jobs[i]
            nf, rf = b.train.shape
            phi[f, :nf, :rf] = b.train.to(dt)
            phi_ev[f, : b.evals.shape[0], :rf] = b.evals.to(dt)
            lam[f, :rf] = b.lam.to(dt)
            y[f, :, :nf] = torch.as_tensor(job.y, device=dev)
            rows[f, :, :nf] = 1.0 if job.weight is None else torch.as_tensor(job.weight, dtype=torch.float64, device=dev)
            C[f] = torch.as_tensor(job.C, dtype=dt, device=dev)
        weight, present = balanced_weights(y, rows, K)
        free = free_classes(present)
        sol, z = None, []
        for g in range(G):  # C path, warm-started
            batch = ProblemBatch(phi=phi, lam=lam, y=y, weight=weight.to(dt), C=C[..., g], class_mask=present, free=free)
            sol = solve_batch(batch, max_iter=self.max_iter, tol=self.tol, dtype=dt, warm_start=sol)
            z.append(decision_values(phi_ev, sol))
        values = torch.stack(z, 2).cpu().numpy()  # [F, P, G, m, K]
        for f, i in enumerate(idx):
            out[i] = values[f, :, :, : len(jobs[i].eval_rows)]


def _weighted_balance(y: np.ndarray, weight: Optional[np.ndarray]):
    """class_weight for scikit-learn: 'balanced', or its weighted-count version for bootstrap refits."""
    if weight is None:
        return "balanced"
    classes = np.unique(y)
    counts = np.array([weight[y == c].sum() for c in classes])
    return {int(c): float(weight.sum() / (len(classes) * n)) for c, n in zip(classes, counts)}


class SklearnBackend:
    """Reference: one scikit-learn LogisticRegression fit per problem (StandardScaler on the fit rows)."""

    name = "sklearn"

    def __init__(self, *, max_iter: int = 1000, tol: float = 1e-6):
        self.max_iter = max_iter
        self.tol = tol

    def decision_function(self, jobs: Sequence[FitJob], progress=None) -> list[np.ndarray]:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        out = []
        for job in jobs:
            X = np.asarray(job.X, dtype=np.float64)
            scaler = StandardScaler().fit(X[job.fit_rows])
            Xf, Xe = scaler.transform(X[job.fit_rows]), scaler.transform(X[job.eval_rows])
            L, G = job.C.shape
            z = np.full((L, G, len(job.eval_rows), job.n_classes), -np.inf)
            for p in range(L):
                for g in range(G):
                    Xp, yp, sw = Xf, job.y[p], None
                    if job.weight is not None:  # refit on the duplicated rows: balance the weighted counts
                        keep = job.weight[p] > 0
                        Xp, yp, sw = Xf[keep], yp[keep], job.weight[p][keep]
                    clf = LogisticRegression(
                        C=float(job.C[p, g]), class_weight=_weighted_balance(yp, sw), max_iter=self.max_iter, tol=self.tol
                    )
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ConvergenceWarning)
                        clf.fit(Xp, yp, sample_weight=sw)
                    dec = clf.decision_function(Xe)
                    if dec.ndim == 1:  # binomial: logits [0, z] over (classes_[0], classes_[1])
                        dec = np.stack([np.zeros_like(dec), dec], 1)
                    z[p, g][:, clf.classes_] = dec
            out.append(z)
            if progress is not None:
                progress.update(1)
        return out


# --------------------------------------------------------------------------- estimator


class BatchedLogisticRegression(ClassifierMixin, BaseEstimator):
    """Single-problem estimator over the batched engine, following scikit-learn's contract.

    Same objective as `LogisticRegression(C=C, class_weight=class_weight)` with lbfgs (multinomial;
    binomial for two classes); no standardisation (put a StandardScaler in front, as with sklearn).
    """

    def __init__(
        self,
        C: float = 1.0,
        *,
        class_weight: Optional[str] = None,
        max_iter: int = 300,
        tol: float = 1e-6,
        device: str = "cpu",
    ):
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.tol = tol
        self.device = device

    def fit(self, X, y) -> "BatchedLogisticRegression":
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(f"X must be 2-D with len(y)={len(y)} rows, got shape {X.shape}")
        if not np.isfinite(X).all():
            raise ValueError("X contains NaN or infinity")
        if not (isinstance(self.C, (int, float)) and self.C > 0):
            raise ValueError(f"C must be a positive number, got {self.C!r}")
        if self.class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {self.class_weight!r}")
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("need at least two classes")
        dev = resolve_device(self.device)
        Xt = torch.as_tensor(X, device=dev)
        all_rows = torch.arange(len(X), device=dev)
        basis = fit_set_basis(Xt, all_rows, all_rows[:0], standardize=False)
        K = len(self.classes_)
        yt = torch.as_tensor(codes, device=dev).view(1, 1, -1)
        rows = torch.ones_like(yt, dtype=torch.bool)
        if self.class_weight == "balanced":
            weight, present = balanced_weights(yt, rows, K)
        else:
            weight, present = rows.to(torch.float64), torch.ones(1, 1, K, dtype=torch.bool, device=dev)
        batch = ProblemBatch(
            phi=basis.train.unsqueeze(0),
            lam=basis.lam.unsqueeze(0),
            y=yt,
            weight=weight,
            C=torch.full((1, 1), float(self.C), dtype=torch.float64, device=dev),
            class_mask=present,
            free=free_classes(present),
        )
        sol = solve_batch(batch, max_iter=self.max_iter, tol=self.tol)
        W = (basis.to_primal @ sol.coef[0, 0]).cpu().numpy()  # [d, K]
        b = sol.intercept[0, 0].cpu().numpy()
        if K == 2:  # report as scikit-learn does: one vector, positive class = classes_[1]
            W, b = (W[:, :1] - W[:, 1:]) * -1.0, -(b[:1] - b[1:])
        self.coef_, self.intercept_ = W.T.copy(), b.copy()
        self.n_iter_ = np.array([int(sol.n_iter[0, 0])])
        self.converged_ = bool(sol.converged[0, 0])
        self.n_features_in_ = X.shape[1]
        return self

    def decision_function(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X must have {self.n_features_in_} columns, got shape {X.shape}")
        z = X @ self.coef_.T + self.intercept_
        return z[:, 0] if len(self.classes_) == 2 else z

    def predict_proba(self, X) -> np.ndarray:
        z = self.decision_function(X)
        if z.ndim == 1:
            z = np.stack([np.zeros_like(z), z], 1)
        z = z - z.max(1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        z = self.decision_function(X)
        idx = (z > 0).astype(int) if z.ndim == 1 else z.argmax(1)
        return self.classes_[idx]
