"""The catalog table, the registry that reads it, and the README generated from it."""

import inspect
import re
from pathlib import Path

import pytest
import torch

import optimlab
from optimlab.cli import catalog_table
from optimlab.optim.catalog import ALIASES, TABLE, documented_arguments
from tests.optim.cases import CASES
from tests.oracles import package_reference

TEXT_FIELDS = ["paper", "url", "memory_note", "decoupled_weight_decay", "sparse", "rule_text",
               "tuning", "strengths", "weaknesses", "typical_use", "reference"]
REQUIRED = {"SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW", "Adamax", "NAdam",
            "RAdam", "Adafactor", "ASGD", "Rprop", "Muon", "LAMB", "Lion", "AdaBelief", "SAM",
            "Lookahead", "ScheduleFreeAdamW",
            # issue 15: the optimizers practitioners reach for now
            "Signum", "SparseAdam", "Yogi", "AdEMAMix", "ADOPT", "LARS", "LBFGS",
            "ScheduleFreeSGD",
            "PSGDKron",
            "Prodigy",
            "MARS",
            "LaProp", "NovoGrad",
            "DAdaptAdam", "DAdaptSGD",
            "AdamMini",
            "Sophia",
            "SOAP", "Shampoo"}


def test_every_required_algorithm_is_in_the_table_and_exported():
    names = {info.cls.__name__ for info in TABLE}
    assert names == REQUIRED
    for name in REQUIRED:
        assert getattr(optimlab, name).__name__ == name
        assert issubclass(getattr(optimlab, name), torch.optim.Optimizer)


@pytest.mark.parametrize("info", TABLE, ids=lambda i: i.name)
def test_entry_is_complete(info):
    assert info.name == info.cls.__name__.lower()
    for field in TEXT_FIELDS:
        assert getattr(info, field).strip(), field
    assert 1950 <= info.year <= 2026
    assert info.url.startswith("https://")
    assert "\\" in info.rule_latex, "the class docstring needs a .. math:: block"
    assert info.url in info.cls.__doc__ or info.url.split("/")[-1] in info.cls.__doc__
    assert info.reference.startswith(("torch.optim.", "schedulefree.", "optax.")) \
        or info.reference == "oracle" \
        or info.reference in {m.name for m in package_reference.MAPPINGS.values()}
    assert info.cls.__name__ in CASES, "every optimizer needs a line in tests/optim/cases.py"


@pytest.mark.parametrize("info", TABLE, ids=lambda i: i.name)
def test_the_docstring_documents_every_argument_and_no_other(info):
    # AdamMini's once documented ``state_precision``, which it refuses with TypeError
    parameters = inspect.signature(info.cls.__init__).parameters.values()
    taken = {p.name for p in parameters if p.name != "self"}
    collected = {p.name for p in parameters if p.kind is p.VAR_KEYWORD}  # SAM's **base_kwargs
    documented = info.arguments
    assert set(documented) == taken, (
        f"documented but not taken: {sorted(set(documented) - taken)}; "
        f"taken but not documented: {sorted(taken - set(documented))}")
    for name, (kind, text) in documented.items():
        assert text and (kind or name in collected), f"{name}: needs a type and a description"
    for name, default in info.defaults.items():  # a default the docstring states is true
        said = re.search(r"default: ([^)]*)", documented[name][1])
        if said and isinstance(default, (int, float)) and not isinstance(default, bool):
            assert _number(said.group(1)) == pytest.approx(default), (name, said.group(1))


def _number(text: str) -> float | None:
    try:
        return float(text.strip().rstrip(".").split()[0].rstrip(",;"))
    except ValueError:
        return None


def test_documented_arguments_reads_shared_entries_and_continuations():
    doc = """Title.

    Args:
        params (iterable): the parameters.
        lr (float, optional): the rate,
            on two lines (default: 1e-3).
        a, b (bool, optional): both at once.
        **rest: passed on.

    Example:
        >>> 1
    """
    assert documented_arguments(doc) == {
        "params": ("iterable", "the parameters."),
        "lr": ("float, optional", "the rate, on two lines (default: 1e-3)."),
        "a": ("bool, optional", "both at once."), "b": ("bool, optional", "both at once."),
        "rest": ("", "passed on.")}
    assert documented_arguments("No sections.") == {}


def test_available_lists_classes_and_aliases_with_metadata():
    entries = {e.name: e for e in optimlab.available()}
    assert {info.name for info in TABLE} <= set(entries)
    assert {"gd", "sgd", "momentum", "nag", "amsgrad"} <= set(entries)
    adam = entries["adam"]
    assert (adam.year, adam.family, adam.memory) == (2015, "adam", 2)
    assert "Kingma" in adam.paper


