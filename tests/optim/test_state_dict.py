"""state_dict round trips resume exactly; foreign or mismatched state is refused."""

import copy
import io

import pytest
import torch

import optimlab
from tests.optim.cases import ALL_CASES
from tests.problems import loss_fn, make_params, train_steps


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_resume_is_bit_identical(case):
    sign = -1.0 if case.maximize else 1.0
    params = make_params(torch.float64, case.shapes)
    opt = case.build(params)
    train_steps(opt, params, 200, sign, case.needs_closure)

    params_a = make_params(torch.float64, case.shapes)
    opt_a = case.build(params_a)
    train_steps(opt_a, params_a, 100, sign, case.needs_closure)
    buffer = io.BytesIO()
    torch.save({"opt": opt_a.state_dict(), "params": [p.detach() for p in params_a]}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)

    params_b = [p.clone().requires_grad_() for p in saved["params"]]
    opt_b = case.build(params_b)
    opt_b.load_state_dict(saved["opt"])
    train_steps(opt_b, params_b, 100, sign, case.needs_closure)

    for uninterrupted, resumed in zip(params, params_b):
        assert torch.equal(uninterrupted, resumed)


def _entries(opt):
    return [(key, value.dtype, value.device) for state in opt.state.values()
            for key, value in sorted(state.items()) if isinstance(value, torch.Tensor)]


@pytest.mark.parametrize("precision", [None, "int8"])
@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_bfloat16_parameters_resume_with_their_state_as_it_was_kept(case, precision):
    """torch's load casts floating state to the parameter's dtype; what an optimizer keeps
    in float32 beside bfloat16 parameters (SOAP's and Shampoo's factors, PSGD-Kron's, ASGD's
    scalars, the 8-bit moments' block scales) comes back as it was, so the resumed run is
    the uninterrupted one, bit for bit."""
    if precision and not case.capabilities.compact_moments:
        pytest.skip("no moments to keep compact")
    extra = {"state_precision": precision} if precision else {}
    sign = -1.0 if case.maximize else 1.0
    params = make_params(torch.bfloat16, case.shapes)
    opt = case.build(params, **extra)
    train_steps(opt, params, 6, sign, case.needs_closure)
    params_a = make_params(torch.bfloat16, case.shapes)
    opt_a = case.build(params_a, **extra)
    train_steps(opt_a, params_a, 3, sign, case.needs_closure)
    saved = copy.deepcopy(opt_a.state_dict())
    params_b = [p.detach().clone().requires_grad_() for p in params_a]
    opt_b = case.build(params_b, **extra)
    opt_b.load_state_dict(saved)
    assert _entries(opt_b) == _entries(opt_a)
    train_steps(opt_b, params_b, 3, sign, case.needs_closure)
    for uninterrupted, resumed in zip(params, params_b):
        assert torch.equal(uninterrupted, resumed)


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_state_dict_from_other_model_is_refused(case):
    params = make_params(torch.float64, case.shapes)
    opt = case.build(params)
    train_steps(opt, params, 3, 1.0, case.needs_closure)
    saved = copy.deepcopy(opt.state_dict())

    fewer = make_params(torch.float64, case.shapes[:1])
    with pytest.raises(ValueError):
        case.build(fewer).load_state_dict(saved)

    bigger_shapes = [tuple(s + 1 for s in shape) for shape in case.shapes]
    other = make_params(torch.float64, bigger_shapes)
    with pytest.raises(ValueError, match="shape|another model"):
        case.build(other).load_state_dict(saved)


def test_state_dict_from_other_optimizer_is_refused():
    params = make_params()
    sgd = optimlab.SGD(params, lr=0.1, momentum=0.9)
    sgd.zero_grad()
    loss_fn(params).backward()
    sgd.step()
    with pytest.raises(ValueError, match="optimlab.SGD.*optimlab.Adam"):
        optimlab.Adam(params).load_state_dict(sgd.state_dict())
    untagged = {k: v for k, v in sgd.state_dict().items() if k != "optimlab"}
    with pytest.raises(ValueError, match="different optimizer"):
        optimlab.Adam(params).load_state_dict(untagged)


