"""ZeroRedundancyOptimizer and DDP drive optimlab optimizers like torch's own.

A one-process gloo group (a file store, no network) is enough to check that the optimizer
class is built, stepped and checkpointed through ZeRO's wrappers.
"""

import pytest
import torch
import torch.distributed as dist

import optimlab
from tests.problems import loss_fn, make_params

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed missing")


@pytest.mark.parametrize("cls, hp", [(optimlab.Adam, {"lr": 0.01}),
                                     (optimlab.Lion, {"lr": 1e-3, "weight_decay": 0.1}),
                                     (optimlab.LAMB, {"lr": 3e-3})],
                         ids=["Adam", "Lion", "LAMB"])
def test_zero_redundancy_optimizer_matches_plain(process_group, cls, hp):
    from torch.distributed.optim import ZeroRedundancyOptimizer

    plain_params, zero_params = make_params(), make_params()
    plain = cls(plain_params, **hp)
    zero = ZeroRedundancyOptimizer(zero_params, optimizer_class=cls, **hp)
    for _ in range(20):
        for opt, params in ((plain, plain_params), (zero, zero_params)):
            opt.zero_grad()
            loss_fn(params).backward()
            opt.step()
    zero.consolidate_state_dict(to=0)
    assert zero.state_dict()["state"]
    for a, b in zip(plain_params, zero_params):
        assert torch.equal(a, b)


def test_ddp_model_trains(process_group):
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
    opt = optimlab.AdamW(model.parameters(), lr=0.05)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < first


def test_a_sharded_state_dict_is_a_deep_copyable_copy_and_leaves_the_state_alone(process_group):
    """Under ``fully_shard`` (one process: every parameter a DTensor shard) the state is
    views into the engine's flat buffer; ``state_dict()`` hands out copies that
    ``copy.deepcopy`` takes (a DTensor over a view at an offset it cannot) and leaves the
    optimizer's own entries as they were."""
    import copy

    fsdp = pytest.importorskip("torch.distributed.fsdp")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)).double()
    fsdp.fully_shard(model)
    # the multi-tensor path keeps the state as views into one flat buffer (the fused one
    # gives each tensor its own)
    opt = optimlab.Adam(model.parameters(), lr=0.01, fused=False)
    model(torch.randn(5, 4, dtype=torch.float64)).sum().backward()
    opt.step()
    live = {id(p): dict(state) for p, state in opt.state.items()}
    offsets = [value.to_local().storage_offset() for state in opt.state.values()
               for key, value in state.items() if key != "step"]
    assert any(offsets), "the state should be views into one buffer"

    saved = opt.state_dict()
    assert all(state[key] is value for p, state in opt.state.items()
               for key, value in live[id(p)].items())
    copied = copy.deepcopy(saved)
    for pid, p in enumerate(model.parameters()):
        for key in ("exp_avg", "exp_avg_sq"):
            entry = copied["state"][pid][key]
            assert entry.to_local().storage_offset() == 0
            assert torch.equal(entry.full_tensor(), opt.state[p][key].full_tensor())


def test_skip_nonfinite_takes_a_process_group_that_a_copy_shares_and_a_pickle_refuses(
        process_group):
    """``skip_nonfinite=group`` turns the guard on with its flag reduced over ``group`` (one
    process here: it skips as ``True`` does); ``copy.deepcopy`` keeps the same group, and
    pickling says why it cannot (a process group belongs to its process)."""
    import copy
    import pickle

    params = make_params()
    opt = optimlab.Adam(params, lr=0.01, skip_nonfinite=dist.group.WORLD)
    assert opt.skip_nonfinite is True
    loss_fn(params).backward()
    params[0].grad.view(-1)[0] = float("nan")
    before = [p.detach().clone() for p in params]
    opt.step()
    assert opt.skipped_steps == 1
    assert all(torch.equal(a, b) for a, b in zip(before, params))
    params[0].grad.zero_()
    opt.step()
    assert opt.skipped_steps == 1 and not torch.equal(before[1], params[1])

    twin = copy.deepcopy(opt)
    assert twin._nonfinite_group.group is dist.group.WORLD
    with pytest.raises(TypeError, match="process group cannot be pickled"):
        pickle.dumps(opt)


@pytest.mark.parametrize("value", [1, "yes", None, object()])
def test_skip_nonfinite_must_be_a_bool_or_a_process_group(value):
    with pytest.raises(ValueError, match="skip_nonfinite must be a bool or a torch.distributed "
                                         "ProcessGroup, got"):
        optimlab.Adam(make_params(), skip_nonfinite=value)
