"""The built-in primitives, one family a module, each ending with its table `PRIMITIVES`.

Importing this layer makes primitives runnable: `diffkit.plugins` installs the factory of
the registry the core dispatches through, and `fit` fills the core's array-math hooks.
"""

from diffkit import plugins  # noqa: F401  (installs the registry factory into core.dispatch)
from diffkit.primitives import fit  # noqa: F401  (fills diffkit.core.ops)
