"""The layout's parameters: the user's knobs (LayoutOptions), every number the layout uses
(LayoutParams), and the rule that resolves one into the other from the map's size."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

from atlas_assets.errors import InvalidOptionError

Model = Literal["nomic-project-v1", "nomic-project-v2"]
V2_FROM_ROWS = 50_000
"""model=None picks nomic-project-v1 below this many rows, nomic-project-v2 from it."""

@dataclass(frozen=True)
class LayoutOptions:
    """The user-facing layout knobs (create_index's `projection=`); None = chosen from the data size.

    The client validates their ranges when the index is created; resolve_layout_params turns them
    into LayoutParams and checks how they combine.
    """

    n_neighbors: int | None = None
    n_epochs: int | None = None
    model: Model | None = None
    local_neighborhood_size: int | None = None
    spread: float | None = None
    rho: float | None = None
    min_dist: float | None = None


@dataclass(frozen=True)
class LayoutParams:
    """Every number the layout uses, resolved (no None): see resolve_layout_params for the defaults.

    n_neighbors: graph columns used per row (<= the graph's k). attraction_neighbors: of those, how
    many nearest get an attraction edge (nomic-project-v2's local_neighborhood_size; n_neighbors in
    v1). repulsion_strength: weight of negative samples (v2's rho; 1 in v1). a, b: the low-dimensional
    similarity 1 / (1 + a d^2b), fitted from spread and min_dist. local_connectivity: neighbours
    assumed fully connected when calibrating the local scale (umap-learn's local_connectivity).
    """

    model: Model
    n_neighbors: int
    n_epochs: int
    spread: float
    min_dist: float
    a: float
    b: float
    negative_sample_rate: int = 5
    learning_rate: float = 1.0
    repulsion_strength: float = 1.0
    attraction_neighbors: int = 15
    local_connectivity: float = 1.0
    init: Literal["auto", "pca", "spectral", "diffusion"] = "auto"
    update_epochs: int = 100

    def __post_init__(self) -> None:
        checks = [
            (self.model in ("nomic-project-v1", "nomic-project-v2"), "model must be nomic-project-v1 or -v2"),
            (2 <= self.n_neighbors <= 200, "n_neighbors must be in 2..200"),
            (1 <= self.n_epochs <= 10_000, "n_epochs must be in 1..10000"),
            (0 < self.spread <= 100, "spread must be in (0, 100]"),
            (0 <= self.min_dist <= self.spread, "min_dist must be in [0, spread]"),
            (self.a > 0 and self.b > 0, "a and b must be positive"),
            (0 <= self.negative_sample_rate <= 100, "negative_sample_rate must be in 0..100"),
            (0 < self.learning_rate <= 100, "learning_rate must be in (0, 100]"),
            (0 <= self.repulsion_strength <= 10, "repulsion_strength (rho) must be in [0, 10]"),
            (1 <= self.attraction_neighbors <= self.n_neighbors,
             "local_neighborhood_size must be in 1..n_neighbors"),
            (self.local_connectivity >= 0, "local_connectivity must be >= 0"),
            (self.init in ("auto", "pca", "spectral", "diffusion"), "init must be auto, pca, spectral or diffusion"),
            (1 <= self.update_epochs <= 10_000, "update_epochs must be in 1..10000"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidOptionError(f"invalid layout parameters: {message}")


@lru_cache(maxsize=64)
def fit_ab(spread: float, min_dist: float) -> tuple[float, float]:
    """a, b of 1 / (1 + a d^2b) closest to 1 below min_dist and exp(-(d - min_dist) / spread) above."""
    from scipy.optimize import curve_fit

    def curve(x: np.ndarray, a: float, b: float) -> np.ndarray:
        return 1.0 / (1.0 + a * x ** (2 * b))

    xv = np.linspace(0, spread * 3, 300)
    yv = np.where(xv < min_dist, 1.0, np.exp(-(xv - min_dist) / spread))
    (a, b), _ = curve_fit(curve, xv, yv)
    return float(a), float(b)


def default_n_epochs(n_rows: int) -> int:
    """Epochs chosen from the size. umap-learn uses 500 up to 10k rows and 200 above; this optimiser
    reaches umap-learn's NP@15 / trustworthiness with fewer (measured on ag_news, stackoverflow_titles:
    docs/layout.md), and large maps need fewer epochs per point to settle."""
    if n_rows <= 10_000:
        return 200
    if n_rows <= 100_000:
        return 120
    return 100


def resolve_layout_params(options: LayoutOptions | None, n_rows: int) -> LayoutParams:
    """LayoutParams for a map of n_rows rows; None options (or None fields) are chosen from n_rows.

    model: nomic-project-v1 is the UMAP-faithful layout; nomic-project-v2 is the same optimiser with
    two extra knobs: local_neighborhood_size (how many nearest neighbours of each row attract it;
    fewer is faster and more local, more gives more global structure; default n_neighbors) and rho
    (repulsion strength: > 1 spreads local structure apart, < 1 packs it tighter; default 1). None
    picks v1 below V2_FROM_ROWS rows and v2 from there; giving local_neighborhood_size or rho picks
    v2, and giving them with an explicit v1 is an error. n_neighbors: 15. n_epochs: 200 up to 10k
    rows, 120 up to 100k, 100 above (default_n_epochs). spread 1, min_dist 0.1 (umap-learn's defaults).
    """
    if n_rows < 0:
        raise InvalidOptionError(f"n_rows must be >= 0, got {n_rows}")
    options = options or LayoutOptions()
    knobs_given = options.local_neighborhood_size is not None or options.rho is not None
    if options.model == "nomic-project-v1" and knobs_given:
        raise InvalidOptionError(
            "local_neighborhood_size and rho only apply to model='nomic-project-v2'; "
            "set model='nomic-project-v2' or leave them None"
        )
    model: Model = options.model or (
        "nomic-project-v2" if knobs_given or n_rows >= V2_FROM_ROWS else "nomic-project-v1"
    )
    n_neighbors = options.n_neighbors or 15
    spread = options.spread if options.spread is not None else 1.0
    min_dist = options.min_dist if options.min_dist is not None else min(0.1, spread)
    if not 0 < spread <= 100:
        raise InvalidOptionError(f"invalid layout parameters: spread must be in (0, 100], got {spread}")
    if min_dist > spread:
        raise InvalidOptionError(f"min_dist ({min_dist}) must not exceed spread ({spread})")
    attraction = n_neighbors
    repulsion = 1.0
    if model == "nomic-project-v2":
        if options.local_neighborhood_size is not None:
            if options.local_neighborhood_size > n_neighbors:
                raise InvalidOptionError(
                    f"local_neighborhood_size ({options.local_neighborhood_size}) must not exceed "
                    f"n_neighbors ({n_neighbors}); lower it or raise n_neighbors"
                )
            attraction = options.local_neighborhood_size
        if options.rho is not None:
            repulsion = options.rho
    a, b = fit_ab(spread, min_dist)
    n_epochs = options.n_epochs or default_n_epochs(n_rows)
    return LayoutParams(
        model=model,
        n_neighbors=n_neighbors,
        n_epochs=n_epochs,
        spread=spread,
        min_dist=min_dist,
        a=a,
        b=b,
        repulsion_strength=repulsion,
        attraction_neighbors=attraction,
        update_epochs=max(30, n_epochs // 2),
    )
