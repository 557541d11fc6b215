"""Sparse gradients and sparse parameters where an optimizer, a population or the command line
cannot step them, or can only in part: refused before anything changes, with what to do
instead, as torch refuses them; and the paths that take them stepping as torch steps them."""

from __future__ import annotations

import argparse
import types

import pytest
import torch

import optimlab
from optimlab.optim.catalog import TABLE


def _sparse(rows=5, cols=3, index=(1,), seed=0, coalesce=False):
    """A row-sparse gradient of an embedding table (repeated rows: uncoalesced)."""
    gen = torch.Generator().manual_seed(seed)
    g = torch.sparse_coo_tensor(torch.tensor([list(index)]), torch.randn(len(index), cols,
                                generator=gen), (rows, cols), check_invariants=True)
    return g.coalesce() if coalesce else g


def _member_rows():
    """A sparse gradient of a population's stacked table: row 1 of member 0, row 3 of 1."""
    return torch.sparse_coo_tensor(torch.tensor([[0, 1], [1, 3]]), torch.ones(2, 3), (2, 5, 3),
                                   check_invariants=True)


def _info(name):
    return next(info for info in TABLE if info.name == name)


@pytest.mark.parametrize("flags", [{}, {"foreach": True}, {"foreach": False}, {"fused": True},
                                   {"fused": False}], ids=str)
def test_a_group_with_a_sparse_gradient_is_refused_before_any_tensor_steps(flags):
    """A dense weight and a sparse embedding in one Adam group: torch refuses before any
    parameter moves; every path here does too (the fused one stepped the dense weight and
    made its state first), with torch's message saying what to use instead."""
    results = []
    for cls, kwargs in ((torch.optim.Adam, {}), (optimlab.Adam, flags)):
        w = torch.nn.Parameter(torch.ones(2, 3))
        e = torch.nn.Parameter(torch.ones(5, 3))
        opt = cls([w, e], lr=0.1, **kwargs)
        w.grad, e.grad = torch.ones(2, 3), _sparse()
        with pytest.raises(RuntimeError) as error:
            opt.step()
        assert torch.equal(w, torch.ones(2, 3)) and torch.equal(e, torch.ones(5, 3))
        # torch makes the dense weight's zero state before it refuses; nothing has stepped
        assert all(float(opt.state[p].get("step", 0)) == 0 for p in (w, e))
        results.append(str(error.value))
    theirs, ours = results
    assert theirs == "Adam does not support sparse gradients, please consider SparseAdam instead"
    assert ours.startswith(theirs) and "SGD or Adagrad" in ours  # not "cannot fuse"


@pytest.mark.parametrize("name", ["RMSprop", "Lion", "Adafactor"])
def test_every_optimizer_without_sparse_support_names_those_with_it(name):
    w = torch.nn.Parameter(torch.ones(2, 3))
    e = torch.nn.Parameter(torch.ones(5, 3))
    opt = getattr(optimlab, name)([w, e], lr=0.1)
    w.grad, e.grad = torch.ones(2, 3), _sparse()
    with pytest.raises(RuntimeError, match=f"^{name} does not support sparse gradients, please "
                                           "consider SparseAdam instead .*SGD or Adagrad"):
        opt.step()
    assert torch.equal(w, torch.ones(2, 3)) and not opt.state[w]


@pytest.mark.parametrize("name", ["Prodigy", "DAdaptAdam", "DAdaptSGD", "Sophia"])
def test_the_optimizers_with_their_own_step_refuse_as_the_engine_does(name):
    """Prodigy and D-Adaptation made the state of the group's dense tensors before they met
    the sparse gradient, and these four said only "does not support sparse gradients": now
    nothing is made, and the message names what to use, as every other optimizer's does."""
    w, e = torch.nn.Parameter(torch.ones(2, 3)), torch.nn.Parameter(torch.ones(5, 3))
    opt = getattr(optimlab, name)([w, e])

    def closure():
        w.grad, e.grad = torch.ones(2, 3), _sparse()
        return torch.zeros(())

    closure()
    with pytest.raises(RuntimeError, match=f"^{name} does not support sparse gradients, please "
                                           "consider SparseAdam instead"):
        opt.step(closure)
    assert torch.equal(w.detach(), torch.ones(2, 3)) and not opt.state


