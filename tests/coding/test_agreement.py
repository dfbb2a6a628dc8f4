"""Tests for coding.agreement.

Three kinds of evidence, none of them our own output fed back to us:

* the published / DKPro-computed vectors in ``shared/data/agreement_vectors.json``;
* property tests against independent implementations (``krippendorff``, ``statsmodels``,
  ``scikit-learn``, ``nltk``) and, where no package exists in the dev environment (Gwet's
  AC1, DKPro's alpha_u), a literal per-unit transliteration of the formula / Java code;
* hand-worked examples, with the arithmetic written out next to them.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from pathlib import Path
from typing import Any

import krippendorff
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.metrics.agreement import AnnotationTask
from nltk.metrics.distance import binary_distance
from nltk.metrics.distance import masi_distance as nltk_masi_distance
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from coding import agreement as ag

VECTORS_PATH = Path(__file__).resolve().parents[3] / "shared" / "data" / "agreement_vectors.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
CASES = {case["name"]: case for case in VECTORS}

PROPERTY = settings(max_examples=50, deadline=None)
ORACLE_TOL = 1e-9

# Expected-value keys of the vector file that the module deliberately does not expose
# (they stay documented in the file; the coefficient they belong to is checked).
NOT_EXPOSED = {
    "scott_pi",  # Scott's pi is not part of the interface
    "scott_pi_characters",
    "p_e",  # chance terms of kappa-type coefficients are not returned separately
    "P_e",
    "per_category_kappa",  # per-category Fleiss kappa is not part of the interface
    "alpha_jaccard",  # Jaccard-distance alpha is not part of the interface
    "masi_distance_convention",  # prose
    "recommended_behaviour",  # prose
    "dkpro_test_asserts",  # prose; the exact DKPro values are checked instead
    "published_rounded",  # rounded versions of keys that are checked exactly
    "published_alpha_rounded",
    "kappa_nvivo_convention",  # deliberately not reproduced: we return None, not NVivo's 1
}


# --------------------------------------------------------------------------------------
# Vector file
# --------------------------------------------------------------------------------------


def test_vector_file_resolves_and_is_complete() -> None:
    assert VECTORS_PATH.is_file(), VECTORS_PATH
    assert len(CASES) == len(VECTORS) > 0, "case names must be unique"


def _expand_contingency(data: dict[str, Any]) -> list[list[Any]]:
    a: list[Any] = []
    b: list[Any] = []
    for row_category, row in zip(data["categories"], data["table"], strict=True):
        for column_category, count in zip(data["categories"], row, strict=True):
            a.extend([row_category] * count)
            b.extend([column_category] * count)
    return [a, b]


def _matrix(data: dict[str, Any]) -> list[list[Any]]:
    if "reliability_matrix" in data:
        return data["reliability_matrix"]
    return _expand_contingency(data)


def _nvivo(record: dict[str, Any]) -> ag.CharacterAgreement:
    return ag.character_agreement(record["source_length"], record["coder_A"], record["coder_B"])


def _figures(case: dict[str, Any]) -> dict[str, Any]:
    """Our value for every expected key we can compute, named as in the vector file."""
    metric, data = case["metric"], case["data"]
    out: dict[str, Any] = {}

    if metric == "nvivo_coding_comparison":
        if "sources" in data:
            rows = [_nvivo(record) for record in data["sources"]]
            kappas = [row.kappa for row in rows]
            lengths = [record["source_length"] for record in data["sources"]]
            pooled = ag.pool_character_agreement(rows)
            out["kappa_per_source"] = kappas
            out["kappa_unweighted_mean"] = float(np.mean(kappas))
            out["kappa_mean_weighted_by_source_length"] = float(np.average(kappas, weights=lengths))
            out["kappa_pooled_characters"] = pooled.kappa
            out["percent_agreement_pooled"] = pooled.percent_agreement
        elif "cases" in data:
            nobody, one_only = (_nvivo(record) for record in data["cases"])
            # No "kappa_nvivo_convention" (NVivo displays 1 for 0/0): AGREEMENT.md §3 says
            # to show "n/a" instead, i.e. the mathematical None.
            out["nobody_coded"] = {"percent_agreement": nobody.percent_agreement, "cohen_kappa_math": nobody.kappa}
            out["one_coder_only"] = {"percent_agreement": one_only.percent_agreement, "kappa": one_only.kappa}
        else:
            row = _nvivo(data)
            out.update(a=row.a, b=row.b, c=row.c, d=row.d, kappa=row.kappa)
            out["percent_agreement"] = out["published_percent_agreement"] = row.percent_agreement
            # "Digitized" alpha: characters as units, coded / not coded as the value.
            per_char = np.zeros((2, data["source_length"]))
            for coder, spans in enumerate((data["coder_A"], data["coder_B"])):
                for start, end in spans:
                    per_char[coder, start:end] = 1
            out["krippendorff_alpha_nominal_characters_as_units"] = ag.krippendorff_alpha(per_char)
        return out

    if metric == "krippendorff_alpha_u":
        args = (data["length"], data["coders"])
        overall = ag.unitized_alpha_details(*args, begin=data["begin"])
        out["alpha_u_overall_dkpro"] = ag.unitized_alpha(*args, begin=data["begin"])
        out["D_o_overall"], out["D_e_overall"] = overall.observed, overall.expected
        categories = {span[2] for coder in data["coders"] for span in coder}
        for category in categories:
            result = ag.unitized_alpha_details(*args, begin=data["begin"], category=category)
            out[f"alpha_u_{category}"] = ag.unitized_alpha(*args, begin=data["begin"], category=category)
            out[f"D_o_{category}"], out[f"D_e_{category}"] = result.observed, result.expected
        return out

    matrix = _matrix(data)
    if metric == "krippendorff_alpha_masi":
        details = ag.masi_alpha_details(matrix)
        out["alpha_masi"] = ag.masi_alpha(matrix)
        out["D_o"], out["D_e"] = details.observed, details.expected
        return out

    if "codes" in data:  # per-code 0/1 alpha on set-valued cells
        codes = data["codes"]
        tensor = np.array(
            [[[np.nan if cell is None else float(code in cell) for code in codes] for cell in row] for row in matrix]
        )
        batch = ag.krippendorff_alpha_binary_many(tensor)
        for k, code in enumerate(codes):
            single = ag.krippendorff_alpha(tensor[:, :, k])
            assert batch[k] == pytest.approx(single, abs=1e-12)
            out[f"alpha_{code}"] = single
        return out

    level = case["level"] if case["level"] in ag.LEVELS else "nominal"
    # Evaluated lazily: e.g. Fleiss' kappa rightly refuses the incomplete designs of
    # cases that do not ask for it.
    percent = lambda: ag.percent_agreement(matrix)  # noqa: E731
    cohen = lambda: ag.cohen_kappa(matrix[0], matrix[1])  # noqa: E731
    lazy: dict[str, Any] = {
        "alpha": lambda: ag.krippendorff_alpha(matrix, level),
        "krippendorff_alpha_nominal": lambda: ag.krippendorff_alpha(matrix, "nominal"),
        "D_o": lambda: ag.krippendorff_alpha_details(matrix, level).observed,
        "D_e": lambda: ag.krippendorff_alpha_details(matrix, level).expected,
        "percent_agreement": percent,
        "p_o": percent,
        "p_a": percent,
        "P_bar": percent,
        "cohen_kappa": cohen,
        "cohen_kappa_first_two_coders": cohen,
        "fleiss_kappa": lambda: ag.fleiss_kappa(matrix),
        "gwet_ac1": lambda: ag.gwet_ac1(matrix),
    }
    if metric == "cohen_kappa":
        lazy["kappa"] = cohen
    elif metric == "fleiss_kappa":
        lazy["kappa"] = lambda: ag.fleiss_kappa(matrix)
    elif metric == "brennan_prediger_kappa":
        by_codes = ag.brennan_prediger_kappa(matrix, data["categories"])
        assert ag.brennan_prediger_kappa(matrix, data["q_codebook_size"]) == by_codes
        lazy["kappa_bp"] = lambda: by_codes
    elif metric == "gwet_ac1":
        lazy["ac1"] = lambda: ag.gwet_ac1(matrix, categories=data["categories"])
    return {key: compute() for key, compute in lazy.items() if key in case["expected"]}


def _assert_close(actual: Any, expected: Any, tolerance: float | None, label: str) -> None:
    if isinstance(expected, dict):
        unchecked = set(expected) - set(actual) - NOT_EXPOSED
        assert not unchecked, f"{label}: expected values with no check: {sorted(unchecked)}"
        for key in set(expected) & set(actual):
            _assert_close(actual[key], expected[key], tolerance, f"{label}.{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), label
        for k, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _assert_close(a, e, tolerance, f"{label}[{k}]")
    elif expected is None:
        assert actual is None, f"{label}: expected 'not computable' (None), got {actual!r}"
    elif isinstance(expected, int) and not isinstance(expected, bool) and isinstance(actual, int):
        assert actual == expected, label
    else:
        assert actual is not None, f"{label}: expected {expected}, got None"
        # The file stores non-integer values rounded to 6 decimals, so a case tolerance
        # below 1e-6 only makes sense for exact values such as 0.0 and 1.0.
        tol = 1e-12 if tolerance is None else tolerance
        if not float(expected).is_integer():
            tol = max(tol, 1e-6)
        assert abs(actual - expected) <= tol, f"{label}: expected {expected}, got {actual} (tol {tol})"


@pytest.mark.parametrize("name", sorted(CASES))
def test_vector(name: str) -> None:
    case = CASES[name]
    expected = case["expected"]
    figures = _figures(case)
    unchecked = set(expected) - set(figures) - NOT_EXPOSED
    assert not unchecked, f"expected values with no check: {sorted(unchecked)}"
    checked = set(expected) & set(figures)
    assert checked, "nothing was compared"
    for key in sorted(checked):
        _assert_close(figures[key], expected[key], case["tolerance"], key)


# --------------------------------------------------------------------------------------
# Property tests against independent implementations
# --------------------------------------------------------------------------------------


@st.composite
def reliability_matrices(
    draw: st.DrawFn,
    values: st.SearchStrategy[Any],
    *,
    min_coders: int = 2,
    max_coders: int = 5,
    max_units: int = 20,
    missing: bool = True,
) -> list[list[Any]]:
    n_coders = draw(st.integers(min_coders, max_coders))
    n_units = draw(st.integers(1, max_units))
    # About one cell in five is missing.
    cell = st.tuples(st.integers(0, 9), values).map(lambda t: None if missing and t[0] < 2 else t[1])
    return [draw(st.lists(cell, min_size=n_units, max_size=n_units)) for _ in range(n_coders)]


def _nan_array(matrix: list[list[Any]]) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)


def _package_alpha(matrix: list[list[Any]], level: str) -> float | None:
    """krippendorff.alpha, with its refusals and NaN both read as 'not computable'."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            value = float(krippendorff.alpha(reliability_data=_nan_array(matrix), level_of_measurement=level))
    except (ValueError, ZeroDivisionError):
        return None
    return None if math.isnan(value) else value