def test_torch_state_dict_loads_into_optimlab():
    """Drop-in: a checkpoint written by torch.optim.Adam resumes in optimlab.Adam."""
    ref_params = make_params()
    ref = torch.optim.Adam(ref_params, lr=0.01)
    train_steps(ref, ref_params, 20, 1.0, False)
    params = [p.detach().clone().requires_grad_() for p in ref_params]
    ours = optimlab.Adam(params, lr=0.01)
    # deepcopy: torch's state_dict holds its live state tensors, which it updates in place
    ours.load_state_dict(copy.deepcopy(ref.state_dict()))
    train_steps(ref, ref_params, 20, 1.0, False)
    train_steps(ours, params, 20, 1.0, False)
    for a, b in zip(params, ref_params):
        assert torch.equal(a, b)



@pytest.mark.parametrize("name", ["RMSprop", "Adam", "Adagrad", "NAdam"])
def test_a_torch_checkpoint_keeps_the_optimizers_own_engine(name):
    """A checkpoint of torch.optim.RMSprop has no "fused" key and Adam's says None; loaded
    into an optimizer built with fused=False, either turned the fused kernel on, and the
    float32 run left torch's numbers by a rounding. The optimizer's own choice stays."""
    ref_params = make_params(torch.float32)
    ref = getattr(torch.optim, name)(ref_params, lr=0.01)
    train_steps(ref, ref_params, 5, 1.0, False)
    params = [p.detach().clone().requires_grad_() for p in ref_params]
    ours = getattr(optimlab, name)(params, lr=0.01, fused=False)
    ours.load_state_dict(copy.deepcopy(ref.state_dict()))
    assert ours.param_groups[0]["fused"] is False
    train_steps(ref, ref_params, 20, 1.0, False)
    train_steps(ours, params, 20, 1.0, False)
    for a, b in zip(params, ref_params):
        assert torch.equal(a, b), (a - b).abs().max()
    # and an optimlab checkpoint written by the fused engine loads into a plain one
    fused = getattr(optimlab, name)([p.detach().clone() for p in params], lr=0.01)
    assert fused.param_groups[0]["fused"] is None
    ours.load_state_dict(fused.state_dict())
    assert ours.param_groups[0]["fused"] is False


@pytest.mark.parametrize("name", ["Adam", "AdamW", "NAdam", "RAdam", "Adamax", "Adagrad",
                                  "ASGD", "Rprop", "Adadelta", "RMSprop"])
def test_a_checkpoint_with_numbers_for_its_step_resumes_as_with_tensors(name):
    """torch before 1.12 saved ``step`` (and ASGD's ``eta`` and ``mu``) as Python numbers;
    torch's classes still load such a checkpoint, and here it resumes exactly as the same
    checkpoint with tensors does, its state tensors again."""
    ref_params = make_params()
    ref = getattr(torch.optim, name)(ref_params)
    train_steps(ref, ref_params, 3, 1.0, False)
    saved = copy.deepcopy(ref.state_dict())
    old = copy.deepcopy(saved)
    for entries in old["state"].values():
        for key in ("step", "eta", "mu"):
            if key in entries:
                value = entries[key].item()
                entries[key] = int(value) if key == "step" else value
    results = []
    for checkpoint in (old, saved):
        params = [p.detach().clone().requires_grad_() for p in ref_params]
        opt = getattr(optimlab, name)(params)
        opt.load_state_dict(checkpoint)
        train_steps(opt, params, 3, 1.0, False)
        results.append((params, opt.state_dict()["state"]))
    (ours, our_state), (theirs, their_state) = results
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    for pid, entries in their_state.items():
        for key, value in entries.items():
            mine = our_state[pid][key]
            assert torch.is_tensor(mine) and mine.dtype == value.dtype, key
            assert torch.equal(mine, value), key

# -- torch's state_dict hooks on the wrappers ---------------------------------------------
# SAM and Lookahead build their own dicts (the base/inner optimizer's state plus their
# own), so the four hooks torch.optim.Optimizer offers must still reach them.

WRAPPERS = ["SAM", "Lookahead"]


def _wrapper(kind):
    params = make_params()
    if kind == "SAM":
        opt = optimlab.SAM(params, base_optimizer=optimlab.SGD, lr=0.05, momentum=0.9, rho=0.05)
    else:
        opt = optimlab.Lookahead(optimlab.Adam(params, lr=0.01), k=3, alpha=0.5)
    train_steps(opt, params, 4, 1.0, kind == "SAM")
    return opt