@pytest.mark.parametrize("name, hparams", [("adagrad", {"lr": [0.1, 0.2]}),
                                           ("adam", {"lr": [0.1, 0.2]}),
                                           ("momentum", {"lr": [0.1, 0.2]}),
                                           ("lbfgs", {"lr": [0.1, 0.2]})])
def test_a_population_refuses_a_sparse_gradient_before_any_member_steps(name, hparams):
    """Every path of a population steps dense gradients; a sparse one failed with "unsupported
    memory format option Contiguous"."""
    p = torch.nn.Parameter(torch.ones(2, 5, 3))
    pop = optimlab.Population(name, [p], hparams)
    p.grad = _member_rows()
    closure = (lambda: torch.tensor(1.0)) if name == "lbfgs" else None
    with pytest.raises(RuntimeError, match="^Population steps dense gradients only; "
                                           r"\w+ got a sparse gradient .* for parameter 0"):
        pop.step(closure)
    assert torch.equal(p, torch.ones(2, 5, 3))


def test_a_population_refuses_a_sparse_gradient_given_to_step_after_it_fused():
    """Gradients given to step() are checked by the fused plan as it runs: a sparse one is
    turned down there, refused, and no member's step counter advances."""
    p = torch.nn.Parameter(torch.ones(2, 5, 3))
    pop = optimlab.Population("adam", [p], {"lr": [0.1, 0.2]})
    pop.step(grads=[torch.ones(2, 5, 3)])
    before, steps = p.detach().clone(), [float(s["step"]) for s in pop.state if "step" in s]
    g = _member_rows()
    with pytest.raises(RuntimeError, match="^Population steps dense gradients only"):
        pop.step(grads=[g])
    assert torch.equal(p, before)
    assert [float(s["step"]) for s in pop.state if "step" in s] == steps


@pytest.mark.parametrize("hp", [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True},
                                {"momentum": 0.9, "dampening": 0.2, "maximize": True}], ids=str)
