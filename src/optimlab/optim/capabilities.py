"""What each optimizer can do, in one record per class, and what counts as a hyperparameter.

Every optimizer class carries a :class:`Capabilities` record beside its code
(``capabilities = Capabilities(fusable=True)``); the catalog exposes it
(:attr:`optimlab.optim.catalog.Info.capabilities`), and the engine, the registry, the
population engine, the web API, the command line and the tests read it. Nothing outside
this record checks an optimizer's name to decide what it can do.

Hyperparameters come in three kinds, as torch's ``OptimizerInfo`` sorts them:

* the rule's own (``lr``, ``betas``, ``amsgrad``): they change what a step computes;
* the driver's flags (:data:`DRIVER_FLAGS`: ``maximize``, ``foreach``, ``fused``, ...): they
  change how a step runs, never its result beyond the sign of the gradient;
* per-group running state (:attr:`Capabilities.running`, e.g. schedule-free's ``k``): kept in
  the param group so a checkpoint carries it, but written by the optimizer, not set by users.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

__all__ = ["Capabilities", "DRIVER_FLAGS", "NOT_HYPERPARAMETERS", "BATCHING", "hyperparameters",
           "MEMBER_WEIGHT", "CLOSURE_WEIGHT", "CLOSURE_EVALUATIONS", "HISTORY_SIZE", "NS_STEPS",
           "closure_evaluations"]

#: how a population batches members: the rule broadcasts as is, is mapped with
#: ``torch.func.vmap`` (it reduces over whole tensors), or runs one instance per member
BATCHING = ("elementwise", "vmap", "member")

#: :meth:`Capabilities.work_weight` of a rule that a population runs member by member, against
#: 1 for one it batches (elementwise or with vmap). Measured on a 2-core AMD EPYC, in
#: microseconds per member-step: a race of 20 racers, Adam 19.5, SOAP 96, PSGD-Kron 355;
#: a basins map of 400 starts, Adam 2.8, Adafactor 86, Shampoo 92, SOAP 114, Prodigy 124,
#: PSGD-Kron 272. Ten keeps every such rule within about 10x of Adam's time per unit.
MEMBER_WEIGHT = 10.0
#: the further factor for a rule whose every member runs a closure of its own each step
#: (L-BFGS: up to ``max_iter`` evaluations a step), at :data:`CLOSURE_EVALUATIONS` a step:
#: 1340 us per member-step in that race, 1125 in that basins map, about ten times the other
#: member-by-member rules (runs whose steps mostly stop early; one that never stops early,
#: L-BFGS at lr 1e-3 on Rosenbrock, takes 26 ms a step there: 1.3 ms an evaluation)
CLOSURE_WEIGHT = 10.0
#: closure evaluations a step at which :data:`CLOSURE_WEIGHT` holds (L-BFGS's default
#: ``max_iter``); a step allowed more (or fewer) evaluations weighs in proportion
CLOSURE_EVALUATIONS = 20
#: curvature pairs at which :data:`CLOSURE_WEIGHT` holds (L-BFGS's default ``history_size``):
#: its two-loop recursion runs over every pair kept, at each inner iteration, so a step
#: keeping more weighs in proportion (40 steps of L-BFGS at ``max_iter`` 100 on 2 cores:
#: 6.5 s with 100 pairs, 87 s with 1000)
HISTORY_SIZE = 100
#: Newton-Schulz iterations a step at which a matrix rule's weight holds (Muon's default
#: ``ns_steps``); a step making more weighs in proportion (20 Muon members x 1000 steps: 4.2 s
#: at 5 iterations, 27.9 s at 99)
NS_STEPS = 5

#: the driver's flags: how a step runs, not what it computes
DRIVER_FLAGS = frozenset({"maximize", "foreach", "fused", "differentiable", "capturable",
                          "skip_nonfinite", "state_precision"})

#: constructor arguments that are no hyperparameter at all
NOT_HYPERPARAMETERS = frozenset({"self", "params", "optimizer"})

#: how a refusal of an optimizer of sparse gradients only (``Capabilities.sparse_only``)
#: says what it takes, and why the lab's batched runs cannot give it that: one wording for
#: populations, sweeps and the advisor
SPARSE_ONLY = "takes sparse gradients only (nn.Embedding(sparse=True))"
DENSE_HERE = "races, the playground and populations give dense ones"


@dataclass(frozen=True)
class Capabilities:
    """What one optimizer class can do.

    Attributes:
        batching: how :class:`~optimlab.optim.population.Population` runs it over a member
            axis, one of :data:`BATCHING`.
        multi_tensor: the rule runs over a whole group at once as a
            :class:`~optimlab.optim.multi_tensor.TensorList` (False: tensor by tensor, for
            rules that read values with ``.item()`` or need matrix shapes).
        fusable: the rule can run as a generated fused kernel (``fused=`` is accepted).
        sparse: sparse gradients are stepped (``update`` accepts them; a wrapper passes them
            to a wrapped optimizer that does). Where it is False the engine refuses a sparse
            gradient before anything of the group steps.
        single_group: it takes one parameter group only (LBFGS: one curvature model of
            all its parameters).
        sparse_only: it takes sparse gradients only (SparseAdam); the consumers whose
            gradients are dense (races, the playground, populations) refuse it by name.
        needs_matrix: every parameter must be a matrix (Muon).
        needs_closure: :meth:`~torch.optim.Optimizer.step` needs a closure (SAM evaluates the
            loss twice, LBFGS as often as its line search needs).
        two_phase: the closure runs between ``first_step()`` and ``second_step()`` (SAM), so
            a population evaluates every member's gradient with one closure call (and where
            it raises, ``undo_first_step()`` puts each member back); a closure optimizer
            without it gets a closure of its own per member.
        wraps: the constructor keyword naming the optimizer it wraps, or None.
        complex: complex parameters are stepped as their real view.
        running: names of per-group running state kept in the param group.
        moments: the state entries that are signed running averages (a momentum, a first
            moment): ``state_precision`` may keep them compact (:mod:`optimlab.optim.compact`).
        group_coupled: the step reads statistics of the whole param group (Prodigy's and
            D-Adaptation's step size ``d``), so splitting a group changes the path.
        second_moments: the same for entries that are never negative (a second moment, an
            accumulated square), which the 8-bit form encodes with an unsigned code.
        reduces_when: switches of the rule that, when on, make an elementwise rule reduce
            over each whole tensor (``cautious`` counts the coordinates it keeps): a
            population then maps its members with vmap (:meth:`batching_for`).
        shared: numeric hyperparameters a population's members must share: the rule reads
            them as Python numbers (Muon's ``ns_coefficients``, the ``beta``/``alpha`` of a
            matrix product), so they cannot be per-member columns.
        shards: each element's step needs that element alone, so the rule steps each
            process's shard of an FSDP2-sharded parameter (:meth:`shards_for`; not with a
            ``state_precision``). None: where it batches elementwise; True for a rule that
            batches per member for another reason (schedule-free's per-group averaging
            weights).
    """

    batching: str = "elementwise"
    multi_tensor: bool = True
    fusable: bool = False
    sparse: bool = False
    sparse_only: bool = False
    single_group: bool = False
    needs_matrix: bool = False
    needs_closure: bool = False
    two_phase: bool = False
    wraps: str | None = None
    complex: bool = True
    running: tuple[str, ...] = ()
    group_coupled: bool = False
    moments: tuple[str, ...] = ()
    second_moments: tuple[str, ...] = ()
    reduces_when: tuple[str, ...] = ()
    shared: tuple[str, ...] = ()
    shards: bool | None = None

    def __post_init__(self) -> None:
        if self.sparse_only and not self.sparse:
            raise ValueError("sparse_only needs sparse=True")
        if self.batching not in BATCHING:
            raise ValueError(f"batching must be one of {BATCHING}, got {self.batching!r}")

    @property
    def compact_moments(self) -> dict[str, bool]:
        """The buffers ``state_precision`` compacts, each with whether it is signed."""
        return {**{name: True for name in self.moments},
                **{name: False for name in self.second_moments}}

    def batching_for(self, hparams: dict) -> str:
        """How a population batches members with these hyperparameters: :attr:`batching`,
        or ``"vmap"`` where a switch in :attr:`reduces_when` is on."""
        if self.batching == "elementwise" and any(hparams.get(k) for k in self.reduces_when):
            return "vmap"
        return self.batching

    def work_weight(self, hparams: dict | None = None) -> float:
        """The rough cost of one member-step of a batched run (a population, a race, a basins
        map) in units of an elementwise rule's: 1 where members batch (elementwise or
        vmap), :data:`MEMBER_WEIGHT` where they run one by one, twice that for a
        :attr:`two_phase` rule (two gradients a step), and :data:`CLOSURE_WEIGHT` times more
        for a rule whose members each run their own closure (L-BFGS), scaled by the
        evaluations its step may make against :data:`CLOSURE_EVALUATIONS`
        (:func:`closure_evaluations`), never below :data:`MEMBER_WEIGHT`; times the
        :meth:`step_scales` of the hyperparameters a step's cost grows with (L-BFGS's
        ``history_size``, a matrix rule's ``ns_steps``). What the playground's work limits
        count (:func:`optimlab.optim.registry.work_weight` adds the wrapped optimizer's); an
        order of magnitude, not a timing.

        >>> lbfgs = Capabilities(batching="member", needs_closure=True)
        >>> lbfgs.work_weight(), lbfgs.work_weight({"max_iter": 100}), lbfgs.work_weight({"max_iter": 1})
        (100.0, 500.0, 10.0)
        >>> lbfgs.work_weight({"max_iter": 100, "history_size": 1000})
        5000.0
        >>> Capabilities(batching="vmap", needs_matrix=True).work_weight({"ns_steps": 50})
        10.0
        """
        hparams = hparams or {}
        cost = 1.0
        if self.batching_for(hparams) == "member":
            cost = MEMBER_WEIGHT * (2.0 if self.two_phase else 1.0)
            if self.needs_closure and not self.two_phase:
                cost *= max(1.0, CLOSURE_WEIGHT * closure_evaluations(hparams) / CLOSURE_EVALUATIONS)
        for _, factor in self.step_scales(hparams).values():
            cost *= factor
        return cost

    def step_scales(self, hparams: dict) -> dict[str, tuple[float, float]]:
        """The hyperparameters in ``hparams`` that make a step cost more than at their
        defaults, each with its value and the factor :meth:`work_weight` counts (its value
        over the default, where above it): ``history_size`` of a rule whose members each run
        their own closure (L-BFGS: :data:`HISTORY_SIZE`), ``ns_steps`` of a rule that needs
        matrices (Muon: :data:`NS_STEPS`).

        >>> Capabilities(needs_matrix=True).step_scales({"ns_steps": 99, "history_size": 1000})
        {'ns_steps': (99.0, 19.8)}
        """
        scaled = {}
        if self.needs_closure and not self.two_phase:
            scaled["history_size"] = HISTORY_SIZE
        if self.needs_matrix:
            scaled["ns_steps"] = NS_STEPS
        out = {}
        for key, default in scaled.items():
            value = hparams.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > default:
                out[key] = (float(value), value / default)
        return out

    def shards_for(self, hparams: dict) -> bool:
        """Whether the rule, with these hyperparameters, steps a parameter's local shard as
        it would step the whole parameter (a switch in :attr:`reduces_when` that is on says
        no, and so does a ``state_precision``: its int8 blocks and bfloat16 dither are laid
        over the whole parameter)."""
        if hparams.get("state_precision") is not None \
                or any(hparams.get(k) for k in self.reduces_when):
            return False
        return self.batching == "elementwise" if self.shards is None else self.shards

    @property
    def wrapper(self) -> bool:
        """Whether the optimizer wraps another one."""
        return self.wraps is not None


def closure_evaluations(hparams: dict) -> int:
    """The most closure evaluations one step of a closure rule may make with ``hparams``: its
    ``max_eval`` with a line search (each trial evaluates), else at most one per inner
    iteration, ``max_iter``, and no more than ``max_eval``; where ``hparams`` leave them out,
    :data:`CLOSURE_EVALUATIONS` iterations and ``max_eval`` 1.25 times them (L-BFGS's
    defaults).

    >>> closure_evaluations({}), closure_evaluations({"max_iter": 100, "max_eval": 30})
    (20, 30)
    >>> closure_evaluations({"line_search_fn": "strong_wolfe"})
    25
    """
    iterations = hparams.get("max_iter") or CLOSURE_EVALUATIONS
    most = hparams.get("max_eval") or iterations * 5 // 4
    return most if hparams.get("line_search_fn") else min(iterations, most)


def hyperparameters(cls: type) -> dict:
    """The rule's own hyperparameters of ``cls`` with their defaults (from its constructor):
    no driver flag, no per-group running state, not the parameters.

    A constructor that passes ``**kwargs`` on (``class MyAdam(Adam): def __init__(self,
    params, lr=1e-3, **kw)``) has its parent's too, those it does not name itself, up the
    classes until a constructor without ``**kwargs`` or one of the bases that take a
    ``defaults`` dict (:class:`~optimlab.optim.base.RuleOptimizer`, ``torch.optim.Optimizer``)."""
    caps: Capabilities = getattr(cls, "capabilities", Capabilities())
    skip = NOT_HYPERPARAMETERS | DRIVER_FLAGS | set(caps.running)
    return {
        name: parameter.default
        for name, parameter in _constructor_parameters(cls).items()
        if name not in skip and parameter.default is not inspect.Parameter.empty
    }


def _constructor_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The named parameters of ``cls``'s constructor, followed through ``**kwargs`` to the
    constructors of its bases (see :func:`hyperparameters`)."""
    named: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            parameters = inspect.signature(init).parameters
        except (TypeError, ValueError):
            break
        if named and "defaults" in parameters:  # a base: its keywords are no rule's
            break
        forwards = False
        for name, parameter in parameters.items():
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                forwards = True
            elif parameter.kind is not inspect.Parameter.VAR_POSITIONAL:
                named.setdefault(name, parameter)
        if not forwards:
            break
    return named
