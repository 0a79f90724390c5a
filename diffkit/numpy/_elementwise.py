"""Elementwise functions with NumPy's names (ufunc-style broadcasting and promotion)."""

from __future__ import annotations

from diffkit.primitives import elementwise as P

__all__ = ["add", "subtract", "multiply", "divide", "true_divide", "negative", "sin", "cos",
           "exp", "log", "tanh", "sqrt", "stop_gradient"]

add = P.add.bind
subtract = P.subtract.bind
multiply = P.multiply.bind
divide = true_divide = P.divide.bind
negative = P.negative.bind
sin = P.sin.bind
cos = P.cos.bind
exp = P.exp.bind
log = P.log.bind
tanh = P.tanh.bind
sqrt = P.sqrt.bind
stop_gradient = P.stop_gradient.bind
