"""The built-in primitives, one family a module, each ending with its table `PRIMITIVES`.

Importing this layer makes primitives runnable: `diffkit.plugins` installs the factory of
the registry the core dispatches through, and `fit` fills the core's array-math hooks.
"""

# Until no rule calls diffkit.numpy any more, the namespace must finish loading before a
# primitive module starts (it reads their primitives at import): load it first. Remove with
# the last `dnp.` in diffkit/primitives (issue 11, part 2).
from diffkit import numpy as _namespace  # noqa: F401  (see above)
from diffkit import plugins  # noqa: F401  (installs the registry factory into core.dispatch)
from diffkit.primitives import fit  # noqa: F401  (fills diffkit.core.ops)