@pytest.mark.parametrize("kind", WRAPPERS)
def test_wrapper_state_dict_hooks_fire(kind):
    opt = _wrapper(kind)
    calls = []
    opt.register_state_dict_pre_hook(lambda o: calls.append(("pre", o, None)))
    opt.register_state_dict_post_hook(lambda o, sd: calls.append(("post", o, sd)))
    opt.register_load_state_dict_pre_hook(lambda o, sd: calls.append(("load_pre", o, sd)))
    opt.register_load_state_dict_post_hook(lambda o: calls.append(("load_post", o, None)))

    saved = copy.deepcopy(opt.state_dict())
    assert [c[0] for c in calls] == ["pre", "post"]
    opt.load_state_dict(saved)
    assert [c[0] for c in calls] == ["pre", "post", "load_pre", "load_post"]
    assert all(o is opt for _, o, _ in calls)
    post_dict, load_pre_dict = calls[1][2], calls[2][2]
    for d in (post_dict, load_pre_dict):
        assert isinstance(d, dict) and {"state", "param_groups"} <= set(d)


@pytest.mark.parametrize("kind", WRAPPERS)
def test_wrapper_state_dict_hooks_removable_and_ordered(kind):
    opt = _wrapper(kind)
    calls = []
    first = opt.register_state_dict_pre_hook(lambda o: calls.append("first"))
    opt.register_state_dict_pre_hook(lambda o: calls.append("prepended"), prepend=True)
    opt.state_dict()
    assert calls == ["prepended", "first"]
    first.remove()
    calls.clear()
    opt.state_dict()
    assert calls == ["prepended"]


@pytest.mark.parametrize("kind", WRAPPERS)
def test_wrapper_state_dict_post_hook_result_is_used(kind):
    opt = _wrapper(kind)

    def halve_lr(o, sd):
        # a replacement, not an edit: the returned dict is what torch's state_dict returns
        return {**sd, "param_groups": [{**g, "lr": g["lr"] / 2} for g in sd["param_groups"]]}

    lr = opt.param_groups[0]["lr"]
    opt.register_state_dict_post_hook(halve_lr)
    sd = opt.state_dict()
    assert sd["param_groups"][0]["lr"] == lr / 2
    assert opt.param_groups[0]["lr"] == lr  # the optimizer itself is untouched


def test_sam_state_dict_hooks_follow_torch():
    """SAM's four hooks do what torch.optim.Optimizer's do, step by step."""
    opt = _wrapper("SAM")
    lr = opt.param_groups[0]["lr"]

    # a pre hook runs before anything is read: what it changes is in the dict
    handle = opt.register_state_dict_pre_hook(
        lambda o: o.param_groups[0].update(lr=0.25))
    assert opt.state_dict()["param_groups"][0]["lr"] == 0.25
    handle.remove()
    opt.param_groups[0]["lr"] = lr

    # a post hook sees the finished dict (the optimlab tag included) and may add to it
    # in place or return a replacement, which is returned as is
    seen = []
    opt.register_state_dict_post_hook(lambda o, sd: seen.append(sd) or sd.update(note=1))
    marker = {"replaced": True}
    opt.register_state_dict_post_hook(lambda o, sd: {**sd, **marker})
    sd = opt.state_dict()
    assert seen[0]["optimlab"]["optimizer"] == "SAM" and seen[0]["note"] == 1
    assert sd["replaced"] and sd["note"] == 1 and sd["optimlab"]["base_optimizer"] == "SGD"
    saved = copy.deepcopy(sd)

    # a load pre hook gets a shallow copy to edit; a returned dict replaces it
    order = []

    def edit(o, state_dict):
        order.append("edit")
        state_dict["param_groups"] = [{**g, "lr": 0.125} for g in state_dict["param_groups"]]

    def replace(o, state_dict):
        order.append("replace")
        assert state_dict["param_groups"][0]["lr"] == 0.125  # the edit came first
        return {**state_dict,
                "param_groups": [{**g, "rho": 0.5} for g in state_dict["param_groups"]]}

    opt.register_load_state_dict_pre_hook(edit)
    opt.register_load_state_dict_pre_hook(replace)
    # a load post hook runs once everything is loaded
    opt.register_load_state_dict_post_hook(
        lambda o: order.append(("post", o.param_groups[0]["lr"], o.param_groups[0]["rho"],
                                o.base_optimizer.param_groups[0]["lr"])))
    opt.load_state_dict(saved)
    assert order == ["edit", "replace", ("post", 0.125, 0.5, 0.125)]
    assert saved["param_groups"][0]["lr"] == lr  # the caller's dict is not edited
    assert opt.param_groups is opt.base_optimizer.param_groups

    # a pre hook can fix up a dict that would not load as it is
    broken = copy.deepcopy(saved)
    broken["optimlab"] = {**broken["optimlab"], "optimizer": "Adam"}
    fresh = _wrapper("SAM")
    with pytest.raises(ValueError, match="optimlab.Adam"):
        fresh.load_state_dict(broken)
    fresh.register_load_state_dict_pre_hook(
        lambda o, d: {**d, "optimlab": {**d["optimlab"], "optimizer": "SAM"}})
    fresh.load_state_dict(broken)
    assert fresh.param_groups[0]["rho"] == saved["param_groups"][0]["rho"]


