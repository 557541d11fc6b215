"""The optimizer library: every algorithm as a ``torch.optim.Optimizer``.

Depends on torch only; nothing here imports plotting, web or database code.
"""
from .._lazy import submodule_access
from .adabelief import AdaBelief
from .adadelta import Adadelta
from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adam_mini import AdamMini
from .adamax import Adamax
from .ademamix import AdEMAMix
from .adopt import ADOPT
from .asgd import ASGD
from .dadaptation import DAdaptAdam, DAdaptSGD
from .lamb import LAMB
from .laprop import LaProp
from .lars import LARS
from .lbfgs import LBFGS
from .lion import Lion
from .mars import MARS
from .muon import Muon
from .nadam import NAdam
from .novograd import NovoGrad
from .population import Population  # noqa: E402
from .prodigy import Prodigy
from .psgd_kron import PSGDKron
from .radam import RAdam
from .registry import available, create, info, register, resolve, unregister  # noqa: E402
from .rmsprop import RMSprop
from .rprop import Rprop
from .schedule_free import ScheduleFreeAdamW
from .schedule_free_sgd import ScheduleFreeSGD
from .sgd import SGD
from .shampoo import Shampoo
from .signum import Signum
from .soap import SOAP
from .sophia import Sophia
from .sparse_adam import SparseAdam
from .wrappers import SAM, Lookahead
from .yogi import Yogi

__all__ = [
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
]

#: submodules reached as attributes without an import of their own (``optimlab.optim.palette``)
_LAZY = ("palette", "catalog", "capabilities", "compact", "kernels")

__getattr__, __dir__ = submodule_access(__name__, _LAZY)