def _assert_same_or_both_none(ours: float | None, theirs: float | None) -> None:
    if theirs is None:
        assert ours is None, f"oracle says not computable, we returned {ours}"
    else:
        assert ours is not None, f"oracle gives {theirs}, we returned None"
        assert abs(ours - theirs) <= ORACLE_TOL, (ours, theirs)


@PROPERTY
@given(
    matrix=reliability_matrices(st.integers(0, 6)),
    level=st.sampled_from(ag.LEVELS),
)
def test_alpha_matches_krippendorff_package(matrix: list[list[Any]], level: str) -> None:
    ours = ag.krippendorff_alpha(matrix, level)
    _assert_same_or_both_none(ours, _package_alpha(matrix, level))
    # The NaN-array input path gives the same figure as the None-list path.
    assert ag.krippendorff_alpha(_nan_array(matrix), level) == ours


@PROPERTY
@given(matrix=reliability_matrices(st.floats(0, 50, allow_nan=False).map(lambda v: round(v, 2)), max_units=15))
def test_interval_and_ratio_alpha_on_continuous_values(matrix: list[list[Any]]) -> None:
    for level in ("interval", "ratio"):
        _assert_same_or_both_none(ag.krippendorff_alpha(matrix, level), _package_alpha(matrix, level))


@PROPERTY
@given(matrix=reliability_matrices(st.sampled_from(["pay", "skills", "housing", "none"])))
def test_nominal_alpha_matches_nltk(matrix: list[list[Any]]) -> None:
    ours = ag.krippendorff_alpha(matrix)
    # nltk returns 1 when only one label occurs; that case is 'not computable' for us and
    # is covered against the krippendorff package above.
    if ours is None:
        return
    triples = [(c, u, v) for c, row in enumerate(matrix) for u, v in enumerate(row) if v is not None]
    theirs = AnnotationTask(data=triples, distance=binary_distance).alpha()
    assert abs(ours - theirs) <= ORACLE_TOL