def test_sam_hooks_on_the_base_optimizer_still_fire_once():
    opt = _wrapper("SAM")
    calls = []
    opt.base_optimizer.register_state_dict_pre_hook(lambda o: calls.append(("base", o)))
    opt.register_state_dict_pre_hook(lambda o: calls.append(("sam", o)))
    opt.state_dict()
    assert calls == [("sam", opt), ("base", opt.base_optimizer)]


# Lookahead builds one dict from the inner optimizer's and its own entries; its hooks run
# around the whole of it, and the load hooks run once everything (k, alpha, the step counter
# included) is loaded.
def test_lookahead_state_dict_post_hook_sees_and_returns_the_whole_dict():
    opt = _wrapper("Lookahead")
    seen = []
    opt.register_state_dict_post_hook(lambda o, sd: seen.append(set(sd)) or {**sd, "note": 1})
    sd = opt.state_dict()
    assert seen == [{"state", "param_groups", "optimlab"}]
    assert sd["note"] == 1


def test_lookahead_load_hooks_see_the_whole_dict_and_the_loaded_optimizer():
    opt = _wrapper("Lookahead")
    saved = copy.deepcopy(opt.state_dict())
    seen = []
    opt.register_load_state_dict_pre_hook(lambda o, sd: seen.append(set(sd)))
    opt.register_load_state_dict_post_hook(lambda o: seen.append(o.la_steps))
    opt.la_steps = 99
    opt.load_state_dict(saved)
    assert seen == [{"state", "param_groups", "optimlab"}, 4]


# -- Lookahead's dict is flat, as torch.distributed.checkpoint keeps one ------------------
def _lookahead(k=3, inner_k=None, steps=0):
    params = make_params()
    inner = optimlab.Adam(params, lr=0.01)
    if inner_k is not None:
        inner = optimlab.Lookahead(inner, k=inner_k, alpha=0.3)
    opt = optimlab.Lookahead(inner, k=k, alpha=0.5)
    train_steps(opt, params, steps, 1.0, False)
    return opt, params


def _resumes(saved_of, k=3, inner_k=None):
    """7 steps, ``saved_of(opt)`` loaded into a fresh Lookahead, 5 more steps: the same
    weights as 12 steps in one go."""
    reference, ref_params = _lookahead(k, inner_k, 12)
    first, params = _lookahead(k, inner_k, 7)
    saved = saved_of(first)
    fresh, fresh_params = _lookahead(k, inner_k)
    with torch.no_grad():
        for p, q in zip(fresh_params, params):
            p.copy_(q)
    fresh.load_state_dict(saved)
    assert (fresh.k, fresh.alpha, fresh.la_steps) == (k, 0.5, 7)
    train_steps(fresh, fresh_params, 5, 1.0, False)
    return all(torch.equal(a, b) for a, b in zip(fresh_params, ref_params))


def test_lookahead_state_is_one_entry_per_parameter_and_group():
    opt, _ = _lookahead(steps=4)
    sd = opt.state_dict()
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "lookahead_slow_param"}
    assert {key: sd["param_groups"][0][key] for key in
            ("lookahead_k", "lookahead_alpha", "lookahead_steps")} == \
        {"lookahead_k": 3, "lookahead_alpha": 0.5, "lookahead_steps": 4}
    assert sd["optimlab"]["inner"]["optimizer"] == "Adam"


