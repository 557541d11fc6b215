"""Test-wide settings.

Hypothesis runs a fixed, derandomized set of examples by default so CI is reproducible;
``HYPOTHESIS_PROFILE=explore`` searches many more random examples locally.
"""

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=8, deadline=None, derandomize=True)
settings.register_profile("explore", max_examples=150, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# pytest-xdist runs one worker per core: each worker's torch gets its share of the cores, so
# the workers' intra-op threads and the fused kernels' OpenMP threads do not oversubscribe
# them (results never depend on the thread count; the kernels sum in chunk order)
if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // _workers))


@pytest.fixture(scope="module")
def catalog_cache(tmp_path_factory):
    """The catalog commands' disk cache (``OPTIMLAB_CACHE_DIR``) in a folder of the module's,
    not the user's: a module that runs the command line marks itself with
    ``pytestmark = pytest.mark.usefixtures("catalog_cache")``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPTIMLAB_CACHE_DIR", str(tmp_path_factory.mktemp("catalog-cache")))
        yield
