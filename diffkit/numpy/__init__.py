"""`diffkit.numpy`: NumPy's names, signatures, broadcasting and dtype promotion, on every
backend, differentiable. A call on plain arrays returns a plain array of that backend.

    import diffkit.numpy as dnp
"""

from diffkit.numpy import fft, linalg  # noqa: F401
from diffkit.numpy._core import *  # noqa: F403
from diffkit.numpy._creation import *  # noqa: F403
from diffkit.numpy._elementwise import *  # noqa: F403
from diffkit.numpy._function_base import *  # noqa: F403
from diffkit.numpy._index_tricks import *  # noqa: F403
from diffkit.numpy._indexing import *  # noqa: F403
from diffkit.numpy._methods import install_tracer_methods as _install
from diffkit.numpy._padding import *  # noqa: F403 (after _indexing: its pad has every mode)
from diffkit.numpy._products import *  # noqa: F403
from diffkit.numpy._reductions import *  # noqa: F403
from diffkit.numpy._sets import *  # noqa: F403
from diffkit.numpy._shape import *  # noqa: F403
from diffkit.numpy._signal import *  # noqa: F403
from diffkit.numpy._statistics import *  # noqa: F403

_install()  # every Tracer operator and method comes from this namespace
