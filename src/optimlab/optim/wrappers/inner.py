"""What a wrapper (SAM, Lookahead) checks of the optimizer class it wraps."""

from __future__ import annotations

import torch

__all__ = ["check_inner", "switch_mode"]


def check_inner(wrapper: str, cls: type, *, closure: str, sparse: str,
                nested: str | None = None) -> None:
    """Raise ``ValueError`` naming ``cls`` where ``wrapper`` cannot step it, read from its
    capability record (``torch.optim.LBFGS``, which has none, needs a closure too, and
    ``torch.optim.SparseAdam`` takes sparse gradients only): a step
    that needs a closure, sparse gradients only, or, where ``nested`` is given, a wrapper
    itself (built on an optimizer instance, where SAM builds its base class on parameter
    groups). ``closure``, ``sparse`` and ``nested`` end each message with why the wrapper
    cannot give it that."""
    caps = getattr(cls, "capabilities", None)
    if nested is not None and caps is not None and caps.wrapper:
        raise ValueError(f"{wrapper} cannot wrap {cls.__name__}: it is a wrapper, built on an "
                         f"optimizer instance, and {nested}")
    if issubclass(cls, torch.optim.LBFGS) or (caps is not None and caps.needs_closure):
        raise ValueError(f"{wrapper} cannot wrap {cls.__name__}: its step needs a closure, and "
                         f"{closure}")
    # torch.optim.SparseAdam, which has no record, takes sparse gradients only too
    if (caps is not None and caps.sparse_only) or issubclass(cls, torch.optim.SparseAdam):
        raise ValueError(f"{wrapper} cannot wrap {cls.__name__}: it takes sparse gradients only, "
                         f"and {sparse}")


def switch_mode(optimizer: torch.optim.Optimizer, mode: str) -> None:
    """``optimizer.eval()`` or ``.train()`` (``mode``) where it has both (a schedule-free
    optimizer, or a wrapper of one), else nothing: what a wrapper's own ``eval`` and
    ``train`` forward to."""
    if callable(getattr(optimizer, "eval", None)) and callable(getattr(optimizer, "train", None)):
        getattr(optimizer, mode)()
