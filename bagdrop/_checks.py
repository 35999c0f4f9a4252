"""Argument checks shared by the modules: each raises an error naming the argument."""
from __future__ import annotations

import numbers


def positive_int(name: str, value) -> int:
    """Return ``value`` if it is an int > 0, else raise TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return int(value)


def non_negative_int(name: str, value) -> int:
    """Return ``value`` if it is an int >= 0, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value}")
    return int(value)


def probability(name: str, value, *, allow_one: bool = False) -> float:
    """Return ``value`` if it is a real number in [0, 1) (or [0, 1]), else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    upper_ok = value <= 1 if allow_one else value < 1
    if not (value >= 0 and upper_ok):
        interval = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"{name} must lie in {interval}, got {value}")
    return float(value)


def positive_float(name: str, value) -> float:
    """Return ``value`` if it is a real number > 0, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return float(value)


def non_negative_float(name: str, value) -> float:
    """Return ``value`` if it is a real number >= 0, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    if not value >= 0:
        raise ValueError(f"{name} must be non-negative, got {value}")
    return float(value)


def torch_device(name: str, value):
    """``value`` (a string such as 'cpu' or 'cuda:0', or a torch.device) as a torch.device,
    else a ValueError naming ``name``."""
    import torch

    try:
        return torch.device(value)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"{name} must name a torch device such as 'cpu' or 'cuda', got {value!r}") from e


def one_of(name: str, value, options) -> str:
    """Return ``value`` if it is one of ``options``, else raise naming ``name``."""
    if value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return value