def test_create_applies_alias_presets():
    params = [torch.zeros(3, requires_grad=True)]
    momentum = optimlab.create("momentum", params, lr=0.1)
    assert isinstance(momentum, optimlab.SGD)
    assert momentum.defaults["momentum"] == 0.9 and momentum.defaults["lr"] == 0.1
    nag = optimlab.create("NAG", params, lr=0.1)
    assert nag.defaults["nesterov"] is True
    assert optimlab.create("amsgrad", params).defaults["amsgrad"] is True
    assert optimlab.create("momentum", params, momentum=0.5).defaults["momentum"] == 0.5
    classes = {info.name: info.cls for info in TABLE}
    for alias in ALIASES:
        assert type(optimlab.create(alias.name, params)) is classes[alias.target]


def test_create_builds_every_name():
    for entry in optimlab.available():
        params = [torch.zeros(3, 2, requires_grad=True)]
        assert isinstance(optimlab.create(entry.name, params), torch.optim.Optimizer)


def test_create_builds_wrappers_by_name():
    params = [torch.zeros(3, 2, requires_grad=True)]
    sam = optimlab.create("sam", params, base_optimizer="momentum", rho=0.1, lr=0.2)
    assert isinstance(sam.base_optimizer, optimlab.SGD)
    assert sam.param_groups[0]["momentum"] == 0.9 and sam.param_groups[0]["lr"] == 0.2
    look = optimlab.create("lookahead", params, inner="adamw", k=3, alpha=0.6, lr=0.01)
    assert isinstance(look.optimizer, optimlab.AdamW)
    assert (look.k, look.alpha, look.param_groups[0]["lr"]) == (3, 0.6, 0.01)


def test_unknown_name_suggests_close_ones():
    with pytest.raises(ValueError, match="did you mean adam"):
        optimlab.create("adma", [torch.zeros(1, requires_grad=True)])


def test_readme_algorithm_list_is_generated_from_the_table():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert catalog_table(markdown=True) in readme, (
        "README's algorithm list is stale: paste the output of `optimlab list --markdown`")


def test_step_cost_follows_the_capability_record_and_the_wrapped_optimizer():
    from optimlab.optim.capabilities import CLOSURE_WEIGHT, MEMBER_WEIGHT
    from optimlab.optim.registry import resolve, work_weight

    for info in TABLE:
        caps = info.capabilities
        expected = 1.0 if caps.batching != "member" else \
            MEMBER_WEIGHT * (2 if caps.two_phase else 1) * \
            (CLOSURE_WEIGHT if caps.needs_closure and not caps.two_phase else 1)
        assert work_weight(info.name) == expected, info.name
    assert work_weight("adam") == 1 and work_weight("soap") == MEMBER_WEIGHT
    assert work_weight("lbfgs") == MEMBER_WEIGHT * CLOSURE_WEIGHT  # a line search per member
    # a wrapper costs its own times its inner optimizer's
    assert work_weight("sam", {"base_optimizer": "adam"}) == work_weight("sam")
    assert work_weight("lookahead", {"inner": "lbfgs"}) == work_weight("lookahead") * \
        work_weight("lbfgs")
    # a switch that makes an elementwise rule reduce maps it with vmap: still batched
    switched = [(e.name, k) for e in (resolve(i.name) for i in TABLE)
                for k in e.capabilities.reduces_when]
    assert switched
    for name, key in switched:
        assert work_weight(name, {key: True}) == 1.0, name


#: entries whose extra memory is not a count of parameter-sized state tensors: a wrapper
#: keeps its own copy plus its inner optimizer's, L-BFGS a history of ``history_size``
#: vectors filled over steps, PSGD-Kron one factor per dimension, SparseAdam steps only
#: sparse gradients
_MEMORY_NOT_COUNTED = {"sam", "lookahead", "lbfgs", "psgdkron", "sparseadam"}


@pytest.mark.parametrize("name", [e.name for e in optimlab.optim.registry.available()
                                  if optimlab.optim.registry.is_builtin(e.name)])
def test_the_extra_memory_is_the_state_the_optimizer_keeps(name):
    """`momentum`, `nag` and `amsgrad` said the memory of their class's defaults (0, 0 and 2)
    where they keep 1, 1 and 3 buffers: an alias names its own. Counted as the state
    tensors with as many numbers as the parameter after two steps (Prodigy keeps s and x0
    flat)."""
    from optimlab.optim.registry import resolve

    entry = resolve(name)
    if name in _MEMORY_NOT_COUNTED:
        pytest.skip("its extra memory is not a count of parameter-sized buffers")
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(6, 5))
    opt = entry.cls([p], **entry.preset)

    def closure():
        opt.zero_grad()
        loss = (p ** 2).sum()
        loss.backward()
        return loss

    for _ in range(2):
        opt.step(closure)
    kept = sorted(key for key, value in opt.state[p].items()
                  if torch.is_tensor(value) and value.numel() == p.numel())
    assert len(kept) == entry.memory, (kept, entry.memory, entry.memory_note)
    # the words lead with that number where they lead with one (Adafactor's: "sublinear")
    leading = re.match(r"[0-9.]+", entry.memory_note)
    assert leading is None or float(leading.group()) == entry.memory, entry.memory_note