def test_lookahead_resumes_from_its_dict_with_or_without_the_optimlab_entry():
    assert _resumes(lambda opt: copy.deepcopy(opt.state_dict()))
    # what torch.distributed.checkpoint gives back: state and param_groups alone
    assert _resumes(lambda opt: {key: value for key, value in
                                 copy.deepcopy(opt.state_dict()).items() if key != "optimlab"})


def test_lookahead_resumes_from_the_nested_dict_of_earlier_versions():
    def nested(opt):
        inner = copy.deepcopy(opt.optimizer.state_dict())
        slow = {pid: {"slow_param": entries["lookahead_slow_param"]} for pid, entries in
                copy.deepcopy(opt.state_dict())["state"].items()}
        groups = copy.deepcopy(inner["param_groups"])
        return {"state": slow, "param_groups": groups, "inner": inner,
                "lookahead": {"k": opt.k, "alpha": opt.alpha, "la_steps": opt.la_steps},
                "optimlab": {"optimizer": "Lookahead", "inner_optimizer": "Adam"}}
    assert _resumes(nested)


def test_a_lookahead_over_a_lookahead_prefixes_its_own_keys():
    opt, _ = _lookahead(k=4, inner_k=2, steps=3)
    group = opt.state_dict()["param_groups"][0]
    assert (group["lookahead_k"], group["outer_lookahead_k"]) == (2, 4)
    assert _resumes(lambda o: copy.deepcopy(o.state_dict()), k=4, inner_k=2)


def test_an_inner_optimizers_dict_is_refused_by_a_lookahead():
    opt, _ = _lookahead(steps=2)
    untagged = {key: value for key, value in opt.optimizer.state_dict().items()
                if key != "optimlab"}
    for saved in (opt.optimizer.state_dict(), untagged):
        with pytest.raises(ValueError, match="cannot be loaded into optimlab.Lookahead"):
            opt.load_state_dict(copy.deepcopy(saved))


_NOT_STATE_DICTS = {
    "None": None, "a list": [1, 2], "a string": "state",
    "no param_groups": {"state": {}},
    "param_groups not a list": {"state": {}, "param_groups": 3},
    "a group not a dict": {"state": {}, "param_groups": [None]},
    "params not a list": {"state": {}, "param_groups": [{"params": 5}]},
    "state not a dict": {"state": [], "param_groups": [{"params": [0]}]},
}


@pytest.mark.parametrize("what", sorted(_NOT_STATE_DICTS))
@pytest.mark.parametrize("case", [c for c in ALL_CASES if c.hp == {} or c.cls_name in (
    "SAM", "Lookahead")][:40], ids=lambda c: c.id)
def test_what_is_not_a_state_dict_is_a_value_error(case, what):
    params = make_params(torch.float64, case.shapes)
    opt = case.build(params)
    with pytest.raises(ValueError, match="state_dict") as raised:
        opt.load_state_dict(_NOT_STATE_DICTS[what])
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("kind", ["sam", "lookahead"])
def test_a_wrapper_counts_the_steps_its_inner_optimizer_skipped(kind):
    p = torch.zeros(3, requires_grad=True)
    if kind == "sam":
        opt = optimlab.SAM([p], optimlab.SGD, lr=0.1, skip_nonfinite=True)
    else:
        opt = optimlab.Lookahead(optimlab.SGD([p], lr=0.1, skip_nonfinite=True))
    assert opt.skipped_steps == 0

    def closure():
        opt.zero_grad()
        loss = (p * torch.tensor([1.0, float("nan"), 0.0])).sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert opt.skipped_steps == 1
    assert torch.equal(p, torch.zeros(3))


def test_an_untagged_dict_whose_number_is_a_vector_is_refused():
    """torch.distributed.checkpoint hands back dicts without the ``optimlab`` tag: Adam-mini's
    per-block second moments (a vector) must not load where NovoGrad keeps one number."""
    params = [torch.randn(4, requires_grad=True), torch.randn(3, 3, requires_grad=True)]
    mini = optimlab.AdamMini(params)
    for p in params:
        p.grad = torch.ones_like(p)
    mini.step()
    saved = mini.state_dict()
    saved.pop("optimlab")
    with pytest.raises(ValueError, match="keeps a single number there"):
        optimlab.NovoGrad(params).load_state_dict(saved)


