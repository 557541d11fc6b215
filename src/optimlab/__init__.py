"""optimlab: gradient-based optimizers for PyTorch you can use, see, trust and choose.

Every optimizer is a drop-in ``torch.optim.Optimizer``; ``create(name, params, **hp)`` and
``available()`` expose the registry; ``race(landscape, optimizers)`` races them on the test
functions of :mod:`optimlab.landscapes`; :mod:`optimlab.exhibits` holds the tutorials'
exhibits (``optimlab.exhibits.run_demo(name)``, ``optimlab demo NAME``);
``advise(model, loss_fn, train_data)`` says which optimizer and learning rate to use for a
model, with the evidence (:mod:`optimlab.bench.advisor`).

Importing ``optimlab`` is cheap: it does not import torch. The names below are loaded on
first access (PEP 562), so ``optimlab.Adam``, ``optimlab.create``, ``optimlab.race``,
``optimlab.exhibits`` and ``from optimlab import *`` work as they always did, and the
command line can answer ``optimlab list`` without waiting for torch. ``optimlab.bench``
(the training lab) loads the same way, on first access, never with ``import optimlab``.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers see (PEP 561: this package ships py.typed); at run
    # time the same names come from __getattr__ below, on first access
    from . import bench as bench
    from . import exhibits as exhibits
    from . import landscapes as landscapes
    from . import optim as optim
    from .bench.advisor import advise as advise
    from .landscapes import race as race
    from .optim import *  # noqa: F403

# ``optimlab.optim.__all__``, written out so that naming them needs no import (a test keeps
# the two lists equal).
_OPTIM_ALL = (
    "SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW", "Adamax", "NAdam", "RAdam",
    "Adafactor", "ASGD", "Rprop", "Muon", "LAMB", "Lion", "AdaBelief", "SAM", "Lookahead",
    "ScheduleFreeAdamW", "ScheduleFreeSGD", "Signum", "SparseAdam", "Yogi", "AdEMAMix", "ADOPT",
    "LARS", "LBFGS",
    "SOAP", "Shampoo",
    "Sophia",
    "AdamMini",
    "DAdaptAdam", "DAdaptSGD",
    "LaProp", "NovoGrad",
    "MARS",
    "Prodigy",
    "PSGDKron",
    "available", "create", "info", "resolve", "Population",
    "register", "unregister",
)
# the subpackages ``import optimlab`` used to import eagerly, and the training lab, which it
# never did, loaded on first access (``optimlab.bench``, as the README writes it)
_SUBMODULES = ("optim", "landscapes", "exhibits", "bench")

__all__ = list(_OPTIM_ALL) + ["exhibits", "landscapes", "race", "advise"]


def __getattr__(name: str):
    """Load an optimizer, ``race`` or a subpackage the first time it is asked for."""
    if name in _OPTIM_ALL:
        value = getattr(importlib.import_module(".optim", __name__), name)
    elif name == "race":
        value = importlib.import_module(".landscapes", __name__).race
    elif name == "advise":
        value = importlib.import_module(".bench.advisor", __name__).advise
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