@pytest.mark.parametrize("flags", [{}, {"foreach": False}, {"fused": False}], ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sgd_with_a_tensor_lr_steps_sparse_gradients_as_torch_does(hp, flags, dtype):
    """addcmul takes no sparse tensor: SGD(lr=tensor) failed on an embedding's gradient after
    storing its momentum buffer. torch reads the rate as a number there; so does this."""
    results = []
    for cls, kwargs in ((torch.optim.SGD, {}), (optimlab.SGD, flags)):
        p = torch.nn.Parameter(torch.linspace(-1, 1, 18, dtype=dtype).reshape(6, 3))
        q = torch.nn.Parameter(torch.ones(4, dtype=dtype))  # a dense tensor beside it
        opt = cls([p, q], lr=torch.tensor(0.1, dtype=dtype), **hp, **kwargs)
        for step in range(4):
            p.grad = _sparse(6, 3, (0, 2, 2, 5), seed=step).to(dtype)
            q.grad = torch.full((4,), 0.5 + step, dtype=dtype)
            opt.step()
        results.append((p.detach().clone(), q.detach().clone(), opt))
    (p1, q1, theirs), (p2, q2, ours) = results
    assert torch.equal(p1, p2) and torch.equal(q1, q2)
    if hp.get("momentum"):
        buffers = [o.state[o.param_groups[0]["params"][0]]["momentum_buffer"]
                   for o in (theirs, ours)]
        assert all(b.is_sparse for b in buffers)
        assert torch.equal(*(b.to_dense() for b in buffers))


@pytest.mark.parametrize("precision", ["int8", "bfloat16"])
@pytest.mark.parametrize("hp", [{"momentum": 0.9}, {"momentum": 0.9, "nesterov": True},
                                {"momentum": 0.9, "dampening": 0.3}], ids=str)
def test_sgd_momentum_kept_compact_steps_sparse_gradients_as_their_dense_form(precision, hp):
    """A sparse gradient made SGD's momentum buffer sparse, which state_precision could not
    encode ("reshape is not implemented for sparse tensors", the sparse buffer left in the
    state). It is kept as the dense tensor it stands for: the same bits as dense gradients."""
    results = []
    for densify in (False, True):
        p = torch.nn.Parameter(torch.ones(6, 3))
        opt = optimlab.SGD([p], lr=0.1, state_precision=precision, **hp)
        for step in range(4):
            g = _sparse(6, 3, (0, 2, 4), seed=step, coalesce=True)
            p.grad = g.to_dense() if densify else g
            opt.step()
        state = opt.state[p]
        assert all(v.layout is torch.strided for v in state.values() if isinstance(v, torch.Tensor))
        assert state["momentum_buffer"].dtype == (torch.uint8 if precision == "int8"
                                                  else torch.bfloat16)
        results.append(p.detach().clone())
    assert torch.equal(*results)


@pytest.mark.parametrize("precision", ["int8", "bfloat16"])
def test_adagrad_kept_compact_still_steps_sparse_gradients(precision):
    p = torch.nn.Parameter(torch.ones(6, 3))
    opt = optimlab.Adagrad([p], lr=0.1, state_precision=precision)
    for step in range(3):
        p.grad = _sparse(6, 3, (0, 2, 2), seed=step)
        opt.step()
    assert not torch.equal(p[0], torch.ones(3)) and torch.equal(p[1], torch.ones(3))


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("layout", ["coo", "csr"])
@pytest.mark.parametrize("name, flags", [("SGD", {}), ("SGD", {"foreach": False}),
                                         ("Adagrad", {}), ("Adam", {}), ("Adam", {"fused": False})])
def test_a_sparse_parameter_is_refused_by_name_before_anything_changes(layout, name, flags):
    """A sparse parameter failed inside the engine ("Cannot access storage of
    SparseTensorImpl", "Sparse CSR tensors do not have strides")."""
    dense = torch.ones(5, 3)
    p = torch.nn.Parameter(dense.to_sparse() if layout == "coo" else dense.to_sparse_csr())
    w = torch.nn.Parameter(torch.ones(2))
    opt = getattr(optimlab, name)([w, p], lr=0.1, **flags)
    g = torch.zeros(5, 3)
    g[1] = 1.0
    w.grad, p.grad = torch.ones(2), g.to_sparse() if layout == "coo" else g.to_sparse_csr()
    with pytest.raises(RuntimeError, match=f"^{name}: optimlab's optimizers step dense "
                                           r"\(strided\) parameters; got a sparse one"):
        opt.step()
    assert torch.equal(w, torch.ones(2)) and torch.equal(p.detach().to_dense(), dense)
    assert not opt.state[w] and not opt.state[p]


def _check(model, sequential, monkeypatch):
    from optimlab import cli

    monkeypatch.setattr("optimlab.bench.sweep.new_model", lambda task, name: model)
    task = types.SimpleNamespace(name="mytask", default_model="net")
    cli._check_dense(["adam", "sparseadam"], task,
                     argparse.Namespace(model=None, sequential=sequential))


class _Mixed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.EmbeddingBag(50, 4, mode="sum", sparse=True)
        self.out = torch.nn.Linear(4, 2)


@pytest.mark.parametrize("sequential", [False, True])
def test_bench_suggests_sequential_for_sparseadam_only_where_every_gradient_is_sparse(
        sequential, monkeypatch):
    """--sequential was suggested for any model with a sparse embedding, and then every run
    failed on the dense gradients of the model's other layers."""
    from optimlab.cli import CLIError

    with pytest.raises(CLIError, match="sparseadam takes sparse gradients only") as error:
        _check(_Mixed(), sequential, monkeypatch)
    message = str(error.value)
    assert "--sequential" not in message
    assert "gives dense gradients to 2 of its 3 parameters" in message
    assert "(adagrad, sgd)" in message and "SparseAdam" in message
    # a model that is all sparse embeddings: --sequential trains it, and is suggested
    embeddings = torch.nn.Sequential(torch.nn.Embedding(9, 2, sparse=True),
                                     torch.nn.EmbeddingBag(9, 2, sparse=True))
    if sequential:
        _check(embeddings, True, monkeypatch)
    else:
        with pytest.raises(CLIError, match="pass --sequential"):
            _check(embeddings, False, monkeypatch)


def test_sam_refuses_sparse_gradients_whatever_its_base_as_its_record_says():
    """SAM's catalog said sparse gradients work "as the base optimizer"; SAM refuses them
    with SGD or Adagrad too. The record and its docs page say so, and the refusal says what to
    use instead."""
    from optimlab.web.docs import _capabilities

    info = _info("sam")
    assert info.sparse.startswith("no: SAM refuses sparse gradients")
    assert dict(_capabilities(info))["sparse gradients"] == "no"
    emb = torch.nn.Embedding(5, 3, sparse=True)
    opt = optimlab.SAM(emb.parameters(), base_optimizer=optimlab.Adagrad, lr=0.1)

    def closure():
        opt.zero_grad()
        loss = emb(torch.tensor([1, 2])).sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="^SAM does not support sparse gradients, whatever its "
                                           "base optimizer.*SGD or Adagrad alone"):
        opt.step(closure)


