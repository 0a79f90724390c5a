"""What a checkpointed loop checks of its step, so that a misbehaving step is an error and
never a silent wrong gradient.

* In-place writes. A snapshot is a reference to an array the loop already holds, so a step
  that writes into its input would change snapshots (and the caller's `state0`). The step
  gets read-only views of NumPy state leaves (a write raises inside the step and becomes a
  clear error); torch has no read-only tensors, so the tensors' version counters are
  compared after every step, and the caller's own tensors are handed over as copies.
* Recomputation. A checkpoint schedule recomputes states from snapshots; a step that does
  not reproduce itself (a random draw, a changed global) silently breaks the gradient.
  `Fingerprints` keeps 8 bytes per state when first computed and compares them whenever
  that state is computed again (`check_recompute=`).
* Random steps. `RngReplay` captures the global NumPy and torch generators (`RngState`)
  with each snapshot and restores them with it (`preserve_rng_state=`, as
  `torch.utils.checkpoint`).
"""

from __future__ import annotations

import sys

import numpy as np

from diffkit.core import pytree
from diffkit.core.tracer import Tracer
from diffkit.errors import TransformError

__all__ = ["call_step", "call_protected", "protect", "owned_tensors", "Fingerprints", "RngState",
           "RngReplay", "leaf_paths"]


# -- in-place writes ---------------------------------------------------------------------
def call_step(step, state, i, args, owned=()):
    """`step(state, i, *args)` with the state's arrays protected from writes (see module
    docstring); `owned` holds the ids of the caller's tensors, handed over as copies."""
    if type(state) is np.ndarray:  # the common case, without pytree work (~2 us a step)
        view = state.view()
        view.flags.writeable = False
        try:
            return step(view, i, *args)
        except ValueError as e:
            if "read-only" not in str(e):
                raise
            raise mutation_error(i, ["state"], "tried to write into") from e
    flat, tree = pytree.flatten(state)
    return call_protected(step, tree, flat, [protect(x, owned) for x in flat], i, args)


def protect(x, owned=()):
    """A leaf as the step may see it: a NumPy array as a read-only view, a tensor of the
    caller as a copy, everything else (tracers, numbers, other tensors) as is."""
    if isinstance(x, np.ndarray):
        view = x.view()
        view.flags.writeable = False
        return view
    if id(x) in owned:
        return x.clone()
    return x


def call_protected(step, tree, flat, handed, i, args):
    """Call the step on `handed` (the protected `flat`); a write into a read-only array, or
    a changed tensor version counter, is an error naming the step index and the leaf."""
    versions = [getattr(x, "_version", None) for x in handed]
    try:
        out = step(pytree.unflatten(tree, handed), i, *args)
    except ValueError as e:
        if "read-only" not in str(e):
            raise
        paths = [p for p, x in zip(leaf_paths(tree), flat, strict=True)
                 if isinstance(x, np.ndarray)]
        raise mutation_error(i, paths, "tried to write into") from e
    for k, v in enumerate(versions):
        if v is not None and handed[k]._version != v:
            raise mutation_error(i, [leaf_paths(tree)[k]], "wrote into")
    return out


def owned_tensors(state) -> frozenset:
    """Ids of the caller's leaves that cannot be made read-only (torch tensors)."""
    return frozenset(id(x) for x in pytree.leaves(state) if hasattr(x, "_version"))


def mutation_error(i, paths, did) -> TransformError:
    what = paths[0] if len(paths) == 1 else "one of " + ", ".join(paths)
    return TransformError(
        f"the step function of a checkpointed loop {did} its state in place at step {i} "
        f"({what}): the loop keeps earlier states as snapshots, and the caller's state0, "
        f"which that would overwrite. Return new arrays (`u = u + du`, not `u += du`; "
        f"`u = dnp.where(...)` or `u.at[idx].set(v)`, not `u[idx] = v`), or copy first "
        f"(`u = u.copy()`, torch: `u = u.clone()`, at the top of the step) and then write "
        f"into the copy."
    )


def leaf_paths(tree, root: str = "state") -> list[str]:
    """A readable path for each leaf of a tree structure: state, state[0], state['u']."""
    out, todo = [], [(tree, root)]
    while todo:
        td, path = todo.pop()
        if td.kind is None:
            out.append(path)
            continue
        if td.kind is dict:
            names = [f"{path}[{k!r}]" for k in td.aux]
        elif hasattr(td.kind, "_fields"):
            names = [f"{path}.{f}" for f in td.kind._fields]
        elif isinstance(td.aux, tuple) and len(td.aux) == len(td.children) and all(
                isinstance(a, str) for a in td.aux):  # a dataclass: its field names
            names = [f"{path}.{f}" for f in td.aux]
        else:
            names = [f"{path}[{k}]" for k in range(len(td.children))]
        todo.extend(reversed(list(zip(td.children, names, strict=True))))
    return out


