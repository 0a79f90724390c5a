"""The built-in primitives, one family a module, each ending with its table `PRIMITIVES`."""
