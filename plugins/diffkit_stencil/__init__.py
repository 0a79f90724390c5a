"""Finite-difference stencil primitives, packaged as a third-party plugin would be."""

from __future__ import annotations
