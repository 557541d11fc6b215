"""optimlab: gradient-based optimizers for PyTorch you can use, see, trust and choose."""
from .optim import *  # noqa: F401,F403
from .optim import __all__ as _optim_all

__version__ = "0.1.0"
__all__ = list(_optim_all)