# -- recomputation -----------------------------------------------------------------------
_SAMPLES = 8  # elements read per leaf: a step drawing noise changes all of them
_TOLERANCE = 1024  # in units of the leaf dtype's epsilon: GPU reductions vary in the ulps


class Fingerprints:
    """One float64 per checked state: a weighted sum of a fixed sample of its elements.

    Recorded when a state is first computed (states are first computed in order 0, 1, ...,
    so index > `frontier` means new), compared when it is computed again. At most `cap`
    values are kept (8 * cap bytes: 1 KiB, or an eighth of a state if more): past that,
    every second value is dropped and only every `every`-th state is checked.
    """

    def __init__(self, state_bytes: int):
        self.cap = max(128, state_bytes // 128 * 2)  # even: halving keeps every second
        self.values = np.empty(self.cap)
        self.checked = np.zeros(self.cap, dtype=bool)  # False: computed by a program
        self.every, self.frontier, self.last_ok = 1, -1, 0

    @property
    def nbytes(self) -> int:
        return self.values.nbytes + self.checked.nbytes

    def seen(self, j: int, leaves: list) -> None:
        """State `j` (its flat leaves) was computed: record its value if new, else compare."""
        if j > self.frontier:
            self._record(j, leaves)
        elif j % self.every:
            return  # not checked: the culprit of a later mismatch may be before j
        elif self._differs(j, leaves):
            raise self._error(j)
        self.last_ok = j

    def skip(self, j: int) -> None:
        """State `j` was computed by a compiled step's program, which replays exactly: it is
        never compared (its slot is marked so, keeping states first computed in order)."""
        if j > self.frontier:
            self._record(j, None)

    def loaded(self, j: int, leaves: list) -> None:
        """A snapshot of state `j` was loaded: it must still be what was saved."""
        if self._differs(j, leaves):
            raise TransformError(
                f"checkpoint loop: the snapshot of state {j} changed after it was saved: "
                f"something wrote into its arrays in place (a step that returns an array "
                f"it writes into again later, such as a preallocated buffer). Return new "
                f"arrays from the step (or `buf.copy()`)."
            )
        self.last_ok = j

    def _differs(self, j, leaves) -> bool:
        if j % self.every or j > self.frontier or not self.checked[j // self.every]:
            return False
        old = self.values[j // self.every]
        if fingerprint(leaves)[0] == old:  # the common case: no tolerance to work out
            return False
        value, tol = fingerprint(leaves, tolerance=True)
        return not (abs(value - old) <= tol or (value != value and old != old))

    def _record(self, j, leaves):
        self.frontier = j
        if j % self.every:
            return
        if j // self.every >= self.cap:  # full: keep every second value, check half as often
            self.values[:self.cap // 2] = self.values[0:self.cap:2].copy()
            self.checked[:self.cap // 2] = self.checked[0:self.cap:2].copy()
            self.checked[self.cap // 2:] = False
            self.every *= 2
            if j % self.every:
                return
        self.checked[j // self.every] = leaves is not None
        if leaves is not None:
            self.values[j // self.every] = fingerprint(leaves)[0]

    def _error(self, j) -> TransformError:
        first = self.last_ok  # the last state known good: loaded, or checked
        steps = (f"step {j - 1}" if first == j - 1 else f"one of steps {first}..{j - 1}"
                 if first < j else f"a step before state {j}")
        return TransformError(
            f"checkpoint loop: recomputing state {j} did not reproduce the forward sweep: "
            f"{steps} is not deterministic (it draws from a random generator, or reads "
            f"something that changed since). The gradient would be wrong. Pass randomness "
            f"in `args`, or derive it from the step index (rng = "
            f"np.random.default_rng([seed, i])); for the global NumPy/torch generators pass "
            f"preserve_rng_state=True. check_recompute=False switches this check off."
        )


def fingerprint(leaves, tolerance: bool = False) -> tuple[float, float]:
    """(weighted sum of a fixed sample of the leaves' elements, the deviation allowed to a
    recomputation: `_TOLERANCE` epsilons of each leaf's dtype, relative to its sample)."""
    value = tol = 0.0
    for leaf in leaves:
        if not tolerance and type(leaf) is np.ndarray and leaf.dtype.kind == "f":
            idx = _indices(leaf.size)  # the common case, spelled out (once per step call)
            value += float(np.dot(leaf.flat[idx], _WEIGHTS[:idx.shape[0]]))
            continue
        while isinstance(leaf, Tracer):  # a loop inside another transform: its values
            leaf = leaf.primal
        sample = _sample(leaf)
        if sample is None:
            continue
        w = _WEIGHTS[:sample.shape[0]]
        v = np.dot(sample, w)
        value += float(v.real) + _IMAG * float(v.imag) if sample.dtype.kind == "c" else float(v)
        if tolerance:
            tol += _eps(getattr(leaf, "dtype", None)) * float(np.dot(np.abs(sample), w))
    return value, tol


_WEIGHTS = 1.0 + np.arange(_SAMPLES) / _SAMPLES  # distinct: reordered elements differ
_IMAG = 0.5 ** 0.5  # so that real and imaginary parts do not cancel


def _sample(x):
    """Up to `_SAMPLES` elements of `x` at fixed evenly spaced positions (a NumPy array)."""
    if isinstance(x, np.ndarray):
        return x.flat[_indices(x.size)]
    if isinstance(x, (bool, int, float, complex, np.generic)):
        return np.asarray([x])
    if not hasattr(x, "reshape") or not hasattr(x, "tolist"):
        return None  # not an array: nothing to compare
    flat = x.reshape(-1)
    key = (flat.shape[0], str(getattr(x, "device", "")))
    idx = _device_index.get(key)
    if idx is None:
        idx = list(_indices(key[0]))
        if hasattr(flat, "new_tensor"):  # torch: an index tensor on the leaf's device
            idx = flat.new_tensor(idx).long()
        _device_index[key] = idx
    return np.asarray(flat[idx].tolist())


_index_cache: dict[int, np.ndarray] = {}
_device_index: dict[tuple, object] = {}
_eps_cache: dict[object, float] = {}


def _indices(size: int) -> np.ndarray:
    idx = _index_cache.get(size)
    if idx is None:
        k = min(size, _SAMPLES)
        idx = _index_cache[size] = np.arange(k) * (size - 1) // max(k - 1, 1)
    return idx


def _eps(dtype) -> float:
    """The relative deviation a recomputation may show: `_TOLERANCE` machine epsilons of a
    leaf's dtype (NumPy or torch; float64's for Python numbers); 0 for integers and bools."""
    tol = _eps_cache.get(dtype)
    if tol is None:
        eps = _machine_eps(dtype)  # half precision: 16 epsilons or 1%, not 1024 epsilons
        tol = _eps_cache[dtype] = eps * min(_TOLERANCE, max(16.0, 0.01 / eps)) if eps else 0.0
    return tol


def _machine_eps(dtype) -> float:
    if dtype is None:
        return 2.0 ** -52
    try:
        return float(np.finfo(dtype).eps) if np.dtype(dtype).kind in "fc" else 0.0
    except TypeError:  # a torch dtype
        torch = sys.modules.get("torch")
        floating = getattr(dtype, "is_floating_point", False) or getattr(dtype, "is_complex",
                                                                         False)
        return float(torch.finfo(dtype).eps) if floating and torch is not None else 0.0


# -- random steps ------------------------------------------------------------------------
class RngState:
    """The global NumPy legacy generator and torch's default generators (CPU, and CUDA when
    initialized), captured now; `restore()` puts them back."""

    def __init__(self):
        self.numpy = np.random.get_state()
        torch = sys.modules.get("torch")
        self.torch = self.cuda = None
        if torch is not None:
            self.torch = torch.get_rng_state()
            if torch.cuda.is_initialized():
                self.cuda = torch.cuda.get_rng_state_all()

    @property
    def nbytes(self) -> int:
        """Bytes held (~7.7 KB with torch imported: NumPy's 2.5 KB key, torch's 5 KB)."""
        total = self.numpy[1].nbytes + 200
        for t in [self.torch, *(self.cuda or ())]:
            total += 0 if t is None else t.numel() * t.element_size() + 200
        return total

    def restore(self) -> None:
        np.random.set_state(self.numpy)
        torch = sys.modules.get("torch")
        if self.torch is not None:
            torch.set_rng_state(self.torch)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


class RngReplay:
    """The generators' state before each snapshot's step, so that recomputing from a
    snapshot draws what the forward sweep drew (`preserve_rng_state=True`)."""

    def __init__(self):
        self.start, self.keep, self.at = None, None, {}

    def begin(self) -> None:
        """A forward sweep starts: take the state (or, on a rerun for jacrev, restore it)."""
        if self.start is None:
            self.start = RngState()
        else:
            self.start.restore()
        self.at = {}

    def before_step(self, i: int) -> None:
        """The online sweep keeps the state before its latest step (it may be the last)."""
        self.keep = (i, RngState() if i else self.start)

    def save(self, key, step: int) -> None:
        """State `step` is saved under `key`; step 0 was already run by the measurement."""
        if step == 0:
            self.at[key] = self.start
        elif self.keep is not None and self.keep[0] == step:
            self.at[key] = self.keep[1]
        else:
            self.at[key] = RngState()

    def load(self, key) -> None:
        self.at[key].restore()

    def discard(self, key) -> None:
        del self.at[key]

    def resume_keep(self) -> None:
        """The online reverse sweep starts by taping the kept last step."""
        self.keep[1].restore()
