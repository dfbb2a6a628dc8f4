"""Inter-coder agreement coefficients for PolicyCoder (pure numpy/pandas, no Django).

Formulas, edge-case policy and oracles are specified in ``shared/reference/AGREEMENT.md``;
section numbers below refer to that file.

Conventions shared by every function:

* A reliability ``matrix`` is coders x units: nested lists (one list per coder), a 2-D
  numpy array or a ``pandas.DataFrame``. ``None``, ``NaN`` (and ``pd.NA``) mark a missing
  value: the coder did not code that unit. Missing is never a category.
* A figure that is not computable (no variation, nothing pairable, fewer than two
  coders) is returned as ``None``; a coefficient is never silently replaced by 0 or 1.
* Malformed input (ragged matrix, unknown level, non-numeric values for a metric level,
  span outside the continuum, ...) raises ``ValueError``.
* Every computation is vectorised over units/characters. The only Python loops run over
  coders, coder pairs, categories, distinct values or fixed-size blocks -- never over
  units, spans or characters.
  The one exception is :func:`masi_alpha`, which has to turn each Python set/list cell
  into a ``frozenset`` before anything can be vectorised.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "LEVELS",
    "AlphaResult",
    "CharacterAgreement",
    "UnitizedAlphaResult",
    "brennan_prediger_kappa",
    "character_agreement",
    "cohen_kappa",
    "fleiss_kappa",
    "gwet_ac1",
    "krippendorff_alpha",
    "krippendorff_alpha_binary_many",
    "krippendorff_alpha_details",
    "masi_alpha",
    "masi_alpha_details",
    "masi_distance",
    "percent_agreement",
    "pool_character_agreement",
    "unitized_alpha",
    "unitized_alpha_details",
]

Level = Literal["nominal", "ordinal", "interval", "ratio"]
LEVELS: tuple[str, ...] = ("nominal", "ordinal", "interval", "ratio")

#: Anything accepted as a coders x units reliability matrix.
Matrix = Sequence[Sequence[Any]] | npt.NDArray[Any] | pd.DataFrame

# A delta function maps two broadcastable arrays of value indices to squared distances.
_Delta = Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], npt.NDArray[np.float64]]

# Bound on the number of V x V distance entries materialised at once (memory, not speed).
_BLOCK_ENTRIES = 1 << 20

_NUMERIC_KINDS = frozenset({"integer", "floating", "mixed-integer-float", "decimal", "boolean", "empty"})


# --------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlphaResult:
    """Krippendorff's alpha with the quantities it is made of (§2.6).

    ``alpha`` is ``None`` when not computable. ``observed`` (D_o) is ``None`` when no unit
    is pairable; ``expected`` (D_e) is ``None`` when fewer than two values are pairable.
    ``n_pairable_values`` is Krippendorff's n.. and ``n_pairable_units`` the number of
    units with at least two values; report them next to the coefficient.
    """

    alpha: float | None
    observed: float | None
    expected: float | None
    n_pairable_values: int
    n_pairable_units: int


@dataclass(frozen=True)
class UnitizedAlphaResult:
    """Krippendorff's alpha_u with its observed and expected disagreement (§2.8).

    For the overall figure ``observed``/``expected`` are the means over categories, as
    DKPro Agreement aggregates them. All three are ``None`` when not computable.
    """

    alpha: float | None
    observed: float | None
    expected: float | None


@dataclass(frozen=True)
class CharacterAgreement:
    """NVivo-style coding comparison for one node in one source (§2.10).

    ``a`` = characters coded by both coders, ``b`` = coder A only, ``c`` = coder B only,
    ``d`` = neither. ``percent_agreement`` = (a + d) / L. ``kappa`` is Cohen's kappa on
    the 2 x 2 character table; it is ``None`` when nobody coded the node or both coded
    every character (0/0 -- NVivo displays 1 for "nobody coded", we do not).
    """

    a: int
    b: int
    c: int
    d: int
    percent_agreement: float
    kappa: float | None

    @property
    def length(self) -> int:
        """Number of characters compared (a + b + c + d)."""
        return self.a + self.b + self.c + self.d

    @classmethod
    def from_counts(cls, a: int, b: int, c: int, d: int) -> CharacterAgreement:
        """Build the comparison from the four character counts.

        Raises ``ValueError`` if a count is negative or not an integer, or all are zero.
        """
        counts = []
        for name, value in (("a", a), ("b", b), ("c", c), ("d", d)):
            if not _is_int(value) or value < 0:
                raise ValueError(f"count {name} must be a non-negative integer, got {value!r}")
            counts.append(int(value))
        a, b, c, d = counts
        total = a + b + c + d
        if total == 0:
            raise ValueError("cannot compare an empty source (a + b + c + d == 0)")
        # Integer arithmetic keeps the 0/0 test exact: kappa = (L*p_o - E) / (L*L - E).
        chance = (a + b) * (a + c) + (c + d) * (b + d)
        denominator = total * total - chance
        kappa = None if denominator == 0 else (total * (a + d) - chance) / denominator
        return cls(a, b, c, d, (a + d) / total, kappa)


# --------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _as_object_grid(matrix: Matrix) -> npt.NDArray[Any]:
    """Return ``matrix`` as a 2-D array (numeric arrays pass through untouched)."""
    if isinstance(matrix, pd.DataFrame):
        matrix = matrix.to_numpy()
    if isinstance(matrix, np.ndarray):
        if matrix.ndim != 2:
            raise ValueError(f"matrix must be 2-D (coders x units), got an array with {matrix.ndim} dimension(s)")
        return matrix
    if isinstance(matrix, str | bytes) or not isinstance(matrix, Iterable):
        raise ValueError("matrix must be a coders x units array or a list of per-coder lists")
    rows = list(matrix)
    lengths = []
    for i, row in enumerate(rows):
        if isinstance(row, str | bytes) or not hasattr(row, "__len__"):
            raise ValueError(f"matrix row {i} is not a sequence of values (one per unit)")
        lengths.append(len(row))
    if len(set(lengths)) > 1:
        raise ValueError(f"ragged matrix: every coder needs one value per unit, got row lengths {lengths}")
    n_units = lengths[0] if lengths else 0
    grid = np.empty((len(rows), n_units), dtype=object)
    for i, row in enumerate(rows):
        try:
            grid[i, :] = row if isinstance(row, np.ndarray) else list(row)
        except ValueError as exc:
            raise ValueError(f"matrix row {i}: cells must be scalar values ({exc})") from exc
    return grid


def _encode_nominal(grid: npt.NDArray[Any]) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]:
    """Integer codes (-1 = missing) for a grid of hashable labels, plus the distinct labels."""
    try:
        codes, uniques = pd.factorize(grid.ravel(), use_na_sentinel=True)
    except TypeError as exc:
        raise ValueError(f"cells must be hashable scalar values ({exc})") from exc
    return codes.reshape(grid.shape).astype(np.int64, copy=False), np.asarray(uniques)


def _encode_numeric(grid: npt.NDArray[Any], level: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Integer codes (-1 = missing) into the sorted distinct numeric values."""
    if grid.dtype.kind in "biuf":
        x = grid.astype(np.float64, copy=False)
    else:
        missing = pd.isna(grid)
        present = grid[~missing]
        kind = pd.api.types.infer_dtype(present, skipna=True)
        if kind not in _NUMERIC_KINDS:
            raise ValueError(f"level {level!r} needs numeric values (codes as numbers), got {kind} values")
        x = np.full(grid.shape, np.nan)
        x[~missing] = present.astype(np.float64)
    if np.isinf(x).any():
        raise ValueError("values must be finite numbers")
    present_mask = ~np.isnan(x)
    values, inverse = np.unique(x[present_mask], return_inverse=True)
    codes = np.full(x.shape, -1, dtype=np.int64)
    codes[present_mask] = inverse
    return codes, values


