"""A dense convex quadratic programme solver (Mehrotra predictor-corrector interior point), numpy only.

Solves  min ½ x'Qx + c'x  subject to  A x = b  and  G x <= h,  with Q positive semi-definite.
Portfolio problems are small and dense (n <= a few thousand), so one dense KKT solve per step
is simpler and more accurate than a first-order method, and needs no scipy or cvxpy at run time.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]

_MAX_ITERATIONS = 200
_TOLERANCE = 1e-12
_STEP_FRACTION = 0.995
_MAX_POLISH_ROUNDS = 50


class QpFailed(ArithmeticError):
    """The solver stopped before meeting its tolerance; `iterations` and `residual` say how far it got."""

    def __init__(self, iterations: int, residual: float) -> None:
        super().__init__(f"QP did not converge: residual {residual:.3g} after {iterations} iterations, "
                         f"tolerance {_TOLERANCE:g}")
        self.iterations = iterations
        self.residual = residual


def _max_step(value: Floats, step: Floats) -> float:
    """Largest alpha in (0, 1] keeping value + alpha * step > 0."""
    negative = step < 0
    if not negative.any():
        return 1.0
    return float(min(1.0, np.min(-value[negative] / step[negative])))


def _polish(Q: Floats, c: Floats, A: Floats, b: Floats, G: Floats, h: Floats,
            x: Floats, s: Floats, z: Floats) -> Floats:
    """Land exactly on the active constraints: an interior point stops a hair inside them.

    Starting from the constraints whose multiplier outweighs their slack, solve the KKT system
    with them as equalities; add any constraint the result breaks, drop the one with the most
    negative multiplier, and repeat. The polished point is kept only when it is feasible with
    non-negative multipliers (optimal), so polishing never returns a worse answer than `x`.
    """
    active = z > s
    n, m = Q.shape[0], A.shape[0]
    slack_tolerance = 1e-12 * (1.0 + float(np.abs(h).max()))
    for _ in range(_MAX_POLISH_ROUNDS):
        k = int(active.sum())
        E = np.vstack([A, G[active]])
        kkt = np.block([[Q, E.T], [E, np.zeros((m + k, m + k))]])
        try:
            solution = np.linalg.solve(kkt, np.concatenate([-c, b, h[active]]))
        except np.linalg.LinAlgError:
            return x  # dependent active constraints (degenerate vertex): keep the interior point
        polished, multipliers = solution[:n], solution[n + m:]
        violated = (G @ polished > h + slack_tolerance) & ~active
        if violated.any():
            active |= violated
            continue
        if k and multipliers.min() < -1e-12:
            active[np.flatnonzero(active)[int(np.argmin(multipliers))]] = False
            continue
        return polished
    return x


class _Rows:
    """Products with G; rows that are each one +-1 entry (bounds) take O(k) instead of O(k n)."""

    def __init__(self, G: Floats) -> None:
        self.G = G
        self.n = G.shape[1]
        nonzero = np.count_nonzero(G, axis=1)
        self.column = np.argmax(G != 0, axis=1)
        self.sign = G[np.arange(G.shape[0]), self.column]
        self.unit = bool((nonzero == 1).all() and (np.abs(self.sign) == 1).all())

    def times(self, x: Floats) -> Floats:
        """G x."""
        return self.sign * x[self.column] if self.unit else self.G @ x

    def transposed_times(self, v: Floats) -> Floats:
        """G' v."""
        if self.unit:
            return np.bincount(self.column, weights=self.sign * v, minlength=self.n).astype(np.float64)
        return self.G.T @ v

    def gram(self, w: Floats) -> Floats:
        """G' diag(w) G."""
        if self.unit:
            return np.diag(np.bincount(self.column, weights=w, minlength=self.n))
        return self.G.T @ (w[:, None] * self.G)


def _direction(rows: _Rows, kkt: Floats, n: int, r_dual: Floats, r_eq: Floats, r_ineq: Floats, s: Floats,
               z: Floats, r_comp: Floats) -> tuple[Floats, Floats, Floats, Floats]:
    """One Newton direction (dx, dy, ds, dz) for complementarity target `r_comp`."""
    # Eliminate ds and dz: ds = -r_ineq - G dx, dz = (z * (G dx + r_ineq) - r_comp) / s.
    rhs = np.concatenate([-r_dual - rows.transposed_times((z * r_ineq - r_comp) / s), -r_eq])
    solution = np.linalg.solve(kkt, rhs)
    dx, dy = solution[:n], solution[n:]
    g_dx = rows.times(dx)
    return dx, dy, -r_ineq - g_dx, (z * (g_dx + r_ineq) - r_comp) / s


def solve_qp(Q: Floats, c: Floats, A: Floats, b: Floats, G: Floats, h: Floats) -> Floats:
    """The minimiser x of the QP; raises QpFailed when it cannot meet the tolerance."""
    n, m, k = Q.shape[0], A.shape[0], G.shape[0]
    if k == 0:
        # Equality constraints only: one KKT solve is the exact answer.
        kkt = np.block([[Q, A.T], [A, np.zeros((m, m))]])
        return np.linalg.solve(kkt, np.concatenate([-c, b]))[:n]
    rows = _Rows(G)
    x = np.zeros(n)
    s = np.maximum(h - G @ x, 1.0)
    z = np.ones(k)
    y = np.zeros(m)
    scale = 1.0 + max(float(np.abs(Q).max()), float(np.abs(c).max(initial=0)), float(np.abs(h).max(initial=0)))
    residual = np.inf
    for _ in range(_MAX_ITERATIONS):
        r_dual = Q @ x + c + A.T @ y + rows.transposed_times(z)
        r_eq = A @ x - b
        r_ineq = rows.times(x) + s - h
        gap = float(s @ z)
        mu = gap / k
        residual = max(float(np.abs(r_dual).max()), float(np.abs(r_eq).max(initial=0)),
                       float(np.abs(r_ineq).max()), gap) / scale
        if residual < _TOLERANCE:
            return _polish(Q, c, A, b, G, h, x, s, z)
        w = z / s
        hessian = Q + rows.gram(w)
        kkt = np.block([[hessian, A.T], [A, np.zeros((m, m))]])

        dx, dy, ds, dz = _direction(rows, kkt, n, r_dual, r_eq, r_ineq, s, z, s * z)
        alpha = min(_max_step(s, ds), _max_step(z, dz))
        mu_affine = float((s + alpha * ds) @ (z + alpha * dz)) / k
        sigma = (mu_affine / mu) ** 3 if mu > 0 else 0.0
        dx, dy, ds, dz = _direction(rows, kkt, n, r_dual, r_eq, r_ineq, s, z, s * z + ds * dz - sigma * mu)
        alpha = _STEP_FRACTION * min(_max_step(s, ds), _max_step(z, dz))
        alpha = min(alpha, 1.0)
        x, y, s, z = x + alpha * dx, y + alpha * dy, s + alpha * ds, z + alpha * dz
    raise QpFailed(_MAX_ITERATIONS, residual)
