"""Benchmark: per-node nominal alpha, ours vs the ``krippendorff`` package.

Run from the repository root with ``.venv/bin/python bench/agreement.py``. No Django.

Builds 15 synthetic 0/1 "code applied to clause" matrices (3 coders x 100,000 clauses,
one per tree node, ~8 % missing cells, node prevalences from 1 % to 60 %), then times on
the very same matrices:

* ``krippendorff.alpha(m, level_of_measurement="nominal")``, one call per node;
* ``coding.agreement.krippendorff_alpha(m, "nominal")``, one call per node;
* ``coding.agreement.krippendorff_alpha_binary_many(tensor)``, one call for all nodes.

The three are run REPEATS times, interleaved (the machine may be shared), and the best
and median wall-clock times are printed; the speed criterion uses the best times. The 15
figures of the three methods must agree to 1e-9. The script exits with status 1 if they
do not, or if ours is slower than the package.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import krippendorff

from coding.agreement import (
    krippendorff_alpha,
    krippendorff_alpha_binary_many,
)

N_CODERS = 3
N_UNITS = 100_000
N_NODES = 15
MISSING_SHARE = 0.08
REPEATS = 7
TOLERANCE = 1e-9


def build_matrices(seed: int = 20240501) -> list[np.ndarray]:
    """15 coders x units float matrices (0/1, NaN = missing) with realistic agreement."""
    rng = np.random.default_rng(seed)
    matrices = []
    for prevalence in np.linspace(0.01, 0.6, N_NODES):
        truth = rng.random(N_UNITS) < prevalence
        # Each coder copies the "true" code, flipping it with a coder-specific error rate.
        flips = rng.random((N_CODERS, N_UNITS)) < rng.uniform(0.02, 0.2, size=(N_CODERS, 1))
        matrix = np.where(flips, ~truth, truth).astype(np.float64)
        matrix[rng.random(matrix.shape) < MISSING_SHARE] = np.nan
        matrices.append(matrix)
    return matrices


def run_interleaved(methods: dict[str, Callable[[], list]]) -> tuple[dict[str, list[float]], dict[str, list]]:
    """Time every method REPEATS times, interleaved so that background load hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    results: dict[str, list] = {}
    for _ in range(REPEATS):
        for name, function in methods.items():
            start = time.perf_counter()
            results[name] = function()
            times[name].append(time.perf_counter() - start)
    return times, results


def main() -> int:
    matrices = build_matrices()
    # The web page holds the data as one coders x units x nodes array.
    tensor = np.stack(matrices, axis=2)

    times, results = run_interleaved(
        {
            "package": lambda: [
                float(krippendorff.alpha(reliability_data=m, level_of_measurement="nominal")) for m in matrices
            ],
            "ours": lambda: [krippendorff_alpha(m, "nominal") for m in matrices],
            "batch": lambda: krippendorff_alpha_binary_many(tensor),
        }
    )
    package, ours, batch = results["package"], results["ours"], results["batch"]
    best = {name: min(values) for name, values in times.items()}
    median = {name: float(np.median(values)) for name, values in times.items()}
    t_package, t_ours, t_batch = best["package"], best["ours"], best["batch"]

    package_values = np.array(package, dtype=float)
    diff_ours = float(np.max(np.abs(np.array(ours, dtype=float) - package_values)))
    diff_batch = float(np.max(np.abs(np.array(batch, dtype=float) - package_values)))

    print(
        f"data: {N_NODES} nodes x {N_CODERS} coders x {N_UNITS:,} clauses, "
        f"{MISSING_SHARE:.0%} missing; best (median) of {REPEATS} interleaved runs"
    )
    print(f"alpha range over nodes: {package_values.min():.4f} .. {package_values.max():.4f}")
    labels = {
        "package": "krippendorff.alpha, 15 calls:          ",
        "ours": "krippendorff_alpha (ours), 15 calls:   ",
        "batch": "krippendorff_alpha_binary_many, 1 call:",
    }
    for name, label in labels.items():
        line = f"{label} {best[name] * 1000:8.1f} ms ({median[name] * 1000:8.1f} ms)"
        if name != "package":
            line += f"  ratio to package {best[name] / t_package:.3f} ({median[name] / median['package']:.3f})"
        print(line)
    print(f"max |ours - package| = {diff_ours:.2e}, max |batch - package| = {diff_batch:.2e}")
    if max(diff_ours, diff_batch) > TOLERANCE or None in ours or None in batch:
        print("MISMATCH: results differ by more than the tolerance")
        return 1
    if t_ours > t_package or t_batch > t_package:
        print("TOO SLOW: ours is slower than the krippendorff package")
        return 1
    print("OK: all 15 figures agree and ours is not slower")
    return 0


if __name__ == "__main__":
    sys.exit(main())