def _guarded_masi(a: frozenset, b: frozenset) -> float:
    # nltk divides by |A u B| and raises on (empty, empty); AGREEMENT.md §2.7 sets it to 0.
    return 0.0 if not a and not b else nltk_masi_distance(a, b)


code_sets = st.frozensets(st.sampled_from("ABCD"), max_size=4)


@PROPERTY
@given(matrix=reliability_matrices(code_sets, max_units=15))
def test_masi_alpha_matches_nltk(matrix: list[list[Any]]) -> None:
    as_lists = [[None if cell is None else sorted(cell) for cell in row] for row in matrix]
    ours = ag.masi_alpha(as_lists)
    if ours is None:
        # Not computable means every pairable cell holds the same set.
        columns = [[row[u] for row in matrix if row[u] is not None] for u in range(len(matrix[0]))]
        assert len({cell for column in columns if len(column) >= 2 for cell in column}) < 2
        return
    triples = [(c, u, cell) for c, row in enumerate(matrix) for u, cell in enumerate(row) if cell is not None]
    theirs = AnnotationTask(data=triples, distance=_guarded_masi).alpha()
    assert abs(ours - theirs) <= ORACLE_TOL


@PROPERTY
@given(matrix=reliability_matrices(code_sets, max_units=15), data=st.data())
def test_masi_alpha_from_codes_matches_nltk(matrix: list[list[Any]], data: st.DataObject) -> None:
    # Encode the cells as the agreement page does (indices into a list of sets), listing
    # some sets twice and adding unused ones, in an order of hypothesis' choosing.
    distinct = sorted({cell for row in matrix for cell in row if cell is not None}, key=sorted)
    sets = data.draw(st.permutations(distinct + distinct[:1] + [frozenset("XY")]))
    codes = [[-1 if cell is None else sets.index(cell) for cell in row] for row in matrix]
    ours = ag.masi_alpha_from_codes(np.array(codes), [sorted(s) for s in sets])
    from_cells = ag.masi_alpha(matrix)
    assert (ours.alpha is None) == (from_cells is None)
    if ours.alpha is None:
        return
    assert abs(ours.alpha - from_cells) <= 1e-12
    triples = [(c, u, cell) for c, row in enumerate(matrix) for u, cell in enumerate(row) if cell is not None]
    theirs = AnnotationTask(data=triples, distance=_guarded_masi).alpha()
    assert abs(ours.alpha - theirs) <= ORACLE_TOL


@pytest.mark.parametrize(
    ("codes", "sets", "message"),
    [
        ([0, 1], [{"A"}, {"B"}], "must be 2-D"),
        ([[0, 2], [1, 0]], [{"A"}, {"B"}], r"must lie in \[-1, 2\)"),
        ([[0, -2], [1, 0]], [{"A"}, {"B"}], r"must lie in \[-1, 2\)"),
        ([[0.0, 1.0], [1.0, 0.0]], [{"A"}, {"B"}], "must be integers"),
        ([[0, 1], [1, 0]], [{"A"}, "B"], r"sets\[1\] must be a set/list of codes"),
    ],
)
def test_masi_alpha_from_codes_refuses_malformed_input(codes, sets, message) -> None:
    with pytest.raises(ValueError, match=message):
        ag.masi_alpha_from_codes(np.array(codes), sets)


