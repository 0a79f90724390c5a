"""The AD engine: primitives and their rules, tracing, forward and reverse mode, transforms."""
