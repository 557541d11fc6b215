"""Fixtures of the optimizer tests."""

import pytest
import torch.distributed as dist


@pytest.fixture
def process_group(tmp_path):
    """A one-process gloo process group for the test (a file store in its folder)."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    yield
    dist.destroy_process_group()