def test_load_state_dict_hooks_run_around_the_whole_load_as_torchs_do():
    """A pre-hook's returned dict is what loads (it was checked before the hooks ran, so a
    hook converting an old checkpoint was refused), and a post-hook sees and keeps the
    fully loaded state (its edits were overwritten by the dtype restore after it)."""
    import optimlab

    def params(dtype=torch.float32):
        torch.manual_seed(0)
        return [torch.nn.Parameter(torch.randn(3, 2, dtype=dtype))]

    ps = params()
    opt = optimlab.Adam(ps, lr=0.1)
    ps[0].grad = torch.ones(3, 2)
    opt.step()
    saved = opt.state_dict()
    old = {"state": {0: {"m": saved["state"][0]["exp_avg"], "v": saved["state"][0]["exp_avg_sq"],
                         "step": saved["state"][0]["step"]}},
           "param_groups": saved["param_groups"]}

    def convert(_, sd):
        return {"state": {k: {"exp_avg": v["m"], "exp_avg_sq": v["v"], "step": v["step"]}
                          for k, v in sd["state"].items()}, "param_groups": sd["param_groups"]}

    fresh = optimlab.Adam(params(), lr=0.1)
    fresh.register_load_state_dict_pre_hook(convert)
    fresh.load_state_dict(old)
    loaded = fresh.state[fresh.param_groups[0]["params"][0]]
    assert torch.equal(loaded["exp_avg"], saved["state"][0]["exp_avg"])

    ps = params(torch.float64)
    asgd = optimlab.ASGD(ps, lr=0.1)
    ps[0].grad = torch.ones(3, 2, dtype=torch.float64)
    asgd.step()
    seen = []

    def post(o):
        state = o.state[o.param_groups[0]["params"][0]]
        seen.append(state["eta"].dtype)
        state["eta"] = torch.full_like(state["eta"], 0.5)

    again = optimlab.ASGD(params(torch.float64), lr=0.1)
    again.register_load_state_dict_post_hook(post)
    again.load_state_dict(asgd.state_dict())
    eta = again.state[again.param_groups[0]["params"][0]]["eta"]
    assert float(eta) == 0.5 and seen == [eta.dtype]


# -- complex parameters: checkpoints in torch's form -----------------------------------------
# torch.optim keeps a complex parameter's state complex, of the parameter's shape; optimlab's
# engine steps the real view and keeps its state as that (shape (..., 2)). state_dict writes
# torch's form and load_state_dict takes both, so a checkpoint moves either way.
COMPLEX_CASES = [("Adam", {"lr": 0.05}), ("SGD", {"lr": 0.01, "momentum": 0.9}),
                 ("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": True})]
LIBRARIES = {"torch": torch.optim, "optimlab": optimlab}


def _complex_params():
    torch.manual_seed(0)
    # a real parameter of odd size first: in a flat state buffer the complex ones then sit at
    # an odd offset, where a complex view cannot be taken
    return [torch.randn(3, dtype=torch.float64, requires_grad=True),
            torch.randn(3, 2, dtype=torch.complex128, requires_grad=True),
            torch.randn(4, dtype=torch.complex128, requires_grad=True)]


def _train_complex(opt, params, steps):
    for _ in range(steps):
        opt.zero_grad()
        (sum(((w - 1j).abs() ** 2).sum() for w in params[1:]) + (params[0] ** 2).sum()).backward()
        opt.step()


def _continued(source, target, name, kwargs, convert=None):
    """Train 10 steps with ``source``'s class, save, load into ``target``'s, train 10 more."""
    params = _complex_params()
    first = getattr(LIBRARIES[source], name)(params, **kwargs)
    _train_complex(first, params, 10)
    saved = copy.deepcopy(first.state_dict())
    if convert is not None:
        saved = convert(saved)
    resumed = [p.detach().clone().requires_grad_() for p in params]
    second = getattr(LIBRARIES[target], name)(resumed, **kwargs)
    second.load_state_dict(saved)
    _train_complex(second, resumed, 10)
    return resumed


def _uninterrupted(library, name, kwargs):
    params = _complex_params()
    _train_complex(getattr(LIBRARIES[library], name)(params, **kwargs), params, 20)
    return params


@pytest.mark.parametrize("source, target", [("torch", "optimlab"), ("optimlab", "torch"),
                                            ("optimlab", "optimlab")])