@PROPERTY
@given(a=code_sets, b=code_sets)
def test_masi_distance_matches_nltk(a: frozenset, b: frozenset) -> None:
    assert abs(ag.masi_distance(a, b) - _guarded_masi(a, b)) <= 1e-12


@PROPERTY
@given(matrix=reliability_matrices(st.integers(0, 3), max_coders=6, missing=False))
def test_fleiss_matches_statsmodels(matrix: list[list[Any]]) -> None:
    table, _ = aggregate_raters(np.array(matrix).T, n_cat=4)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        theirs = float(sm_fleiss_kappa(table, method="fleiss"))
    _assert_same_or_both_none(ag.fleiss_kappa(matrix), None if math.isnan(theirs) else theirs)
    # Rater identity is irrelevant: adding a coder who rated nothing changes nothing.
    assert ag.fleiss_kappa([*matrix, [None] * len(matrix[0])]) == ag.fleiss_kappa(matrix)


@PROPERTY
@given(data=st.data(), q=st.integers(2, 5))
def test_brennan_prediger_matches_statsmodels_randolph(data: st.DataObject, q: int) -> None:
    matrix = data.draw(reliability_matrices(st.integers(0, q - 1), max_coders=6, missing=False))
    table, _ = aggregate_raters(np.array(matrix).T, n_cat=q)
    theirs = float(sm_fleiss_kappa(table, method="randolph"))
    assert abs(ag.brennan_prediger_kappa(matrix, q) - theirs) <= ORACLE_TOL
    assert abs(ag.brennan_prediger_kappa(matrix, list(range(q))) - theirs) <= ORACLE_TOL


labels_with_missing = st.tuples(st.integers(0, 9), st.sampled_from(["a", "b", "c"])).map(
    lambda t: None if t[0] < 2 else t[1]
)


@PROPERTY
@given(pairs=st.lists(st.tuples(labels_with_missing, labels_with_missing), min_size=1, max_size=30))
def test_cohen_matches_sklearn(pairs: list[tuple[Any, Any]]) -> None:
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    ours = ag.cohen_kappa(a, b)
    kept = [(x, y) for x, y in pairs if x is not None and y is not None]
    if not kept:
        assert ours is None
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = float(cohen_kappa_score([x for x, _ in kept], [y for _, y in kept]))
    _assert_same_or_both_none(ours, None if math.isnan(theirs) else theirs)


@PROPERTY
@given(matrix=reliability_matrices(st.sampled_from("xyz"), missing=False))
def test_percent_agreement_matches_nltk_avg_ao(matrix: list[list[Any]]) -> None:
    triples = [(c, u, v) for c, row in enumerate(matrix) for u, v in enumerate(row)]
    theirs = AnnotationTask(data=triples, distance=binary_distance).avg_Ao()
    assert abs(ag.percent_agreement(matrix) - theirs) <= ORACLE_TOL


def _gwet_ac1_by_the_formula(matrix: list[list[Any]], categories: list[Any]) -> float | None:
    """Gwet (2008/2014) AC1 written out unit by unit, as in AGREEMENT.md §2.5."""
    units = [[row[u] for row in matrix if row[u] is not None] for u in range(len(matrix[0]))]
    rated = [unit for unit in units if unit]
    pairable = [unit for unit in units if len(unit) >= 2]
    q = len(categories)
    if not pairable or q < 2:
        return None
    p_a = sum(
        sum(unit.count(k) * (unit.count(k) - 1) for k in categories) / (len(unit) * (len(unit) - 1))
        for unit in pairable
    ) / len(pairable)
    pi = {k: sum(unit.count(k) / len(unit) for unit in rated) / len(rated) for k in categories}
    p_e = sum(p * (1 - p) for p in pi.values()) / (q - 1)
    return (p_a - p_e) / (1 - p_e)


@PROPERTY
@given(matrix=reliability_matrices(st.sampled_from("xyz")))
def test_gwet_ac1_matches_formula(matrix: list[list[Any]]) -> None:
    observed = sorted({v for row in matrix for v in row if v is not None})
    _assert_same_or_both_none(ag.gwet_ac1(matrix), _gwet_ac1_by_the_formula(matrix, observed))
    codebook = ["x", "y", "z", "w"]
    _assert_same_or_both_none(ag.gwet_ac1(matrix, categories=codebook), _gwet_ac1_by_the_formula(matrix, codebook))


@st.composite
def binary_tensors(draw: st.DrawFn) -> np.ndarray:
    shape = (draw(st.integers(2, 4)), draw(st.integers(1, 25)), draw(st.integers(1, 4)))
    cells = draw(
        st.lists(st.sampled_from([0.0, 1.0, 1.0, 0.0, np.nan]), min_size=math.prod(shape), max_size=math.prod(shape))
    )
    return np.array(cells).reshape(shape)