def test_lookahead_steps_sparse_gradients_through_its_inner_optimizer_as_its_record_says():
    """Lookahead(Adagrad) steps an embedding's sparse gradients; its docs page said "no". Its
    record says yes, and it refuses torch.optim.SparseAdam as it refuses optimlab's (both
    take sparse gradients only)."""
    from optimlab.web.docs import _capabilities

    info = _info("lookahead")
    assert info.capabilities.sparse and dict(_capabilities(info))["sparse gradients"] == "yes"
    assert "Adagrad or SGD" in info.sparse
    emb = torch.nn.Embedding(5, 3, sparse=True)
    before = emb.weight.detach().clone()
    opt = optimlab.Lookahead(optimlab.Adagrad(emb.parameters(), lr=0.1), k=2)
    for _ in range(3):
        opt.zero_grad()
        emb(torch.tensor([1, 1])).sum().backward()
        opt.step()
    assert torch.equal(emb.weight[0], before[0]) and not torch.equal(emb.weight[1], before[1])
    for cls in (optimlab.SparseAdam, torch.optim.SparseAdam):
        with pytest.raises(ValueError, match="^Lookahead cannot wrap SparseAdam: it takes sparse "
                                             "gradients only.*wrap Adagrad or SGD"):
            optimlab.Lookahead(cls(emb.parameters()))


def test_lbfgs_record_says_it_densifies_sparse_gradients_as_torch_does():
    """LBFGS steps nn.Embedding(sparse=True) as torch.optim.LBFGS does (making the gradient
    dense); its catalog said "dense gradients only"."""
    assert "made dense" in _info("lbfgs").sparse
    results = []
    for module in (torch.optim, optimlab):
        torch.manual_seed(0)
        emb = torch.nn.Embedding(6, 3, sparse=True)
        idx = torch.tensor([1, 1, 4])
        opt = module.LBFGS(emb.parameters(), lr=0.5, max_iter=5)

        def closure():
            opt.zero_grad()
            loss = (emb(idx) ** 2).sum() + emb(idx).sum()
            loss.backward()
            return loss

        for _ in range(2):
            opt.step(closure)
        results.append(emb.weight.detach().clone())
    assert torch.equal(*results)
