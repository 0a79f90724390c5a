"""docs/coverage.md is the generated table, and the generator reads the registry right."""

from __future__ import annotations

from pathlib import Path

import pytest

import diffkit.numpy as dnp
from diffkit import coverage as C
from diffkit.core.primitive import Primitive
from diffkit.core.registry import Unsupported
from diffkit.primitives import linalg as PL

DOC = Path(__file__).resolve().parents[1] / "docs" / "coverage.md"


def _words(text: str) -> list[str]:
    return text.split()


# issue 13's names (apply_along_axis was asked for only if it needs no Python loop per
# element; it is left out)
ISSUE_13 = [f"scipy.special.{n}" for n in _words(
    "gamma rgamma gammasgn gammainc gammaincc beta betaln betainc multigammaln polygamma "
    "erfinv erfcinv ndtr ndtri log_ndtr j0 j1 jn y0 y1 yn i0 i0e i1 i1e iv ive k0 k1 kv "
    "xlog1py entr softmax log_softmax logsumexp")]
ISSUE_13 += [f"scipy.stats.{n}.{m}" for n, m in (
    ("norm", "logpdf"), ("t", "cdf"), ("cauchy", "sf"), ("laplace", "logpdf"),
    ("logistic", "cdf"), ("expon", "logpdf"), ("gamma", "logpdf"), ("beta", "logpdf"),
    ("chi2", "cdf"), ("uniform", "logpdf"), ("poisson", "logpmf"), ("binom", "logpmf"),
    ("multivariate_normal", "entropy"), ("dirichlet", "logpdf"))]
ISSUE_13 += [f"scipy.signal.{n}" for n in ("convolve", "correlate", "fftconvolve")]
ISSUE_13 += [f"scipy.linalg.{n}" for n in _words(
    "solve_triangular cho_factor cho_solve lu_factor lu_solve solve_banded solve_sylvester "
    "expm sqrtm block_diag eigh")]
ISSUE_13 += [f"dnp.{n}" for n in _words(
    "r_ c_ append gradient hsplit vsplit dsplit array_split row_stack vstack hstack dstack "
    "column_stack rollaxis partition real_if_close iscomplex isreal einsum pad cov corrcoef "
    "histogram searchsorted unique select piecewise")]
ISSUE_13 += [f"dnp.linalg.{n}" for n in ("eig", "eigvals", "cholesky", "eigh", "svd", "qr")]


def test_docs_coverage_is_the_generated_table():
    pytest.importorskip("torch")  # the torch column needs the torch backend
    want = C.table()
    assert DOC.read_text() == want, (
        "docs/coverage.md is out of date: regenerate it with "
        "`diffkit coverage > docs/coverage.md` (or `python -m diffkit.cli coverage`)")


def test_every_name_of_issue_13_is_in_the_table():
    names = {n for n, _ in C.public_functions()}
    assert [n for n in ISSUE_13 if n not in names] == []


def test_primitives_are_found_through_wrappers_and_closures():
    assert PL.cholesky in C.reached_primitives(dnp.linalg.cholesky)
    assert {p.name for p in C.reached_primitives(dnp.floor)} >= {"floor"}  # a bound `bind`
    assert {p.name for p in C.reached_primitives(dnp.r_)} >= {"concatenate"}  # __getitem__
    assert C.reached_primitives(dnp.ndim) == set()


def test_backend_cell_names_the_missing_kernel_and_why():
    a, b = Primitive("cov_a", jvp=(lambda t, ans, x: t,)), Primitive("cov_b", nondiff=True)
    assert C._backend_cell({a}, {"cov_a": lambda x: x}) == "yes"
    assert C._backend_cell({a, b}, {"cov_a": lambda x: x}) == "no: no kernel for `cov_b`"
    assert C._backend_cell({a}, {"cov_a": Unsupported("no LAPACK here")}) == (
        "no: no kernel for `cov_a`: no LAPACK here")
    assert C._backend_cell({a}, None) == "no (backend not installed)"


def test_mode_cells():
    a, b = Primitive("cov_a", jvp=(lambda t, ans, x: t,)), Primitive("cov_b", nondiff=True)
    jvp = lambda p: p.has_jvp  # noqa: E731
    assert C._mode_cell({a, b}, jvp, False) == "yes"
    assert C._mode_cell({a}, lambda p: p.has_vjp, False) == "no: `cov_a`"
    assert C._mode_cell({b}, jvp, False) == "none"
    assert C._mode_cell({b}, jvp, True) == "yes"  # arithmetic on top of an integer result
    assert C._mode_cell(set(), jvp, False) == "n/a"