@PROPERTY
@given(tensor=binary_tensors())
def test_binary_many_matches_krippendorff_package(tensor: np.ndarray) -> None:
    batch = ag.krippendorff_alpha_binary_many(tensor)
    assert len(batch) == tensor.shape[2]
    for k, value in enumerate(batch):
        matrix = [[None if math.isnan(v) else v for v in row] for row in tensor[:, :, k].tolist()]
        _assert_same_or_both_none(value, _package_alpha(matrix, "nominal"))
    assert ag.krippendorff_alpha_binary_many(tensor == 1) == ag.krippendorff_alpha_binary_many(
        np.nan_to_num(tensor, nan=0.0)
    )


# --- alpha_u: literal transliteration of DKPro's KrippendorffAlphaUnitizingAgreement ---


def _dkpro_units(coders: list[list[tuple[int, int, str]]], rater: int, category: str) -> list[tuple[int, int]]:
    return sorted((s, e - s) for s, e, c in coders[rater] if c == category)


def _dkpro_distance(o1: int, l1: int, c1: Any, o2: int, l2: int, c2: Any) -> float:
    begin_diff, length_diff = o1 - o2, l1 - l2
    if c1 is not None and c2 is not None and -l1 < begin_diff < l2:
        return begin_diff**2 + (begin_diff + length_diff) ** 2
    if c1 is not None and c2 is None and -length_diff >= begin_diff >= 0:
        return l1 * l1
    if c1 is None and c2 is not None and -length_diff <= begin_diff <= 0:
        return l2 * l2
    return 0.0


def _dkpro_observed(begin: int, length: int, coders: list, category: str) -> float:
    raters = len(coders)
    result = 0.0
    for r1 in range(raters):
        for r2 in range(r1 + 1, raters):
            units1 = iter(_dkpro_units(coders, r1, category))
            units2 = iter(_dkpro_units(coders, r2, category))
            next1, next2 = next(units1, None), next(units2, None)
            offset1 = offset2 = pos = begin
            length1 = length2 = 0
            cat1 = cat2 = None
            while pos < begin + length and (next1 is not None or next2 is not None):
                if pos == offset1 + length1:
                    if next1 is not None and pos == next1[0]:
                        length1, cat1 = next1[1], category
                        next1 = next(units1, None)
                    else:
                        length1 = (next1[0] if next1 is not None else begin + length) - pos
                        cat1 = None
                    offset1 = pos
                if pos == offset2 + length2:
                    if next2 is not None and pos == next2[0]:
                        length2, cat2 = next2[1], category
                        next2 = next(units2, None)
                    else:
                        length2 = (next2[0] if next2 is not None else begin + length) - pos
                        cat2 = None
                    offset2 = pos
                result += _dkpro_distance(offset1, length1, cat1, offset2, length2, cat2)
                pos = min(offset1 + length1, offset2 + length2)
    return result * 2.0 / (raters * (raters - 1) * length * length)


def _dkpro_expected(begin: int, length: int, coders: list, category: str) -> float:
    raters = len(coders)
    all_units = [u for r in range(raters) for u in _dkpro_units(coders, r, category)]
    n_c = len(all_units)
    squared_lengths = sum(ln * (ln - 1) for _, ln in all_units)
    gaps = []
    for r in range(raters):
        units = iter(_dkpro_units(coders, r, category))
        next_unit = next(units, None)
        offset, unit_length, pos = begin, 0, begin
        while pos < begin + length:
            if pos == offset + unit_length:
                if next_unit is not None and pos == next_unit[0]:
                    unit_length = next_unit[1]
                    next_unit = next(units, None)
                else:
                    unit_length = (next_unit[0] if next_unit is not None else begin + length) - pos
                    gaps.append(unit_length)
                offset = pos
            pos = offset + unit_length
    gaps.sort(reverse=True)
    result = 0.0
    for _, ln in all_units:
        sum1 = (n_c - 1.0) * (2.0 * ln**3 - 3.0 * ln**2 + ln) / 3
        sum2 = 0.0
        for gap in gaps:
            if gap < ln:
                break
            sum2 += gap - ln + 1.0
        result += sum1 + sum2 * ln * ln
    return result * (2 / length) / (raters * length * (raters * length - 1) - squared_lengths)


@st.composite
def unitizations(draw: st.DrawFn) -> tuple[int, int, list[list[tuple[int, int, str]]]]:
    length = draw(st.integers(1, 40))
    begin = draw(st.integers(0, 5))
    coders = []
    for _ in range(draw(st.integers(2, 3))):
        spans = []
        for category in "xy":
            cuts = sorted({0, length, *draw(st.lists(st.integers(0, length), max_size=6))})
            for s, e in itertools.pairwise(cuts):
                if draw(st.booleans()):
                    spans.append((begin + s, begin + e, category))
        coders.append(spans)
    return begin, length, coders