def _as_label_vector(labels: Sequence[Any] | npt.NDArray[Any], name: str) -> npt.NDArray[Any]:
    if isinstance(labels, str | bytes):
        raise ValueError(f"{name} must be a sequence of labels, not a string")
    if isinstance(labels, pd.Series):
        labels = labels.to_numpy()
    if isinstance(labels, np.ndarray):
        arr = labels
    else:
        try:
            arr = np.array(list(labels), dtype=object)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be a flat sequence of labels ({exc})") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got {arr.ndim} dimension(s)")
    return arr


# --------------------------------------------------------------------------------------
# Shared vectorised building blocks
# --------------------------------------------------------------------------------------


def _agreeing_pairs(codes: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray]:
    """Per unit: number of values m_u and number of ordered agreeing pairs sum n_uc(n_uc-1)."""
    present = codes >= 0
    m_u = present.sum(axis=0)
    agree = np.zeros(codes.shape[1], dtype=np.int64)
    for i in range(codes.shape[0]):
        for j in range(i + 1, codes.shape[0]):
            agree += 2 * ((codes[i] == codes[j]) & present[i])
    return m_u, agree


def _pairable_value_counts(
    codes: npt.NDArray[np.int64], n_values: int
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Presence mask, m_u, the weights 1/(m_u - 1) (0 if unpairable) and the pairable n_c."""
    present = codes >= 0
    m_u = present.sum(axis=0)
    pairable = m_u >= 2
    weight = np.zeros(codes.shape[1])
    weight[pairable] = 1.0 / (m_u[pairable] - 1)
    # Values outside pairable units go to an overflow bin n_values, dropped afterwards.
    binned = np.where(present & pairable[np.newaxis, :], codes, n_values)
    n_c = np.bincount(binned.ravel(), minlength=n_values + 1)[:n_values].astype(np.float64)
    return present, m_u, weight, n_c


def _observed_sum(
    codes: npt.NDArray[np.int64], present: npt.NDArray[np.bool_], weight: npt.NDArray[np.float64], delta: _Delta
) -> float:
    """sum_c sum_k o_ck delta(c, k), accumulated coder pair by coder pair."""
    total = 0.0
    for i in range(codes.shape[0]):
        for j in range(i + 1, codes.shape[0]):
            # Masking the weight instead of the codes avoids copying the arrays; delta of
            # a missing (-1) code is finite and multiplied by 0.
            pair_weight = np.where(present[i] & present[j], weight, 0.0)
            # delta is symmetric: the (i, j) and (j, i) ordered pairs contribute equally.
            # multiply + sum rather than np.dot: a multithreaded BLAS dot stalls badly on a
            # busy server, and the single-threaded version is just as fast at this size.
            total += 2.0 * float(np.sum(pair_weight * delta(codes[i], codes[j])))
    return total


def _expected_sum_blocked(n_c: npt.NDArray[np.float64], delta: _Delta) -> float:
    """sum_c sum_k n_c n_k delta(c, k), materialising the V x V grid in row blocks."""
    n_values = len(n_c)
    idx = np.arange(n_values)
    step = max(1, _BLOCK_ENTRIES // max(n_values, 1))
    total = 0.0
    for start in range(0, n_values, step):
        rows = idx[start : start + step]
        total += float(n_c[rows] @ delta(rows[:, np.newaxis], idx[np.newaxis, :]) @ n_c)
    return total


def _alpha_from_codes(
    codes: npt.NDArray[np.int64],
    n_values: int,
    delta: _Delta,
    expected_sum: Callable[[npt.NDArray[np.float64]], float],
) -> AlphaResult:
    if codes.shape[0] < 2 or codes.shape[1] == 0:
        return AlphaResult(None, None, None, 0, 0)
    present, m_u, weight, n_c = _pairable_value_counts(codes, n_values)
    n = float(n_c.sum())
    n_units = int((m_u >= 2).sum())
    if n_units == 0:
        return AlphaResult(None, None, None, 0, 0)
    observed_sum = _observed_sum(codes, present, weight, delta)
    d_o = observed_sum / n
    if int((n_c > 0).sum()) < 2:
        # D_e = 0: every pairable value is the same (§3 "no variation").
        return AlphaResult(None, d_o, None, int(n), n_units)
    e_sum = expected_sum(n_c)
    if e_sum <= 0.0:
        return AlphaResult(None, d_o, 0.0, int(n), n_units)
    d_e = e_sum / (n * (n - 1.0))
    alpha = 1.0 - (n - 1.0) * observed_sum / e_sum
    return AlphaResult(float(alpha), float(d_o), float(d_e), int(n), n_units)


def _nominal_delta(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> npt.NDArray:
    return (a != b).astype(np.float64)


def _nominal_expected(n_c: npt.NDArray[np.float64]) -> float:
    n = n_c.sum()
    return float(n * n - np.dot(n_c, n_c))


# --------------------------------------------------------------------------------------
# Clause-level coefficients
# --------------------------------------------------------------------------------------


def percent_agreement(matrix: Matrix) -> float | None:
    """Share of agreeing coder pairs, averaged over units (§2.1 definition (b)).

    For every unit with at least two values, the share of coder pairs that gave the same
    value; the mean over those units (Fleiss' P-bar, Gwet's p_a). Equals the plain
    "units with identical values / units coded by both" for two coders.

    Returns ``None`` when no unit has two values. Raises ``ValueError`` on a malformed
    matrix.
    """
    codes, _ = _encode_nominal(_as_object_grid(matrix))
    return _percent_agreement_codes(codes)


def _percent_agreement_codes(codes: npt.NDArray[np.int64]) -> float | None:
    m_u, agree = _agreeing_pairs(codes)
    pairable = m_u >= 2
    if not pairable.any():
        return None
    m = m_u[pairable]
    return float(np.mean(agree[pairable] / (m * (m - 1))))


def cohen_kappa(a: Sequence[Any] | npt.NDArray[Any], b: Sequence[Any] | npt.NDArray[Any]) -> float | None:
    """Cohen's kappa for two coders (§2.2).

    ``a`` and ``b`` are equal-length label sequences (one label per unit); units that
    either coder left missing (``None``/``NaN``) are dropped. Kappa may be negative.

    Returns ``None`` when no unit was coded by both, or when p_e = 1 (both coders used
    one and the same category throughout). Raises ``ValueError`` when the lengths differ
    or an argument is not a flat sequence.
    """
    a_arr = _as_label_vector(a, "a")
    b_arr = _as_label_vector(b, "b")
    if len(a_arr) != len(b_arr):
        raise ValueError(f"a and b must have the same length, got {len(a_arr)} and {len(b_arr)}")
    both = np.empty(len(a_arr) * 2, dtype=object)
    both[: len(a_arr)] = a_arr
    both[len(a_arr) :] = b_arr
    codes, uniques = _encode_nominal(both.reshape(2, -1))
    keep = (codes[0] >= 0) & (codes[1] >= 0)
    n = int(keep.sum())
    if n == 0:
        return None
    n_values = len(uniques)
    table = np.bincount(codes[0, keep] * n_values + codes[1, keep], minlength=n_values * n_values).reshape(
        n_values, n_values
    )
    agree = int(np.trace(table))
    # Integer arithmetic keeps the p_e = 1 test exact: kappa = (N*agree - E) / (N*N - E).
    chance = int(np.dot(table.sum(axis=1), table.sum(axis=0)))
    denominator = n * n - chance
    if denominator == 0:
        return None
    return (n * agree - chance) / denominator


def fleiss_kappa(matrix: Matrix) -> float | None:
    """Fleiss' kappa (§2.3); rater identity is ignored, only counts per unit matter.

    Every unit must carry the same number n >= 2 of ratings. Units that nobody rated are
    ignored; any other missing value that makes the counts unequal is refused with
    ``ValueError`` (Fleiss' kappa is undefined there -- use :func:`krippendorff_alpha`).

    Returns ``None`` when nothing is pairable (no rated unit, or one rating per unit) or
    when every rating is the same category (P_e = 1).
    """
    codes, _ = _encode_nominal(_as_object_grid(matrix))
    m_u, agree = _agreeing_pairs(codes)
    rated = m_u > 0
    if not rated.any():
        return None
    counts = np.unique(m_u[rated])
    if len(counts) > 1:
        raise ValueError(
            "Fleiss' kappa needs the same number of ratings for every unit, got "
            f"{counts.tolist()}; use krippendorff_alpha for incomplete designs"
        )
    n = int(counts[0])
    if n < 2:
        return None
    present = codes >= 0
    p_j = np.bincount(codes[present]) / present.sum()
    if int((p_j > 0).sum()) < 2:
        return None
    p_bar = float(np.mean(agree[rated] / (n * (n - 1))))
    p_e = float(np.dot(p_j, p_j))
    return (p_bar - p_e) / (1.0 - p_e)


def _codebook_size(categories: int | Collection[Any], observed: npt.NDArray[Any]) -> int:
    if _is_int(categories):
        q = int(categories)  # type: ignore[arg-type]
        if q < 1:
            raise ValueError(f"the codebook must offer at least one category, got {q}")
        if len(observed) > q:
            raise ValueError(f"{len(observed)} distinct values were observed but the codebook has only {q}")
        return q
    if isinstance(categories, str | bytes) or not isinstance(categories, Iterable):
        raise ValueError("categories must be the codebook size or a collection of codes")
    try:
        offered = pd.Index(list(categories)).unique()
    except TypeError as exc:
        raise ValueError(f"categories must be hashable ({exc})") from exc
    if len(offered) < 1:
        raise ValueError("the codebook must offer at least one category")
    offered_set = set(offered)
    unknown = [value for value in observed if value not in offered_set]
    if unknown:
        raise ValueError(f"values not in the codebook: {unknown!r}")
    return len(offered)


def brennan_prediger_kappa(matrix: Matrix, categories: int | Collection[Any]) -> float | None:
    """Brennan-Prediger kappa_n (Bennett's S, Randolph's free-marginal kappa; §2.4).

    ``kappa = (p_o - 1/q) / (1 - 1/q)`` with p_o from :func:`percent_agreement` and q the
    number of codes *offered in the codebook*: pass ``categories`` as that number or as
    the collection of codes (then every observed value must be one of them).

    Returns ``None`` when no unit has two values or q = 1. Raises ``ValueError`` when q
    is smaller than the number of observed values or an observed value is not offered.
    """
    codes, uniques = _encode_nominal(_as_object_grid(matrix))
    q = _codebook_size(categories, uniques)
    p_o = _percent_agreement_codes(codes)
    if p_o is None or q == 1:
        return None
    return (p_o - 1.0 / q) / (1.0 - 1.0 / q)


def gwet_ac1(matrix: Matrix, categories: int | Collection[Any] | None = None) -> float | None:
    """Gwet's AC1 (§2.5), with missing data handled as in Gwet (2014) / irrCAC.

    p_a as in :func:`percent_agreement`; pi_k = mean over units with >= 1 rating of the
    share of that unit's ratings in category k; ``p_e = sum_k pi_k (1 - pi_k) / (q - 1)``.
    q is the codebook size when ``categories`` is given (size or collection, as in
    :func:`brennan_prediger_kappa`), otherwise the number of distinct observed values
    (irrCAC's default).

    Returns ``None`` when no unit has two values or q = 1 (irrCAC reports 1.0 there).
    """
    codes, uniques = _encode_nominal(_as_object_grid(matrix))
    q = len(uniques) if categories is None else _codebook_size(categories, uniques)
    p_a = _percent_agreement_codes(codes)
    if p_a is None or q < 2:
        return None
    present = codes >= 0
    m_u = present.sum(axis=0)
    rated_units = int((m_u > 0).sum())
    unit_weight = np.zeros(codes.shape[1])
    unit_weight[m_u > 0] = 1.0 / m_u[m_u > 0]
    weights = np.broadcast_to(unit_weight, codes.shape)[present]
    pi = np.bincount(codes[present], weights=weights, minlength=len(uniques)) / rated_units
    p_e = float(np.dot(pi, 1.0 - pi)) / (q - 1)
    return (p_a - p_e) / (1.0 - p_e)


def krippendorff_alpha_details(matrix: Matrix, level: Level = "nominal") -> AlphaResult:
    """Krippendorff's alpha with D_o, D_e and the pairable counts (§2.6).

    Same contract as :func:`krippendorff_alpha`, which returns ``.alpha`` of this.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown level of measurement {level!r}; expected one of {LEVELS}")
    grid = _as_object_grid(matrix)
    if level == "nominal":
        codes, uniques = _encode_nominal(grid)
        return _alpha_from_codes(codes, len(uniques), _nominal_delta, _nominal_expected)
    codes, values = _encode_numeric(grid, level)
    if level == "interval":

        def delta(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> npt.NDArray:
            return (values[a] - values[b]) ** 2

        def expected(n_c: npt.NDArray[np.float64]) -> float:
            # sum_ck n_c n_k (v_c - v_k)^2 = 2 n sum_c n_c (v_c - mean)^2; centring avoids
            # the cancellation of the textbook 2 n sum v^2 - 2 (sum v)^2.
            n = n_c.sum()
            centred = values - np.dot(n_c, values) / n
            return float(2.0 * n * np.dot(n_c, centred * centred))

        return _alpha_from_codes(codes, len(values), delta, expected)

    if level == "ratio":

        def delta(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> npt.NDArray:
            va, vb = values[a], values[b]
            total = va + vb
            diff = np.divide(va - vb, total, out=np.zeros(np.broadcast(va, vb).shape), where=total != 0)
            return diff * diff

        return _alpha_from_codes(codes, len(values), delta, lambda n_c: _expected_sum_blocked(n_c, delta))

    # Ordinal: delta(c, k) = (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2 over the sorted
    # values, with the pairable marginals n_g.
    _, _, _, n_g = _pairable_value_counts(codes, len(values))
    cum = np.cumsum(n_g)

    def ordinal_delta(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> npt.NDArray:
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        between = cum[hi] - cum[lo] + n_g[lo]
        return (between - (n_g[a] + n_g[b]) / 2.0) ** 2

    return _alpha_from_codes(codes, len(values), ordinal_delta, lambda n_c: _expected_sum_blocked(n_c, ordinal_delta))


def krippendorff_alpha(matrix: Matrix, level: Level = "nominal") -> float | None:
    """Krippendorff's alpha for a coders x units matrix with missing data (§2.6).

    ``level`` is ``"nominal"`` (any hashable labels), ``"ordinal"``, ``"interval"`` or
    ``"ratio"`` (numeric values; ordinal uses only their order). Units with fewer than two
    values are dropped; missing values are never a category. A single unit with total
    disagreement gives 0.

    Returns ``None`` when fewer than two coders, no unit has two values, or all pairable
    values are identical (D_e = 0). Raises ``ValueError`` for an unknown level, a
    malformed matrix, or non-numeric values at a non-nominal level.
    """
    return krippendorff_alpha_details(matrix, level).alpha


def krippendorff_alpha_binary_many(
    tensor: npt.ArrayLike,
) -> list[float | None]:
    """Nominal alpha per node for 0/1 "code X applied" data, all nodes at once.

    ``tensor`` has shape coders x units x nodes; cells are booleans or 0/1 with ``NaN``
    for missing (a clause the coder did not code). Returns one entry per node (last axis)
    equal to ``krippendorff_alpha(tensor[:, :, k], "nominal")``, ``None`` where that is
    not computable. Uses the binary closed form
    ``alpha = 1 - (n.. - 1) * sum_u 2 n0_u n1_u / (m_u - 1) / (2 N0 N1)``, so the cost is a
    handful of reductions over the whole tensor, with no loop over units or nodes.

    Raises ``ValueError`` when the array is not 3-D or holds values other than 0, 1, NaN.
    """
    x = np.asarray(tensor)
    if x.ndim != 3:
        raise ValueError(f"tensor must be coders x units x nodes (3-D), got {x.ndim}-D")
    if x.dtype != bool:
        try:
            x = x.astype(np.float64, copy=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"tensor cells must be 0, 1 or NaN ({exc})") from exc
    # Accumulating coder by coder in int32 is several times faster than reducing the
    # whole 3-D boolean temporaries over axis 0.
    n0_u = np.zeros(x.shape[1:], dtype=np.int32)
    n1_u = np.zeros(x.shape[1:], dtype=np.int32)
    for coder_values in x:
        n1_u += coder_values == 1
        n0_u += coder_values == 0
    if x.dtype != bool and int(n0_u.sum()) + int(n1_u.sum()) != x.size - int(np.count_nonzero(np.isnan(x))):
        raise ValueError("tensor cells must be 0, 1 or NaN")
    m_u = n0_u + n1_u
    pairable = m_u >= 2
    n0_p = np.where(pairable, n0_u, 0).astype(np.float64)
    n1_p = np.where(pairable, n1_u, 0).astype(np.float64)
    weight = np.zeros(m_u.shape)
    np.divide(1.0, m_u - 1, out=weight, where=pairable)
    # Per unit, 2 n0 n1 ordered pairs disagree; unpairable units have weight 0.
    observed = 2.0 * (n0_p * n1_p * weight).sum(axis=0)
    n0 = n0_p.sum(axis=0)
    n1 = n1_p.sum(axis=0)
    n = n0 + n1
    expected = 2.0 * n0 * n1
    result: list[float | None] = []
    alphas = 1.0 - (n - 1.0) * observed / np.where(expected > 0, expected, 1.0)
    for alpha, ok in zip(alphas.tolist(), (expected > 0).tolist(), strict=True):
        result.append(alpha if ok else None)
    return result


# --------------------------------------------------------------------------------------
# Set-valued cells: MASI
# --------------------------------------------------------------------------------------


def masi_distance(a: Collection[Any], b: Collection[Any]) -> float:
    """Passonneau's MASI distance ``1 - J * M`` between two code sets (§2.7).

    M = 1 (equal), 2/3 (one a proper subset of the other), 1/3 (overlap), 0 (disjoint).
    ``masi_distance(set(), set()) == 0``; an empty and a non-empty set are at distance 1.
    """
    sa, sb = frozenset(a), frozenset(b)
    if sa == sb:
        return 0.0
    inter = len(sa & sb)
    if inter == 0:
        return 1.0
    weight = 2.0 / 3.0 if inter == min(len(sa), len(sb)) else 1.0 / 3.0
    return 1.0 - inter / len(sa | sb) * weight


def _as_set_grid(matrix: Matrix) -> npt.NDArray[Any]:
    if isinstance(matrix, pd.DataFrame):
        matrix = matrix.to_numpy()
    if isinstance(matrix, np.ndarray) and matrix.dtype != object:
        raise ValueError("set-valued matrix cells must be sets/lists of codes or None")
    if isinstance(matrix, np.ndarray):
        if matrix.ndim != 2:
            raise ValueError(f"matrix must be 2-D (coders x units), got {matrix.ndim}-D")
        rows: list[Sequence[Any]] = list(matrix)
    else:
        if isinstance(matrix, str | bytes) or not isinstance(matrix, Iterable):
            raise ValueError("matrix must be a list of per-coder lists of sets")
        rows = list(matrix)
    lengths = []
    for i, row in enumerate(rows):
        if isinstance(row, str | bytes) or not hasattr(row, "__len__"):
            raise ValueError(f"matrix row {i} is not a sequence of cells (one per unit)")
        lengths.append(len(row))
    if len(set(lengths)) > 1:
        raise ValueError(f"ragged matrix: every coder needs one cell per unit, got row lengths {lengths}")
    n_units = lengths[0] if lengths else 0
    grid = np.empty((len(rows), n_units), dtype=object)
    # Python sets cannot be hashed or vectorised as they are: one conversion per cell is
    # unavoidable here (everything after this point is vectorised).
    for i, row in enumerate(rows):
        converted = []
        for j, cell in enumerate(row):
            if cell is None or cell is pd.NA or (isinstance(cell, float) and cell != cell):
                converted.append(None)
            elif isinstance(cell, set | frozenset | list | tuple):
                try:
                    converted.append(frozenset(cell))
                except TypeError as exc:
                    raise ValueError(f"cell (coder {i}, unit {j}): codes must be hashable") from exc
            else:
                raise ValueError(f"cell (coder {i}, unit {j}) must be a set/list of codes or None, got {cell!r}")
        grid[i, :] = converted if converted else []
    return grid


def masi_alpha_details(matrix: Matrix) -> AlphaResult:
    """Krippendorff's alpha with the MASI distance, with D_o/D_e (see :func:`masi_alpha`)."""
    codes, uniques = _encode_nominal(_as_set_grid(matrix))
    return masi_alpha_from_codes(codes, list(uniques))


def masi_alpha_from_codes(codes: npt.ArrayLike, sets: Sequence[Collection[Any]]) -> AlphaResult:
    """:func:`masi_alpha_details` for cells already encoded: ``codes`` is a coders x units
    integer matrix indexing ``sets`` (-1 = missing), ``sets`` the code sets it indexes.

    For callers that hold the cells as indices into a few distinct sets (a study has
    hundreds of thousands of cells but only dozens of distinct node sets): it skips
    building and hashing one Python set per cell. The same set listed twice is harmless
    (their distance is 0).
    """
    grid = np.asarray(codes)
    if grid.ndim != 2:
        raise ValueError(f"codes must be 2-D (coders x units), got {grid.ndim}-D")
    if grid.size and grid.dtype.kind not in "iu":
        raise ValueError("codes must be integers indexing sets (-1 = missing)")
    grid = grid.astype(np.int64, copy=False)
    n_sets = len(sets)
    if grid.size and (grid.min() < -1 or grid.max() >= n_sets):
        raise ValueError(f"codes must lie in [-1, {n_sets}) to index the {n_sets} sets")
    # Membership matrix of the distinct sets: MASI for all pairs of sets at once.
    element_ids: dict[Any, int] = {}
    rows_idx: list[int] = []
    cols_idx: list[int] = []
    for s_index, code_set in enumerate(sets):
        if isinstance(code_set, str | bytes) or not isinstance(code_set, Collection):
            raise ValueError(f"sets[{s_index}] must be a set/list of codes, got {code_set!r}")
        for code in set(code_set):
            rows_idx.append(s_index)
            cols_idx.append(element_ids.setdefault(code, len(element_ids)))
    member = np.zeros((n_sets, max(len(element_ids), 1)))
    member[rows_idx, cols_idx] = 1.0
    sizes = member.sum(axis=1)
    inter = member @ member.T
    union = sizes[:, np.newaxis] + sizes[np.newaxis, :] - inter
    jaccard = np.divide(inter, union, out=np.ones_like(inter), where=union > 0)
    smaller = np.minimum(sizes[:, np.newaxis], sizes[np.newaxis, :])
    weight = np.select([inter == union, inter == smaller, inter > 0], [1.0, 2.0 / 3.0, 1.0 / 3.0], default=0.0)
    distance = 1.0 - jaccard * weight

    def delta(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> npt.NDArray:
        return distance[a, b]

    return _alpha_from_codes(grid, n_sets, delta, lambda n_c: float(n_c @ distance @ n_c))


def masi_alpha(matrix: Matrix) -> float | None:
    """Krippendorff's alpha for set-valued cells with the MASI distance as delta (§2.7).

    Cells are sets/lists/tuples of codes; an empty set means "read, no code applied" (a
    real value); ``None``/``NaN`` means missing. ``d(empty, empty) = 0``.

    Returns ``None`` when not computable (as :func:`krippendorff_alpha`). Raises
    ``ValueError`` for a malformed matrix or a cell that is not a set/list or ``None``
    (a bare string is refused rather than guessed at).
    """
    return masi_alpha_details(matrix).alpha


# --------------------------------------------------------------------------------------
# Unitizing: Krippendorff's alpha_u (DKPro definition)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Continuum:
    begin: int
    length: int
    n_coders: int
    coder: npt.NDArray[np.int64]  # one entry per span, sorted by (coder, category, start)
    start: npt.NDArray[np.int64]
    end: npt.NDArray[np.int64]
    cat: npt.NDArray[np.int64]  # index into categories
    categories: list[Any]


def _check_positive_int(value: object, name: str) -> int:
    if not _is_int(value) or int(value) < 1:  # type: ignore[call-overload]
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)  # type: ignore[call-overload]


def _span_columns(spans: Iterable[Any], names: tuple[str, ...], owner: str) -> list[npt.NDArray[Any]]:
    """Split ``spans`` into one array per field; start/end are checked to be integers."""
    if isinstance(spans, str | bytes) or not isinstance(spans, Iterable):
        raise ValueError(f"{owner} must be a list of spans")
    items = list(spans)
    try:
        widths = set(map(len, items))
    except TypeError as exc:
        raise ValueError(f"{owner}: every span must be ({', '.join(names)})") from exc
    if widths - {len(names)}:
        raise ValueError(f"{owner}: every span must be ({', '.join(names)}), got lengths {sorted(widths)}")
    fields = list(zip(*items, strict=True)) if items else [()] * len(names)
    columns: list[npt.NDArray[Any]] = []
    for name, values in zip(names, fields, strict=True):
        column = np.fromiter(values, dtype=object, count=len(values))
        if name in ("start", "end"):
            if pd.api.types.infer_dtype(column, skipna=False) not in ("integer", "empty"):
                raise ValueError(f"{owner}: span {name} positions must be integers")
            column = column.astype(np.int64)
        columns.append(column)
    return columns


def _check_span_bounds(
    start: npt.NDArray[np.int64], end: npt.NDArray[np.int64], begin: int, length: int, owner: str
) -> None:
    bad = np.flatnonzero(start >= end)
    if len(bad):
        k = bad[0]
        raise ValueError(f"{owner}: span start must be < end, got ({start[k]}, {end[k]})")
    outside = np.flatnonzero((start < begin) | (end > begin + length))
    if len(outside):
        k = outside[0]
        raise ValueError(f"{owner}: span ({start[k]}, {end[k]}) lies outside the continuum [{begin}, {begin + length})")


def _build_continuum(length: int, coders: Sequence[Iterable[Any]], begin: int) -> _Continuum:
    length = _check_positive_int(length, "length")
    if not _is_int(begin):
        raise ValueError(f"begin must be an integer, got {begin!r}")
    begin = int(begin)
    if isinstance(coders, str | bytes) or not isinstance(coders, Iterable):
        raise ValueError("coders must be a list with one list of spans per coder")
    parts: list[list[npt.NDArray[Any]]] = []
    for r, spans in enumerate(coders):
        start, end, category = _span_columns(spans, ("start", "end", "category"), f"coder {r}")
        _check_span_bounds(start, end, begin, length, f"coder {r}")
        parts.append([np.full(len(start), r, dtype=np.int64), start, end, category])
    n_coders = len(parts)
    if parts:
        coder, start, end, category = (np.concatenate(column) for column in zip(*parts, strict=True))
    else:
        coder = start = end = np.zeros(0, dtype=np.int64)
        category = np.zeros(0, dtype=object)
    try:
        cat, categories = pd.factorize(category, use_na_sentinel=True)
    except TypeError as exc:
        raise ValueError(f"span categories must be hashable ({exc})") from exc
    if (cat < 0).any():
        raise ValueError("span category must not be None/NaN")
    order = np.lexsort((start, cat, coder))
    coder, start, end, cat = coder[order], start[order], end[order], cat.astype(np.int64)[order]
    same = (coder[1:] == coder[:-1]) & (cat[1:] == cat[:-1])
    overlapping = np.flatnonzero(same & (start[1:] < end[:-1]))
    if len(overlapping):
        k = overlapping[0] + 1
        raise ValueError(
            f"coder {coder[k]}: spans of category {categories[cat[k]]!r} overlap at position {start[k]}; "
            "merge them first"
        )
    return _Continuum(begin, length, n_coders, coder, start, end, cat, list(categories))


def _segments(
    starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64], begin: int, stop: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """One coder's tiling of [begin, stop) into its units (sorted, disjoint) and the gaps."""
    bounds = np.unique(np.concatenate(([begin, stop], starts, ends)))
    seg_begin, seg_end = bounds[:-1], bounds[1:]
    return seg_begin, seg_end, np.isin(seg_begin, starts)


def _category_disagreements(cont: _Continuum, cat: int) -> tuple[float, float]:
    """(D_o, D_e) of one category, as DKPro's KrippendorffAlphaUnitizingAgreement."""
    begin, length, n_coders = cont.begin, cont.length, cont.n_coders
    stop = begin + length
    of_cat = cont.cat == cat
    tilings = []
    for r in range(n_coders):
        own = of_cat & (cont.coder == r)
        tilings.append(_segments(cont.start[own], cont.end[own], begin, stop))

    observed = 0.0
    for r1 in range(n_coders):
        b1, e1, u1 = tilings[r1]
        for r2 in range(r1 + 1, n_coders):
            b2, e2, u2 = tilings[r2]
            # Each intersecting pair of segments is one elementary interval of the merged
            # tilings, so locating each elementary start in both tilings lists every pair.
            points = np.union1d(b1, b2)
            i = np.searchsorted(b1, points, side="right") - 1
            j = np.searchsorted(b2, points, side="right") - 1
            gb, ge, gu = b1[i], e1[i], u1[i]
            hb, he, hu = b2[j], e2[j], u2[j]
            both = gu & hu
            g_in_h = gu & ~hu & (hb <= gb) & (ge <= he)
            h_in_g = ~gu & hu & (gb <= hb) & (he <= ge)
            gl = (ge - gb).astype(np.float64)
            hl = (he - hb).astype(np.float64)
            db = (gb - hb).astype(np.float64)
            de = (ge - he).astype(np.float64)
            observed += float(
                np.sum(np.where(both, db * db + de * de, 0.0))
                + np.sum(np.where(g_in_h, gl * gl, 0.0))
                + np.sum(np.where(h_in_g, hl * hl, 0.0))
            )
    d_o = 2.0 * observed / (n_coders * (n_coders - 1) * float(length) ** 2)

    unit_len = (cont.end[of_cat] - cont.start[of_cat]).astype(np.float64)
    gap_len = np.sort(np.concatenate([(e - b)[~u] for b, e, u in tilings]).astype(np.float64))
    n_c = len(unit_len)
    suffix = np.concatenate((np.cumsum(gap_len[::-1])[::-1], [0.0]))
    first = np.searchsorted(gap_len, unit_len, side="left")
    n_long = len(gap_len) - first
    # sum over gaps h with l_h >= l_g of (l_h - l_g + 1)
    gap_term = suffix[first] - (unit_len - 1.0) * n_long
    per_unit = (n_c - 1.0) * (2.0 * unit_len**3 - 3.0 * unit_len**2 + unit_len) / 3.0 + unit_len**2 * gap_term
    rl = float(n_coders) * length
    denominator = rl * (rl - 1.0) - float(np.sum(unit_len * (unit_len - 1.0)))
    d_e = float(np.sum(per_unit)) * 2.0 / length / denominator
    return d_o, d_e


def unitized_alpha_details(
    length: int,
    coders: Sequence[Iterable[Any]],
    *,
    begin: int = 0,
    category: Any = None,
) -> UnitizedAlphaResult:
    """alpha_u with its D_o and D_e; same contract as :func:`unitized_alpha`."""
    cont = _build_continuum(length, coders, begin)
    if cont.n_coders < 2 or not cont.categories:
        return UnitizedAlphaResult(None, None, None)
    if category is None:
        parts = [_category_disagreements(cont, k) for k in range(len(cont.categories))]
        d_o = float(np.mean([p[0] for p in parts]))
        d_e = float(np.mean([p[1] for p in parts]))
    else:
        matches = [k for k, known in enumerate(cont.categories) if known == category]
        if not matches:
            return UnitizedAlphaResult(None, None, None)
        d_o, d_e = _category_disagreements(cont, matches[0])
    if d_e <= 0.0:
        return UnitizedAlphaResult(None, d_o, d_e)
    return UnitizedAlphaResult(1.0 - d_o / d_e, d_o, d_e)


def unitized_alpha(
    length: int,
    coders: Sequence[Iterable[Any]],
    *,
    begin: int = 0,
    category: Any = None,
) -> float | None:
    """Krippendorff's alpha_u over the continuum ``[begin, begin + length)`` (§2.8).

    ``coders`` holds one list per coder of ``(start, end, category)`` spans with integer
    positions and ``end`` exclusive (a coder who coded nothing is an empty list). Spans of
    one coder and one category must not overlap; different categories may.

    With ``category`` given, returns alpha_u,c for that category (the Krippendorff 1995 /
    2004 definition as DKPro Agreement implements it). With ``category=None`` returns the
    study-level value ``1 - mean_c D_o,c / mean_c D_e,c`` over the categories that occur
    (DKPro's aggregation).

    Returns ``None`` when fewer than two coders, the category (or any category) never
    occurs, or D_e = 0 (DKPro reports 0 or NaN there). Raises ``ValueError`` for a
    non-positive length, non-integer positions, start >= end, a span outside the
    continuum, or overlapping spans of one coder and one category.
    """
    return unitized_alpha_details(length, coders, begin=begin, category=category).alpha


# --------------------------------------------------------------------------------------
# NVivo-style character comparison
# --------------------------------------------------------------------------------------


def _coverage(length: int, spans: Iterable[Any], owner: str) -> npt.NDArray[np.bool_]:
    start, end = _span_columns(spans, ("start", "end"), owner)
    _check_span_bounds(start, end, 0, length, owner)
    # +1 at each start, -1 at each end: a character is coded where the running sum > 0,
    # which unions overlapping spans of the same coder for free.
    change = np.bincount(start, minlength=length + 1) - np.bincount(end, minlength=length + 1)
    return np.cumsum(change[:length]) > 0


def character_agreement(
    length: int,
    spans_a: Iterable[tuple[int, int]],
    spans_b: Iterable[tuple[int, int]],
) -> CharacterAgreement:
    """NVivo's coding comparison for one node in one source of ``length`` characters.

    ``spans_a``/``spans_b`` are the ``(start, end)`` spans (end exclusive, within
    ``[0, length)``) that coder (group) A / B coded at the node; overlapping spans of one
    coder are unioned. Returns the character counts a (both), b (A only), c (B only),
    d (neither), percent agreement (a + d) / L and Cohen's kappa on the 2 x 2 table
    (``None`` when nobody coded the node or both coded everything; NVivo shows 1 for the
    former by convention). Raises ``ValueError`` for a non-positive length, non-integer
    positions, start >= end or a span outside the source.
    """
    length = _check_positive_int(length, "length")
    coded_a = _coverage(length, spans_a, "spans_a")
    coded_b = _coverage(length, spans_b, "spans_b")
    a = int(np.count_nonzero(coded_a & coded_b))
    b = int(np.count_nonzero(coded_a)) - a
    c = int(np.count_nonzero(coded_b)) - a
    return CharacterAgreement.from_counts(a, b, c, length - a - b - c)


def pool_character_agreement(results: Iterable[CharacterAgreement]) -> CharacterAgreement:
    """Pool several sources for one node by summing a, b, c, d (§2.10, recommended).

    Raises ``ValueError`` when ``results`` is empty.
    """
    items = list(results)
    if not items:
        raise ValueError("nothing to pool")
    return CharacterAgreement.from_counts(
        sum(r.a for r in items), sum(r.b for r in items), sum(r.c for r in items), sum(r.d for r in items)
    )
