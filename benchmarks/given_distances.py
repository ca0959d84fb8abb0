"""``gwalign.align`` on given distance matrices against POT's conditional-gradient GW: time and objective.

Each pair is two distance matrices; both tools get the same ones (each divided by its mean) and
uniform weights. POT runs ``ot.gromov.gromov_wasserstein`` (square loss, its defaults: conditional
gradient from the product plan, exact linear problems by network simplex); gwalign runs its
defaults, whose exact finish takes conditional-gradient steps from the entropic plan, and, for
reference, ``finish="entropic"``. Objectives are the exact square-loss GW objective of each plan
under the given matrices (lower is better). Times are in-process after one warm-up call of each
tool, with a 3 s pause whenever the tool changes (a gwalign call right after POT's took up to 1.5×
as long: the two share the cores' thread pools); every run uses the machine's cores (torch and
BLAS threads at their defaults).

    python benchmarks/given_distances.py
    python benchmarks/given_distances.py --pairs spiral blobs uneven --sizes 1000 2000 --repeats 3

Pairs: ``spiral`` (a noisy 2-D spiral and a 3-D Swiss roll sharing its parameter, geodesics of
kNN graphs, k = 15), ``blobs`` (three anisotropic Gaussian blobs in 2-D and their rotated image in
10-D with noise, Euclidean distances), ``uneven`` (the spiral pair with 10% fewer target cells,
where the linear problems are transport LPs rather than assignments), and the geodesics (k = 15,
as ``benchmarks/baseline.py`` builds them) of the real pairs ``snareseq``, ``scnmt-met`` and
``scgem`` at their own sizes (``--sizes`` applies to the synthetic pairs).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import ot
from scipy.spatial.distance import cdist

import gwalign
from baseline import geodesics
from gwalign.datasets.synthetic import spiral_and_roll
from real_data import load_pair


def spiral(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Geodesic distances of the spiral (n points) and the Swiss roll (k points)."""
    xs, _, xt, _ = spiral_and_roll(n, k, seed=seed)
    return geodesics(xs), geodesics(xt)


def blobs(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distances of three 2-D blobs (n points) and of k of them rotated into 10-D."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [6.0, 1.0], [2.0, 5.0]])
    cloud = centres[rng.integers(0, 3, max(n, k))] + rng.normal(size=(max(n, k), 2)) * [1.5, 0.6]
    rotation = np.linalg.qr(rng.normal(size=(10, 10)))[0][:, :2]
    image = cloud[:k] @ rotation.T + 0.05 * rng.normal(size=(k, 10))
    return cdist(cloud[:n], cloud[:n]), cdist(image, image)


#: Seconds between calls of different tools.
PAUSE = 3.0

def real(name: str):
    """Geodesics of a real pair's two sides (its own sizes)."""
    def make(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        xs, xt, _, _ = load_pair(name)
        return geodesics(xs), geodesics(xt)
    return make


PAIRS = {"spiral": (spiral, 1.0), "blobs": (blobs, 1.0), "uneven": (spiral, 0.9),
         **{name: (real(name), None) for name in ("snareseq", "scnmt-met", "scgem")}}


def gw_loss(ds: np.ndarray, dt: np.ndarray, plan: np.ndarray) -> float:
    """Square-loss GW objective of ``plan`` under ``ds`` and ``dt``."""
    p, q = plan.sum(axis=1), plan.sum(axis=0)
    return float(ot.gromov.gwloss(*ot.gromov.init_matrix(ds, dt, p, q, "square_loss"), plan))


def run_pot(ds: np.ndarray, dt: np.ndarray) -> tuple[float, np.ndarray]:
    p, q = np.full(len(ds), 1 / len(ds)), np.full(len(dt), 1 / len(dt))
    tick = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # POT's network simplex warns when it hits its iteration cap
        plan = ot.gromov.gromov_wasserstein(ds, dt, p, q, "square_loss")
    return time.perf_counter() - tick, plan


def run_gwalign(ds: np.ndarray, dt: np.ndarray, finish: str) -> tuple[float, np.ndarray]:
    tick = time.perf_counter()
    alignment = gwalign.align(None, None, gwalign.GWConfig(device="cpu", finish=finish), d_source=ds, d_target=dt)
    return time.perf_counter() - tick, alignment.to_dense()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=sorted(PAIRS), choices=sorted(PAIRS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000])
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each tool (times: min–max)")
    args = parser.parse_args()
    warm = spiral(60, 60, seed=1)
    run_pot(*warm), run_gwalign(*warm, "auto")
    print("| pair | N × K | POT CG (s) | gwalign (s) | time ratio | POT objective | gwalign objective "
          "| objective ratio | entropic plan's objective |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.pairs:
        make, share = PAIRS[name]
        for n in args.sizes if share is not None else [0]:
            ds, dt = make(n, int(round((share or 0) * n)), seed=0)
            ds, dt = ds / ds.mean(), dt / dt.mean()
            pot = [run_pot(ds, dt) for _ in range(args.repeats)]
            time.sleep(PAUSE)
            ours = [run_gwalign(ds, dt, "auto") for _ in range(args.repeats)]
            _, entropic = run_gwalign(ds, dt, "entropic")
            time.sleep(PAUSE)
            pot_loss, our_loss = gw_loss(ds, dt, pot[0][1]), gw_loss(ds, dt, ours[0][1])
            pot_s, our_s = [t for t, _ in pot], [t for t, _ in ours]
            print(f"| {name} | {len(ds):,} × {len(dt):,} | {min(pot_s):.2f}–{max(pot_s):.2f} "
                  f"| {min(our_s):.2f}–{max(our_s):.2f} | {np.median(our_s) / np.median(pot_s):.2f} "
                  f"| {pot_loss:.5f} | {our_loss:.5f} | {our_loss / pot_loss:.3f} | {gw_loss(ds, dt, entropic):.5f} |",
                  flush=True)


if __name__ == "__main__":
    main()