@pytest.mark.parametrize("name, kwargs", COMPLEX_CASES, ids=[c[0] for c in COMPLEX_CASES])
def test_complex_state_moves_between_torch_and_optimlab(name, kwargs, source, target):
    params = _complex_params()
    ours = getattr(optimlab, name)(params, **kwargs)
    _train_complex(ours, params, 1)
    seen = []  # a post hook sees the dict as it is returned
    ours.register_state_dict_post_hook(lambda o, sd: seen.append(sd["state"]))
    saved = ours.state_dict()
    assert len(seen) == 1 and seen[0] is saved["state"]
    for pid in (1, 2):  # torch's form: complex, the parameter's shape and dtype
        for key, value in saved["state"][pid].items():
            if key != "step":
                assert (value.dtype, value.shape) == (params[pid].dtype, params[pid].shape), key
    resumed = _continued(source, target, name, kwargs)
    # the tolerance of test_basics.py::test_complex_parameters_match_torch
    for a, b in zip(resumed, _uninterrupted("torch", name, kwargs)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    if source == target:  # and within optimlab, bit for bit
        for a, b in zip(resumed, _uninterrupted("optimlab", name, kwargs)):
            assert torch.equal(a, b)


@pytest.mark.parametrize("name, kwargs", COMPLEX_CASES, ids=[c[0] for c in COMPLEX_CASES])
def test_complex_state_saved_as_the_real_view_still_loads(name, kwargs):
    """Earlier optimlab versions wrote a complex parameter's state as its real view."""
    def real_views(sd):
        return {**sd, "state": {pid: {key: torch.view_as_real(value) if value.is_complex()
                                      else value for key, value in entries.items()}
                                for pid, entries in sd["state"].items()}}

    resumed = _continued("optimlab", "optimlab", name, kwargs, convert=real_views)
    for a, b in zip(resumed, _uninterrupted("optimlab", name, kwargs)):
        assert torch.equal(a, b)


def test_complex_state_of_another_shape_is_refused_in_the_parameters_terms():
    p = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.complex64))
    ref = torch.optim.Adam([p])
    p.grad = torch.ones_like(p)
    ref.step()
    other = torch.nn.Parameter(torch.randn(5, 3, dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"has shape \(4, 3\) but the parameter needs \(5, 3\)"):
        optimlab.Adam([other]).load_state_dict(ref.state_dict())


def _skipping(kind: str, p: torch.Tensor):
    if kind == "sam":
        return optimlab.SAM([p], optimlab.Adam, lr=0.1, skip_nonfinite=True)
    inner = optimlab.Adam([p], lr=0.1, skip_nonfinite=True)
    return inner if kind == "adam" else optimlab.Lookahead(inner)


@pytest.mark.parametrize("kind", ["adam", "sam", "lookahead"])
def test_the_skip_count_goes_through_what_dcp_keeps(kind):
    """``torch.distributed.checkpoint`` keeps only ``state`` and ``param_groups``: the count
    started again at 0 after such a load. The first group carries it; the load takes it out
    of the groups again, and stepping on matches the run never saved."""
    def run(opt, p, directions):
        for direction in directions:
            def closure(direction=direction):
                opt.zero_grad()
                loss = (p * direction).sum() + (p ** 2).sum()
                loss.backward()
                return loss
            opt.step(closure)

    nan, one = torch.tensor([float("nan"), 0.0, 0.0]), torch.ones(3)
    p = torch.zeros(3, requires_grad=True)
    opt = _skipping(kind, p)
    run(opt, p, [nan, one, nan, one])
    assert opt.skipped_steps == 2
    saved = opt.state_dict()
    kept = {"state": saved["state"], "param_groups": saved["param_groups"]}  # DCP's form
    assert kept["param_groups"][0]["optimlab_skipped_steps"] == 2
    for form in (copy.deepcopy(kept), copy.deepcopy(saved)):
        q = p.detach().clone().requires_grad_()
        fresh = _skipping(kind, q)
        fresh.load_state_dict(form)
        assert fresh.skipped_steps == 2
        assert all("optimlab_skipped_steps" not in group for group in fresh.param_groups)
        run(fresh, q, [nan, one])
        assert fresh.skipped_steps == 3
    run(opt, p, [nan, one])
    assert torch.equal(q, p)


def test_without_the_guard_the_groups_are_torchs():
    """The count is written into the groups only where ``skip_nonfinite`` is on (or a step
    was skipped): a default optimizer's state_dict groups have torch's keys alone."""
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    ours, theirs = optimlab.Adam([p]), torch.optim.Adam([p])
    ours.step()
    assert "optimlab_skipped_steps" not in ours.state_dict()["param_groups"][0]
    assert set(ours.state_dict()["param_groups"][0]) <= set(theirs.state_dict()["param_groups"][0]) | {
        "cautious", "state_precision"}


def test_the_skip_count_goes_through_a_real_dcp_save_and_load(tmp_path):
    """In one process (DCP's no-process-group mode): ``get_state_dict``, ``dcp.save``,
    ``dcp.load``, ``set_state_dict`` into a fresh model and optimizer."""
    import warnings

    dcp = pytest.importorskip("torch.distributed.checkpoint")
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    def pair():
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 2)
        return model, optimlab.Adam(model.parameters(), lr=0.1, skip_nonfinite=True)

    model, opt = pair()
    for value in (float("nan"), 1.0, float("inf")):
        for p in model.parameters():
            p.grad = torch.full_like(p, value)
        opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "assuming ... a single process"
        model_state, optim_state = get_state_dict(model, opt)
        dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(tmp_path))
        fresh_model, fresh = pair()
        model_state, optim_state = get_state_dict(fresh_model, fresh)
        loaded = {"model": model_state, "optim": optim_state}
        dcp.load(loaded, checkpoint_id=str(tmp_path))
        set_state_dict(fresh_model, fresh, model_state_dict=loaded["model"],
                       optim_state_dict=loaded["optim"])
    assert (opt.skipped_steps, fresh.skipped_steps) == (2, 2)