@settings(max_examples=60, deadline=None)
@given(study=unitizations())
def test_unitized_alpha_matches_dkpro_transliteration(study: tuple[int, int, list]) -> None:
    begin, length, coders = study
    categories = sorted({c for spans in coders for _, _, c in spans})
    parts = []
    for category in categories:
        d_o = _dkpro_observed(begin, length, coders, category)
        d_e = _dkpro_expected(begin, length, coders, category)
        parts.append((d_o, d_e))
        ours = ag.unitized_alpha_details(length, coders, begin=begin, category=category)
        assert ours.observed == pytest.approx(d_o, abs=1e-12)
        assert ours.expected == pytest.approx(d_e, rel=1e-12, abs=1e-15)
        if d_e == 0:
            assert ours.alpha is None
        else:
            assert abs(ours.alpha - (1 - d_o / d_e)) <= ORACLE_TOL
    overall = ag.unitized_alpha(length, coders, begin=begin)
    if not categories or np.mean([p[1] for p in parts]) == 0:
        assert overall is None
    else:
        dkpro = 1 - np.mean([p[0] for p in parts]) / np.mean([p[1] for p in parts])
        assert abs(overall - dkpro) <= ORACLE_TOL


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(1, 60),
    data=st.data(),
)
def test_character_agreement_matches_sklearn_on_character_vectors(length: int, data: st.DataObject) -> None:
    span = st.tuples(st.integers(0, length - 1), st.integers(1, length)).filter(lambda t: t[0] < t[1])
    spans_a = data.draw(st.lists(span, max_size=4))
    spans_b = data.draw(st.lists(span, max_size=4))
    chars_a = [any(s <= i < e for s, e in spans_a) for i in range(length)]
    chars_b = [any(s <= i < e for s, e in spans_b) for i in range(length)]
    result = ag.character_agreement(length, spans_a, spans_b)
    assert result.a == sum(x and y for x, y in zip(chars_a, chars_b, strict=True))
    assert result.b == sum(x and not y for x, y in zip(chars_a, chars_b, strict=True))
    assert result.c == sum(y and not x for x, y in zip(chars_a, chars_b, strict=True))
    assert result.length == length
    assert result.percent_agreement == pytest.approx(np.mean(np.equal(chars_a, chars_b)), abs=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = float(cohen_kappa_score(chars_a, chars_b, labels=[False, True]))
    _assert_same_or_both_none(result.kappa, None if math.isnan(theirs) else theirs)


# --------------------------------------------------------------------------------------
# Edge cases and hand-worked examples
# --------------------------------------------------------------------------------------

KRIPPENDORFF_2011 = CASES["krippendorff2011_4coders_12units_nominal"]["data"]["reliability_matrix"]


def test_percent_agreement_two_definitions_from_agreement_md() -> None:
    # AGREEMENT.md §2.1: on Krippendorff's 2011 data definition (a) = 1 - D_o = 0.8 and
    # definition (b) (the one percent_agreement implements) = 0.818182.
    assert ag.percent_agreement(KRIPPENDORFF_2011) == pytest.approx(0.818182, abs=1e-6)
    assert 1 - ag.krippendorff_alpha_details(KRIPPENDORFF_2011).observed == pytest.approx(0.8, abs=1e-12)
    assert ag.krippendorff_alpha_details(KRIPPENDORFF_2011).n_pairable_values == 40
    assert ag.krippendorff_alpha_details(KRIPPENDORFF_2011).n_pairable_units == 11


def test_no_variation_is_none_everywhere() -> None:
    same = [["A", "A", "A"], ["A", "A", None], ["A", None, "A"]]
    assert ag.krippendorff_alpha(same) is None
    assert ag.krippendorff_alpha_details(same).observed == 0.0
    assert ag.krippendorff_alpha_details(same).expected is None
    numeric = [[3, 3, 3], [3, None, 3]]
    for level in ag.LEVELS:
        assert ag.krippendorff_alpha(numeric, level) is None
    assert ag.cohen_kappa(same[0], same[0]) is None
    assert ag.fleiss_kappa([["A", "A"], ["A", "A"]]) is None
    assert ag.gwet_ac1(same) is None
    assert ag.brennan_prediger_kappa(same, 1) is None
    assert ag.masi_alpha([[["a"], []], [["a"], []]]) is not None  # two distinct sets: computable
    assert ag.masi_alpha([[["a"], ["a"]], [["a"], None]]) is None
    assert ag.krippendorff_alpha_binary_many(np.ones((2, 5, 1))) == [None]
    # Percent agreement is still defined: everyone agrees.
    assert ag.percent_agreement(same) == 1.0


def test_variation_only_outside_pairable_units_is_none() -> None:
    # "B" occurs only in a unit with one value, so the pairable values do not vary.
    assert ag.krippendorff_alpha([["A", "A", "B"], ["A", "A", None]]) is None


def test_nothing_pairable_is_none() -> None:
    matrix = [["A", None, None], [None, "B", None]]
    assert ag.krippendorff_alpha(matrix) is None
    assert ag.percent_agreement(matrix) is None
    assert ag.cohen_kappa(matrix[0], matrix[1]) is None
    assert ag.gwet_ac1(matrix) is None
    assert ag.brennan_prediger_kappa(matrix, 3) is None
    assert ag.fleiss_kappa([["A", "B"]]) is None  # one rating per unit
    assert ag.krippendorff_alpha([["A", "B"]]) is None  # a single coder
    assert ag.krippendorff_alpha([]) is None
    assert ag.krippendorff_alpha([[], []]) is None
    assert ag.masi_alpha([[None, ["a"]], [["b"], None]]) is None
    assert ag.unitized_alpha(10, [[(0, 5, "x")]]) is None  # a single coder
    assert ag.unitized_alpha(10, [[], []]) is None  # nobody coded anything
    assert ag.unitized_alpha(10, [[(0, 5, "x")], []], category="other") is None


def test_single_unit_total_disagreement_is_zero() -> None:
    assert ag.krippendorff_alpha([["A"], ["B"]]) == 0.0
    assert ag.cohen_kappa(["A"], ["B"]) == 0.0
    assert ag.masi_alpha([[["l1"]], [["l1", "l2"]]]) == 0.0
    assert ag.krippendorff_alpha([[1], [5]], "interval") == 0.0
    assert ag.krippendorff_alpha_binary_many(np.array([[[1.0]], [[0.0]]])) == [0.0]


def test_perfect_agreement_is_one() -> None:
    matrix = [[1, 2, 1, None], [1, 2, 1, 2], [None, 2, 1, 2]]
    for level in ag.LEVELS:
        assert ag.krippendorff_alpha(matrix, level) == 1.0
    assert ag.cohen_kappa(matrix[0][:3], matrix[1][:3]) == 1.0


def test_nominal_labels_may_be_anything_hashable_including_the_string_nan() -> None:
    # AGREEMENT.md §4: the krippendorff package turns np.nan into the string "nan" for
    # string data, so a real label "nan" vanishes; here it stays a label.
    words = [["nan", "x", "nan", "x"], ["nan", "x", "x", "x"]]
    numbers = [[0, 1, 0, 1], [0, 1, 1, 1]]
    assert ag.krippendorff_alpha(words) == ag.krippendorff_alpha(numbers)
    assert ag.krippendorff_alpha(words) is not None


def test_input_containers_are_equivalent() -> None:
    as_array = _nan_array(KRIPPENDORFF_2011)
    expected = ag.krippendorff_alpha(KRIPPENDORFF_2011)
    assert ag.krippendorff_alpha(as_array) == expected
    assert ag.krippendorff_alpha(pd.DataFrame(as_array)) == expected
    assert ag.krippendorff_alpha(np.array(KRIPPENDORFF_2011, dtype=object)) == expected
    assert ag.krippendorff_alpha([tuple(row) for row in KRIPPENDORFF_2011]) == expected


def test_ordinal_ignores_unused_codebook_values() -> None:
    # Shifting the rank numbers apart (codes 1..5 -> 10, 20, 40, 70, 110) keeps the order.
    spread = {1: 10, 2: 20, 3: 40, 4: 70, 5: 110, None: None}
    shifted = [[spread[v] for v in row] for row in KRIPPENDORFF_2011]
    assert ag.krippendorff_alpha(shifted, "ordinal") == pytest.approx(
        ag.krippendorff_alpha(KRIPPENDORFF_2011, "ordinal"), abs=1e-12
    )


def test_brennan_prediger_uses_the_codebook_size_not_the_observed_categories() -> None:
    matrix = [["a", "a", "b", "a"], ["a", "b", "b", "a"]]  # p_o = 3/4, two codes used
    assert ag.brennan_prediger_kappa(matrix, 2) == pytest.approx((0.75 - 1 / 2) / (1 - 1 / 2))
    assert ag.brennan_prediger_kappa(matrix, ["a", "b", "c", "d"]) == pytest.approx((0.75 - 1 / 4) / (1 - 1 / 4))


def test_character_agreement_hand_worked() -> None:
    # L = 20. A codes [2, 8) and [5, 10) -> union [2, 10); B codes [8, 15).
    # both: 8, 9 -> a = 2; A only: 2..7 -> b = 6; B only: 10..14 -> c = 5; d = 20 - 13 = 7.
    # percent = (2 + 7) / 20 = 0.45
    # EF1 = (a+b)(a+c)/L = 8 * 7 / 20 = 2.8; EF2 = (c+d)(b+d)/L = 12 * 13 / 20 = 7.8
    # kappa = (9 - 10.6) / (20 - 10.6) = -1.6 / 9.4 = -8/47
    result = ag.character_agreement(20, [(2, 8), (5, 10)], [(8, 15)])
    assert (result.a, result.b, result.c, result.d) == (2, 6, 5, 7)
    assert result.percent_agreement == pytest.approx(0.45, abs=1e-12)
    assert result.kappa == pytest.approx(-8 / 47, abs=1e-12)
    # Both coded everything: 0/0 like "nobody coded".
    assert ag.character_agreement(5, [(0, 5)], [(0, 2), (2, 5)]).kappa is None


def test_character_agreement_is_frozen() -> None:
    result = ag.character_agreement(10, [(0, 5)], [(0, 5)])
    with pytest.raises(AttributeError):
        result.a = 3  # type: ignore[misc]


def test_unitized_alpha_hand_worked() -> None:
    # L = 4, two coders, one category. Coder 1: unit [0, 2); coder 2: unit [1, 3).
    # Segments: coder 1 U[0,2) G[2,4); coder 2 G[0,1) U[1,3) G[3,4).
    # Intersecting pairs: U/G[0,1) (unit not inside gap) 0; U/U (0-1)^2 + (2-3)^2 = 2;
    # G[2,4)/U[1,3) (unit not inside gap) 0; G/G 0.  D_o = 2 * 2 / (2 * 1 * 4^2) = 1/8.
    # D_e: units l = 2, 2 (N_c = 2): each (N_c-1)(2*8 - 3*4 + 2)/3 = 2; gaps 2, 1, 1:
    # each unit adds l^2 * (2 - 2 + 1) = 4. Sum 12, * 2/L = 6, / (2*4*7 - (2 + 2)) = 6/52.
    # alpha = 1 - (1/8) / (6/52) = 1 - 52/48 = -1/12.
    result = ag.unitized_alpha_details(4, [[(0, 2, "c")], [(1, 3, "c")]])
    assert result.observed == pytest.approx(1 / 8, abs=1e-15)
    assert result.expected == pytest.approx(6 / 52, abs=1e-15)
    assert result.alpha == pytest.approx(-1 / 12, abs=1e-12)
    # begin shifts the continuum without changing anything else.
    assert ag.unitized_alpha(4, [[(10, 12, "c")], [(11, 13, "c")]], begin=10) == pytest.approx(-1 / 12, abs=1e-12)
    # Identical unitizations: 1.
    assert ag.unitized_alpha(4, [[(0, 2, "c")], [(0, 2, "c")]], category="c") == 1.0


def test_unitized_alpha_everyone_codes_a_single_character_continuum_is_none() -> None:
    # L = 1, both code it: D_o = 0 and D_e = 0 (DKPro returns 0 here; we say not computable).
    assert ag.unitized_alpha(1, [[(0, 1, "c")], [(0, 1, "c")]]) is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ag.krippendorff_alpha([[1, 2, 3], [1, 2]]), "ragged"),
        (lambda: ag.krippendorff_alpha([[1, 2], [1, 2]], "nominals"), "unknown level"),
        (lambda: ag.krippendorff_alpha([1, 2, 3]), "not a sequence"),
        (lambda: ag.krippendorff_alpha(np.zeros(3)), "2-D"),
        (lambda: ag.krippendorff_alpha(np.zeros((2, 2, 2))), "2-D"),
        (lambda: ag.krippendorff_alpha("ab"), "matrix"),
        (lambda: ag.krippendorff_alpha([["low", "high"], ["low", "low"]], "interval"), "numeric"),
        (lambda: ag.krippendorff_alpha([[1.0, np.inf], [1.0, 2.0]], "interval"), "finite"),
        (lambda: ag.krippendorff_alpha([[["a"], ["b"]], [["a"], ["b"]]]), "scalar"),
        (lambda: ag.percent_agreement([["a"], ["a", "b"]]), "ragged"),
        (lambda: ag.cohen_kappa([1, 2], [1]), "same length"),
        (lambda: ag.cohen_kappa("ab", "ab"), "string"),
        (lambda: ag.cohen_kappa([[1, 2]], [[1, 2]]), "one-dimensional"),
        (lambda: ag.fleiss_kappa([["a", "b", "a"], ["a", None, "b"]]), "same number of ratings"),
        (lambda: ag.brennan_prediger_kappa([["a", "b"], ["a", "c"]], 2), "observed"),
        (lambda: ag.brennan_prediger_kappa([["a", "b"], ["a", "c"]], ["a", "b"]), "not in the codebook"),
        (lambda: ag.brennan_prediger_kappa([["a"], ["a"]], 0), "at least one"),
        (lambda: ag.gwet_ac1([["a", "b"], ["a", "c"]], categories=["a"]), "not in the codebook"),
        (lambda: ag.masi_alpha([["a", ["b"]], [["a"], ["b"]]]), "set/list"),
        (lambda: ag.masi_alpha([[["a"], ["b"]], [["a"]]]), "ragged"),
        (lambda: ag.masi_alpha(np.zeros((2, 2))), "set"),
        (lambda: ag.krippendorff_alpha_binary_many(np.zeros((2, 3))), "3-D"),
        (lambda: ag.krippendorff_alpha_binary_many(np.full((2, 3, 1), 2.0)), "0, 1 or NaN"),
        (lambda: ag.unitized_alpha(10, [[(0, 11, "x")], []]), "outside"),
        (lambda: ag.unitized_alpha(10, [[(-1, 3, "x")], []]), "outside"),
        (lambda: ag.unitized_alpha(10, [[(5, 16, "x")], []], begin=5), "outside"),
        (lambda: ag.unitized_alpha(10, [[(4, 4, "x")], []]), "start must be < end"),
        (lambda: ag.unitized_alpha(10, [[(6, 4, "x")], []]), "start must be < end"),
        (lambda: ag.unitized_alpha(10, [[(0, 4, "x"), (3, 6, "x")], []]), "overlap"),
        (lambda: ag.unitized_alpha(10, [[(0, 4.5, "x")], []]), "integers"),
        (lambda: ag.unitized_alpha(10, [[(0, 4)], []]), "span"),
        (lambda: ag.unitized_alpha(0, [[], []]), "positive integer"),
        (lambda: ag.unitized_alpha(10, [[(0, 4, None)], []]), "None"),
        (lambda: ag.character_agreement(10, [(0, 11)], []), "outside"),
        (lambda: ag.character_agreement(10, [(3, 3)], []), "start must be < end"),
        (lambda: ag.character_agreement(0, [], []), "positive integer"),
        (lambda: ag.character_agreement(10, [(0.0, 2.0)], []), "integers"),
        (lambda: ag.pool_character_agreement([]), "nothing to pool"),
        (lambda: ag.CharacterAgreement.from_counts(1, -1, 0, 0), "non-negative"),
    ],
)
def test_malformed_input_raises_value_error(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_overlapping_spans_of_different_categories_are_allowed() -> None:
    coders = [[(0, 6, "x"), (3, 9, "y")], [(0, 6, "x"), (3, 9, "y")]]
    assert ag.unitized_alpha(10, coders) == 1.0


def test_character_agreement_unions_overlapping_spans() -> None:
    assert ag.character_agreement(10, [(0, 4), (2, 6), (6, 7)], [(0, 7)]) == ag.character_agreement(
        10, [(0, 7)], [(0, 7)]
    )
