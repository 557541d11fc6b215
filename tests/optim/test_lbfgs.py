"""LBFGS beyond the shared matrix: argument checks, the closure contract, torch's state_dict,
and Rosenbrock with the strong-Wolfe line search, each against torch.optim.LBFGS."""

from __future__ import annotations

import pytest
import torch

import optimlab
from tests.optim.ddp_worker import ONE_RANK_GLOO


def _rosenbrock(x):
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def _run(cls, steps, state=None, **hp):
    x = torch.linspace(-1.2, 1.0, 10, dtype=torch.float64).requires_grad_()
    opt = cls([x], **hp)
    if state is not None:
        opt.load_state_dict(state)

    def closure():
        opt.zero_grad()
        loss = _rosenbrock(x)
        loss.backward()
        return loss

    losses = [float(opt.step(closure).detach()) for _ in range(steps)]
    return x.detach(), losses, opt


@pytest.mark.parametrize("hp", [{}, {"line_search_fn": "strong_wolfe"},
                                {"lr": 0.5, "history_size": 3, "max_iter": 5},
                                {"max_iter": 10, "max_eval": 4}], ids=str)
def test_rosenbrock_steps_and_losses_are_torchs(hp):
    ours, our_losses, _ = _run(optimlab.LBFGS, 15, **hp)
    theirs, their_losses, _ = _run(torch.optim.LBFGS, 15, **hp)
    assert torch.equal(ours, theirs) and our_losses == their_losses


def test_resumes_from_torchs_state_dict_and_torch_from_ours():
    _, _, torch_opt = _run(torch.optim.LBFGS, 5, line_search_fn="strong_wolfe")
    _, _, our_opt = _run(optimlab.LBFGS, 5, line_search_fn="strong_wolfe")
    # 5 steps, then 5 more from the saved state (the parameters restarted too: both sides
    # restart the same way, so the curvature memory is what is compared)
    from_torch, _, _ = _run(optimlab.LBFGS, 5, torch_opt.state_dict(),
                            line_search_fn="strong_wolfe")
    from_ours, _, _ = _run(torch.optim.LBFGS, 5, our_opt.state_dict(),
                           line_search_fn="strong_wolfe")
    reference, _, _ = _run(torch.optim.LBFGS, 5, torch_opt.state_dict(),
                           line_search_fn="strong_wolfe")
    assert torch.equal(from_torch, reference) and torch.equal(from_ours, reference)


@pytest.mark.parametrize("hp, match", [
    ({"lr": -1.0}, "lr"),
    ({"max_iter": 0}, "max_iter"),
    ({"max_eval": 0}, "max_eval"),
    ({"history_size": 0}, "history_size"),
    ({"line_search_fn": "backtracking"}, "line_search_fn"),
    ({"line_search_fn": ""}, "line_search_fn"),
])
def test_bad_arguments_are_refused_at_construction(hp, match):
    with pytest.raises(ValueError, match=match):
        optimlab.LBFGS([torch.zeros(2, requires_grad=True)], **hp)


def test_the_closure_is_required_and_one_group_only():
    p = torch.zeros(2, requires_grad=True)
    opt = optimlab.LBFGS([p])
    with pytest.raises(TypeError, match="closure"):
        opt.step()
    with pytest.raises(ValueError, match="single parameter group"):
        optimlab.LBFGS([{"params": [p]}, {"params": [torch.zeros(1, requires_grad=True)]}])


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_complex_parameters_step_as_torchs(line_search_fn):
    """torch.optim.LBFGS steps a complex parameter as its real and imaginary parts; a
    parameter without a gradient (``v`` is unused by the loss) counts as zeros."""
    target = torch.tensor([1 + 2j, -1j, 0.5], dtype=torch.complex128)
    results = []
    for cls in (optimlab.LBFGS, torch.optim.LBFGS):
        gen = torch.Generator().manual_seed(0)
        w = torch.randn(3, dtype=torch.complex128, generator=gen).requires_grad_()
        x = torch.randn(2, dtype=torch.float64, generator=gen).requires_grad_()
        unused = torch.zeros(2, dtype=torch.complex128, requires_grad=True)
        opt = cls([w, x, unused], lr=0.5, history_size=4, max_iter=7,
                  line_search_fn=line_search_fn)

        def closure():
            opt.zero_grad()
            loss = ((w - target).abs() ** 4).sum() + ((x - 1) ** 2).sum()
            loss.backward()
            return loss

        losses = [float(opt.step(closure).detach()) for _ in range(3)]
        results.append((w.detach(), x.detach(), unused.detach(), losses))
    ours, theirs = results
    assert all(torch.equal(a, b) for a, b in zip(ours[:3], theirs[:3]))
    assert ours[3] == theirs[3] and ours[3][-1] < 0.1


_SHARDED_AND_SPARSE = ONE_RANK_GLOO + """
import optimlab

def run(sharded):
    torch.manual_seed(0)
    start = torch.randn(3, 2, dtype=torch.float64)
    w = torch.nn.Parameter(distribute_tensor(start, init_device_mesh("cpu", (1,)), [Shard(0)])
                           if sharded else start)
    emb = torch.nn.Embedding(5, 2, sparse=True).double()
    opt = optimlab.LBFGS([w, emb.weight], lr=0.1, max_iter=3)
    def closure():
        opt.zero_grad()
        local = w.to_local() if sharded else w
        loss = emb(torch.tensor([1, 2])).pow(2).sum() + (local - 1).pow(2).sum()
        loss.backward()
        return loss
    for _ in range(2):
        opt.step(closure)
    return (w.to_local() if sharded else w).detach(), emb.weight.detach()

a, b = run(True), run(False)
print(all(torch.allclose(x, y, rtol=0, atol=1e-12) for x, y in zip(a, b)))
dist.destroy_process_group()
"""


def test_a_sparse_gradient_beside_a_sharded_parameter():
    """LBFGS's vector over DTensors (one process's shards) took a sparse gradient's values
    without making it dense ("reshape is not implemented for sparse tensors"); it now
    steps as LBFGS over the same parameters unsharded (a one-process gloo group)."""
    import subprocess
    import sys

    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available():
        pytest.skip("torch.distributed missing")
    out = subprocess.run([sys.executable, "-c", _SHARDED_AND_SPARSE], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "True"


def test_a_state_dict_for_other_parameters_is_refused_by_the_shared_check():
    """LBFGS refuses a state_dict saved for other parameters with the words every optimizer
    uses (one check, :func:`optimlab.optim.base.check_saved_groups`), counts said singular
    where they are one."""
    params = [torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(2))]
    opt = optimlab.LBFGS(params)

    def closure():
        opt.zero_grad()
        loss = sum((p ** 2).sum() for p in params)
        loss.backward()
        return loss

    opt.step(closure)
    saved = opt.state_dict()
    other = [torch.nn.Parameter(torch.randn(4)), torch.nn.Parameter(torch.randn(2))]
    with pytest.raises(ValueError, match=r"parameter 0 of group 0 has shape \(4,\) but the "
                                         r"state_dict was saved for shape \(3,\)"):
        optimlab.LBFGS(other).load_state_dict(saved)
    with pytest.raises(ValueError, match="group 0 has 1 parameter but the state_dict has 2"):
        optimlab.LBFGS(other[:1]).load_state_dict(saved)
    damaged = {**saved, "optimlab": {**saved["optimlab"], "param_shapes": []}}
    with pytest.raises(ValueError, match="param_shapes do not match its param_groups"):
        optimlab.LBFGS(params).load_state_dict(damaged)  # (an IndexError before)