@pytest.mark.parametrize("value, match", [("x", "lr must be a number"), (None, "lr must be a number"),
                                          (float("nan"), "lr must be a finite number")])
def test_a_saved_group_with_a_hyperparameter_no_step_can_use_is_refused(value, match):
    """An lr of "x" or None loaded, then failed 16 frames deep in the next step; a value of
    a kind no step can use is now refused before anything loads."""
    p = torch.nn.Parameter(torch.ones(3))
    opt = optimlab.Adam([p], lr=0.01)
    saved = opt.state_dict()
    bad = {**saved, "param_groups": [{**saved["param_groups"][0], "lr": value}]}
    with pytest.raises(ValueError, match=f"^param group 0 of this state_dict: {match}"):
        opt.load_state_dict(bad)
    assert opt.param_groups[0]["lr"] == 0.01  # nothing loaded


def test_a_torch_checkpoint_with_a_schedulers_keys_and_a_tensor_lr_still_loads():
    p = torch.nn.Parameter(torch.ones(3))
    theirs = torch.optim.Adam([p], lr=torch.tensor(0.01))
    sched = torch.optim.lr_scheduler.StepLR(theirs, 1)
    p.grad = torch.ones(3)
    theirs.step()
    sched.step()
    ours = optimlab.Adam([p], lr=torch.tensor(0.5))
    ours.load_state_dict(theirs.state_dict())
    assert ours.param_groups[0]["initial_lr"] == 0.01
    assert float(ours.param_groups[0]["lr"]) == pytest.approx(0.001)


@pytest.mark.parametrize("build, edit", [
    (lambda p: optimlab.Prodigy([p], lr=1.0), {"lr": 0.0}),  # a warm-up from lr 0
    (lambda p: optimlab.SGD([p], lr=0.1, momentum=0.9, nesterov=True), {"momentum": 0.0}),
    (lambda p: optimlab.Adam([p], lr=torch.tensor(0.01),
                             betas=(torch.tensor(0.9), torch.tensor(0.999))),
     {"betas": (0.85, torch.tensor(0.999))}),  # OneCycleLR's cycling writes a float beside
    (lambda p: optimlab.Adam([p], lr=0.01), {"lr": -0.01}),  # torch loads it too
])
def test_what_a_scheduler_writes_into_a_group_loads_again(build, edit):
    """The constructor's ranges and cross-checks are not applied on load: the optimizer
    stepped with these values, and its checkpoint must load (torch's does)."""
    p = torch.nn.Parameter(torch.ones(3))
    opt = build(p)
    opt.param_groups[0].update(edit)
    p.grad = torch.ones(3)
    opt.step()
    fresh = build(torch.nn.Parameter(torch.ones(3)))
    fresh.load_state_dict(opt.state_dict())
    for key, value in edit.items():
        assert str(fresh.param_groups[0][key]) == str(value)
