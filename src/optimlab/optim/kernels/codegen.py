"""Turn an optimizer rule into one fused C loop.

The rule's ``update`` is traced once with :func:`torch.fx.experimental.proxy_tensor.make_fx`
on a small example (parameter, gradient and state as 1-D tensors; step, scalar state and
numeric hyperparameters as 0-d float64 tensors). The traced graph holds only elementwise
aten ops, scalar arithmetic and, for LAMB, whole-tensor norms. Each node is put in a stage:

``scalar``   0-d, from the scalar inputs only: computed once per tensor, before the loop;
``vector``   elementwise: computed inside the loop, one element at a time, in registers;
``reduce``   a norm of a vector node: accumulated in the loop (double), per tensor, in
             :data:`LANES` fixed partial sums per chunk (the same on every CPU);
``post``     0-d, depends on a reduction: computed per tensor between the two passes;
``vector2``  elementwise, depends on a ``post`` scalar: computed in a second pass.

The C function reads every input element once, keeps intermediates in registers and writes
the new parameter and state in place: the memory traffic of the ideal hand-written kernel.
A rule with a norm (LAMB) needs a second pass; it re-reads what it needs, preferring the
state it has just written to recomputing from overwritten inputs.

Nothing here restates an algorithm: every operation comes from the traced rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.fx import Graph, Node
from torch.fx.experimental.proxy_tensor import make_fx

from ..rng import keeping_rng

__all__ = ["Unsupported", "Program", "trace_rule", "to_c"]

aten = torch.ops.aten

#: elements per work item of the parallel loop (a few hundred KiB of traffic per item)
CHUNK = 32768
#: the C statement freeing the work lists (on every way out of the function)
_FREE = ("free(pre); free(chunk_tensor); free(chunk_start); free(chunk_before); "
         "free(partial);")


class Unsupported(Exception):
    """The rule uses an operation the code generator does not know (the plain path runs)."""


@dataclass
class Program:
    """A traced rule, ready for :func:`to_c`.

    ``graph`` has placeholders in this order: the ``n_vector`` vector inputs (parameter,
    gradient, then the vector state), then the ``n_scalar_in`` per-tensor scalar inputs.
    Its outputs are the new parameter, the new vector state (in input order), then the
    ``n_scalar_out`` new scalar state values.
    """

    graph: Graph
    n_vector: int
    n_scalar_in: int
    n_scalar_out: int
    dtype: torch.dtype


def trace_rule(fn: Callable, n_vector: int, scalar_dtypes: Sequence[torch.dtype],
               dtype: torch.dtype) -> Program:
    """Trace ``fn(*vectors, *scalars) -> (new_p, *new_vector_state, *new_scalar_state)``.

    The scalars are traced as 0-d tensors of ``scalar_dtypes`` (float64 for hyperparameters
    and the step, which the plain path passes as Python floats; the stored dtype for scalar
    state such as NAdam's float32 ``mu_product``), so the C code rounds where torch does.
    """
    n_scalar_in = len(scalar_dtypes)
    gen = torch.Generator().manual_seed(0)  # the process's random numbers stay untouched
    vectors = [torch.rand(8, dtype=dtype, generator=gen) + 0.5 for _ in range(n_vector)]
    scalars = [torch.tensor(0.5 + 0.1 * i, dtype=d) for i, d in enumerate(scalar_dtypes)]
    try:
        # the trace runs the rule on real tensors: a rule that draws (randn_like) would move
        # the caller's generator, and fused=None's first step, which falls back to the plain
        # path when the rule has no C form, would draw other numbers than fused=False's; its
        # draws are undone, and no other thread's (the trace takes seconds)
        with keeping_rng():
            gm = make_fx(fn)(*vectors, *scalars)
    except Unsupported:
        raise
    except Exception as error:  # data-dependent Python control flow, .item(), ...
        raise Unsupported(f"the rule cannot be traced: {type(error).__name__}: {error}") from error
    outputs = _outputs(gm.graph)
    n_scalar_out = len(outputs) - n_vector + 1
    return Program(gm.graph, n_vector, n_scalar_in, n_scalar_out, dtype)


def _outputs(graph: Graph) -> list:
    (out,) = [n for n in graph.nodes if n.op == "output"]
    values = out.args[0]
    return list(values) if isinstance(values, (tuple, list)) else [values]


def _val(node) -> Tensor | None:
    return node.meta.get("val") if isinstance(node, Node) else None


def _is_vector(node) -> bool:
    val = _val(node)
    return val is not None and val.dim() > 0


_CTYPE = {torch.float32: "float", torch.float64: "double", torch.bool: "bool"}


def _literal(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    value = float(value)
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INFINITY" if value > 0 else "(-INFINITY)"
    return repr(value)


# -- the operations: each takes C expressions (already in the node's type) ----------------------
def _fn(ctype: str, name: str) -> str:
    return name + "f" if ctype == "float" else name


def _lerp(t, a, b, w):
    # torch's CPU kernel: one fused multiply-add from the nearer end
    return f"((fabs((double)({w})) < 0.5) ? {_fn(t, 'fma')}({w}, ({b}) - ({a}), {a}) " \
           f": {_fn(t, 'fma')}(-(({b}) - ({a})), ({t})1 - ({w}), {b}))"


def _pow(t, a, e):
    return f"{_fn(t, 'pow')}({a}, {e})"


_BINARY = {
    aten.mul.Tensor: "({0}) * ({1})", aten.mul.Scalar: "({0}) * ({1})",
    aten.div.Tensor: "({0}) / ({1})", aten.div.Scalar: "({0}) / ({1})",
    aten.gt.Tensor: "({0}) > ({1})", aten.gt.Scalar: "({0}) > ({1})",
    aten.lt.Tensor: "({0}) < ({1})", aten.lt.Scalar: "({0}) < ({1})",
    aten.ge.Tensor: "({0}) >= ({1})", aten.ge.Scalar: "({0}) >= ({1})",
    aten.le.Tensor: "({0}) <= ({1})", aten.le.Scalar: "({0}) <= ({1})",
    aten.eq.Tensor: "({0}) == ({1})", aten.eq.Scalar: "({0}) == ({1})",
    aten.ne.Tensor: "({0}) != ({1})", aten.ne.Scalar: "({0}) != ({1})",
    aten.bitwise_and.Tensor: "({0}) && ({1})", aten.logical_and.default: "({0}) && ({1})",
    aten.bitwise_or.Tensor: "({0}) || ({1})", aten.logical_or.default: "({0}) || ({1})",
    # NaN-propagating, like torch.maximum / minimum
    aten.maximum.default: "((({0}) > ({1}) || ({0}) != ({0})) ? ({0}) : ({1}))",
    aten.minimum.default: "((({0}) < ({1}) || ({0}) != ({0})) ? ({0}) : ({1}))",
}
_UNARY = {
    aten.neg.default: "-({0})",
    aten.reciprocal.default: "(({t})1 / ({0}))",
    aten.isnan.default: "(({0}) != ({0}))",
    aten.logical_not.default: "!({0})",
    aten.bitwise_not.default: "!({0})",
    # torch.sign: 1, -1 or 0 (NaN gives 0 on the CPU); selects, so the loop vectorizes
    aten.sign.default: "(({0}) > 0 ? ({t})1 : (({0}) < 0 ? ({t})-1 : ({t})0))",
    aten.clone.default: "({0})", aten.alias.default: "({0})", aten.detach.default: "({0})",
    aten.lift_fresh_copy.default: "({0})", aten._to_copy.default: "({0})",
}
#: the powers of a tensor torch computes without pow(): x ** 3 is x * x * x, ...
_TORCH_POWERS = {3: "(({0}) * ({0})) * ({0})", -2: "({t})1 / (({0}) * ({0}))",
                 -1: "({t})1 / ({0})", -0.5: "({t})1 / {sqrt}({0})"}
_MATH = {aten.sqrt.default: "sqrt", aten.abs.default: "fabs", aten.exp.default: "exp",
         aten.log.default: "log"}


def _expr(node: Node, t: str, arg: Callable[[object], str]) -> str:
    """The C expression of ``node`` computed in type ``t``; ``arg`` renders an operand."""
    op, args, kw = node.target, node.args, node.kwargs
    if op in _BINARY:
        return _BINARY[op].format(arg(args[0]), arg(args[1]))
    if op in _UNARY:
        return _UNARY[op].format(arg(args[0]), t=t)
    if op in _MATH:
        return f"{_fn(t, _MATH[op])}({arg(args[0])})"
    if op is aten.rsqrt.default:
        return f"(({t})1 / {_fn(t, 'sqrt')}({arg(args[0])}))"
    if op in (aten.add.Tensor, aten.add.Scalar, aten.sub.Tensor, aten.sub.Scalar):
        alpha = kw.get("alpha", args[2] if len(args) > 2 else 1)
        sign = "+" if op in (aten.add.Tensor, aten.add.Scalar) else "-"
        if alpha == 1:
            return f"({arg(args[0])}) {sign} ({arg(args[1])})"
        # torch rounds x.add(y, alpha=a) once: a fused multiply-add
        return f"{_fn(t, 'fma')}({sign}({arg(alpha)}), {arg(args[1])}, {arg(args[0])})"
    if op is aten.rsub.Scalar:
        alpha = kw.get("alpha", args[2] if len(args) > 2 else 1)
        right = arg(args[0]) if alpha == 1 else f"({arg(alpha)}) * ({arg(args[0])})"
        return f"({arg(args[1])}) - {right}"
    if op in (aten.addcmul.default, aten.addcdiv.default):
        value = kw.get("value", args[3] if len(args) > 3 else 1)
        scaled = arg(args[1]) if value == 1 else f"({arg(value)}) * ({arg(args[1])})"
        if op is aten.addcmul.default:  # torch: fma(value * t1, t2, x)
            return f"{_fn(t, 'fma')}({scaled}, {arg(args[2])}, {arg(args[0])})"
        return f"({arg(args[0])}) + ({scaled}) / ({arg(args[2])})"  # torch: x + (value * t1) / t2
    if op in (aten.lerp.Tensor, aten.lerp.Scalar):
        return _lerp(t, arg(args[0]), arg(args[1]), arg(args[2]))
    if op in (aten.pow.Tensor_Scalar, aten.pow.Tensor_Tensor, aten.pow.Scalar):
        exponent = args[1]
        if op is aten.pow.Tensor_Scalar and exponent == 2:
            return f"({arg(args[0])}) * ({arg(args[0])})"
        if op is aten.pow.Tensor_Scalar and exponent == 0.5:
            return f"{_fn(t, 'sqrt')}({arg(args[0])})"
        if op is aten.pow.Tensor_Scalar and exponent == 1:
            return arg(args[0])
        return _pow(t, arg(args[0]), arg(exponent))
    if op is aten.where.self:
        return f"(({arg(args[0])}) ? ({arg(args[1])}) : ({arg(args[2])}))"
    if op in (aten.clamp.default, aten.clamp.Tensor, aten.clamp_min.default,
              aten.clamp_min.Tensor, aten.clamp_max.default, aten.clamp_max.Tensor):
        both = op in (aten.clamp.default, aten.clamp.Tensor)
        low = kw.get("min", args[1] if len(args) > 1 else None) if both else (
            args[1] if op in (aten.clamp_min.default, aten.clamp_min.Tensor) else None)
        high = kw.get("max", args[2] if len(args) > 2 else None) if both else (
            args[1] if op in (aten.clamp_max.default, aten.clamp_max.Tensor) else None)
        out = arg(args[0])
        if low is not None:
            out = f"(({out}) < ({arg(low)}) ? ({arg(low)}) : ({out}))"
        if high is not None:
            out = f"(({out}) > ({arg(high)}) ? ({arg(high)}) : ({out}))"
        return out
    if op in (aten.scalar_tensor.default, aten.full.default):
        return f"({t})({_literal(args[-1] if op is aten.full.default else args[0])})"
    if op in (aten.ones_like.default, aten.zeros_like.default, aten.full_like.default):
        value = {aten.ones_like.default: 1, aten.zeros_like.default: 0}.get(op)
        return f"({t})({_literal(args[1] if value is None else value)})"
    raise Unsupported(f"no C form for {op}")


_REDUCTIONS = {aten.linalg_vector_norm.default, aten.sum.default}


def _norm_order(node: Node) -> int | None:
    """1 or 2 for a whole-tensor norm node, None for a sum."""
    if node.target is not aten.linalg_vector_norm.default:
        return None
    return int(node.args[1]) if len(node.args) > 1 else 2


def _constant(program: Program, node: Node) -> Tensor:
    """The value of a ``get_attr`` node: a constant tensor the rule made itself
    (``torch.tensor(1 / 3)``). A 0-d float one is a literal of the C code; any other is
    refused (one with a shape would broadcast, an integer or bool one promotes otherwise)."""
    value = getattr(program.graph.owning_module, str(node.target), None)
    if not isinstance(value, Tensor) or value.dim() != 0 or value.dtype not in (torch.float32,
                                                                                torch.float64):
        raise Unsupported("the rule makes a constant tensor the kernel does not take (only 0-d "
                          f"float32 or float64 ones): {node.target} "
                          f"{getattr(value, 'dtype', None)} {tuple(getattr(value, 'shape', ()))}")
    return value


def _stages(program: Program) -> dict[Node, str]:
    """Assign every node its stage (see the module docstring)."""
    stage: dict[Node, str] = {}
    placeholders = [n for n in program.graph.nodes if n.op == "placeholder"]
    for i, node in enumerate(placeholders):
        stage[node] = "vector" if i < program.n_vector else "scalar"
    for node in program.graph.nodes:
        if node.op == "get_attr":  # a constant tensor: a literal (see _analyse)
            _constant(program, node)
            stage[node] = "scalar"
            continue
        if node.op != "call_function":
            continue
        deps = {stage[a] for a in node.all_input_nodes}
        if node.target in _REDUCTIONS:
            if _is_vector(node) or deps - {"vector"}:
                raise Unsupported("only whole-tensor norms of first-pass values are supported")
            # a ``dtype`` of float64 (``ops.norm``) is what the loop does anyway: it sums in double
            if node.target is aten.linalg_vector_norm.default and (
                    node.args[1:] not in ((), (2,), (2.0,), (1,), (1.0,))
                    or node.kwargs not in ({}, {"dtype": torch.float64})):
                raise Unsupported("only the 1- and 2-norms over the whole tensor are supported")
            if node.target is aten.sum.default and (node.args[1:] or node.kwargs):
                raise Unsupported("only the sum over the whole tensor is supported")
            stage[node] = "reduce"
        elif _is_vector(node):
            stage[node] = "vector2" if deps & {"post", "vector2"} else "vector"
        else:
            if "vector" in deps or "vector2" in deps:
                raise Unsupported(f"{node.target} reduces a tensor in a way not supported")
            stage[node] = "post" if deps & {"reduce", "post"} else "scalar"
    return stage


def _needed(roots: Sequence, stop: Callable[[Node], bool]) -> list[Node]:
    """Nodes the roots depend on, in graph order, not looking past ``stop`` nodes."""
    seen: set[Node] = set()
    order: list[Node] = []

    def visit(node):
        if not isinstance(node, Node) or node in seen:
            return
        seen.add(node)
        if not stop(node):
            for dep in node.all_input_nodes:
                visit(dep)
        order.append(node)

    for root in roots:
        visit(root)
    index = {n: i for i, n in enumerate(roots[0].graph.nodes)} if roots else {}
    return sorted(order, key=lambda n: index[n])


@dataclass
class _CFunction:
    """What the parts of the C function share: the traced nodes sorted into their stages,
    the C name and type of each, and where the inputs and outputs live."""

    program: Program
    stage: dict[Node, str]
    #: every node of the graph, in order
    nodes: list[Node]
    #: the C element type of the vectors (``float`` or ``double``)
    elem: str
    #: vector inputs (parameter, gradient, vector state) and per-tensor scalar inputs
    vec_in: list[Node]
    sc_in: list[Node]
    #: outputs: the new parameter and vector state, then the new scalar state
    vec_out: list
    sc_out: list
    #: the vector buffer each vector output goes to: p -> 0, state k -> 2 + k (1 is the grad)
    out_buffer: dict[int, int]
    reductions: list[Node]
    #: 0-d nodes computed once per tensor before the loop, and after the reductions
    scalar_nodes: list[Node]
    post_nodes: list[Node]
    #: the C variable of each node: ``v<i>`` in the loops, ``s<i>`` outside them
    names: dict[Node, str]
    #: the dtype torch gives each scalar node, None where it is a weak Python float
    strong: dict[Node, torch.dtype | None]
    #: where each scalar input and per-tensor scalar is kept (``keep[slot]``) for the loops
    slot: dict[Node, int]
    #: scalar outputs known only after the reductions: (output index, node)
    post_outputs: list[tuple[int, Node]]

    @property
    def n_pre(self) -> int:
        """Doubles kept per tensor for the loops (the scalar inputs and derived scalars)."""
        return len(self.sc_in) + len(self.scalar_nodes)

    def ctype(self, node: Node) -> str:
        """The C type ``node`` is computed in."""
        val = _val(node)
        if self.stage[node] in ("scalar", "post", "reduce"):
            if val is not None and val.dtype == torch.bool:
                return "bool"
            return "float" if self.strong.get(node) == torch.float32 else "double"
        if val is None or val.dtype not in _CTYPE:
            raise Unsupported(f"{node.target} makes a {getattr(val, 'dtype', None)} tensor")
        return _CTYPE[val.dtype]

    def operand(self, value, want: str) -> str:
        """``value`` (a node or a Python number) as a C expression of type ``want``."""
        if isinstance(value, Node):
            ref = self.names[value]
            return ref if self.ctype(value) == want or want == "bool" else f"({want})({ref})"
        if isinstance(value, (bool, int, float)):
            return f"({want})({_literal(value)})"
        raise Unsupported(f"operand {value!r}")

    def compute(self, node: Node) -> str:
        """The C expression computing ``node`` from its operands' variables."""
        t = self.ctype(node)
        if node.target in (aten.where.self,):
            # the condition stays bool; the branches take the result type
            cond = self.operand(node.args[0], "bool")
            return (f"(({cond}) ? ({self.operand(node.args[1], t)}) : "
                    f"({self.operand(node.args[2], t)}))")
        if node.target is aten.pow.Tensor_Scalar and self.stage[node].startswith("vector") \
                and node.args[1] in _TORCH_POWERS:
            # torch's own forms of these powers (a Python float's ** is C's pow: scalars)
            return _TORCH_POWERS[node.args[1]].format(self.operand(node.args[0], t), t=t,
                                                      sqrt=_fn(t, "sqrt"))
        if t == "bool":
            # comparisons: compare in the operands' common float type
            kinds = {self.ctype(a) for a in node.all_input_nodes}
            inner = "double" if "double" in kinds else ("float" if "float" in kinds else "bool")
            return _expr(node, inner, lambda v: self.operand(v, inner))
        return _expr(node, t, lambda v: self.operand(v, t))

    def load_kept(self, node: Node, indent: str) -> str:
        """The line reading a per-tensor scalar back from ``keep`` (computed before the loop)."""
        t = self.ctype(node)
        return f"{indent}const {t} {self.names[node]} = ({t})keep[{self.slot[node]}];"


def _scalar_dtypes(nodes: list[Node], sc_in: list[Node],
                   stage: dict[Node, str]) -> dict[Node, torch.dtype | None]:
    """The dtype torch would give each scalar node on the plain path (None: weak).

    The plain path passes hyperparameters and the step as Python floats, which are "weak"
    in torch's type promotion: ``mu_product * mu`` stays float32 when ``mu_product`` is.
    They were traced as float64 0-d tensors, so the dtype torch would give each scalar is
    inferred here: weak unless it depends on scalar state, a norm or an explicit cast. A
    float32 scalar is computed in float, its weak operands rounded to float first, as torch
    rounds a Python float operand to the tensor's dtype.
    """
    strong: dict[Node, torch.dtype | None] = {}
    for node in sc_in:
        strong[node] = _val(node).dtype if _val(node).dtype != torch.float64 else None
    for node in nodes:
        if node.op == "get_attr":  # a constant 0-d tensor: strong, of its own dtype
            strong[node] = _val(node).dtype
        if node.op != "call_function" or stage.get(node) not in ("scalar", "post", "reduce"):
            continue
        if stage[node] == "reduce":
            strong[node] = _val(node).dtype
        elif node.target is aten._to_copy.default and "dtype" in node.kwargs:
            strong[node] = node.kwargs["dtype"]
        else:
            dtypes = {strong.get(a) for a in node.all_input_nodes} - {None}
            strong[node] = (torch.float64 if torch.float64 in dtypes else
                            torch.float32 if torch.float32 in dtypes else None)
    return strong


def _refuse_weak_promotion(nodes: list[Node], stage: dict[Node, str],
                           strong: dict[Node, torch.dtype | None]) -> None:
    """Refuse a float result of bool tensors and a hyperparameter (``(g > 0) * lr``,
    ``torch.where(g > 0, lr, 0.0)``): the plain path passes the hyperparameter as a Python
    float, and torch computes such a product in the default dtype (float32, rounding ``lr``),
    where the traced float64 0-d tensor gives float64. (A Python number of the rule itself is
    traced as the plain path computes it.)"""
    for node in nodes:
        val = _val(node)
        if node.op != "call_function" or not stage.get(node, "").startswith("vector") \
                or val is None or not val.dtype.is_floating_point \
                or val.dtype == torch.get_default_dtype():
            continue
        inputs = node.all_input_nodes
        tensors = [a for a in inputs if stage.get(a, "").startswith("vector")]
        if tensors and not any(_val(a).dtype.is_floating_point for a in tensors) and any(
                stage.get(a) in ("scalar", "post") and strong.get(a) is None
                and _val(a).dtype == val.dtype for a in inputs):
            raise Unsupported(f"{node.target} combines a bool tensor with a hyperparameter, "
                              "which torch computes in the default dtype (convert the bool "
                              "tensor first: (g > 0).to(g.dtype) * lr)")


def _analyse(program: Program) -> _CFunction:
    """Sort the program's nodes into stages, name them and find where each value lives."""
    stage = _stages(program)
    nodes = list(program.graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    sc_in = placeholders[program.n_vector:]
    outputs = _outputs(program.graph)
    vec_out = outputs[:program.n_vector - 1]  # new parameter, new vector state
    sc_out = outputs[program.n_vector - 1:]
    scalar_nodes = [n for n in nodes if stage.get(n) == "scalar" and n.op == "call_function"]
    names = {node: f"{'v' if stage.get(node, '').startswith('vector') else 's'}{i}"
             for i, node in enumerate(nodes)}
    strong = _scalar_dtypes(nodes, sc_in, stage)
    for node in nodes:
        if node.op == "get_attr":  # a constant is its literal, in its own type
            names[node] = f"(({_CTYPE[strong[node]]})({_literal(_constant(program, node).item())}))"
    _refuse_weak_promotion(nodes, stage, strong)
    return _CFunction(
        program=program, stage=stage, nodes=nodes, elem=_CTYPE[program.dtype],
        vec_in=placeholders[:program.n_vector], sc_in=sc_in, vec_out=vec_out, sc_out=sc_out,
        out_buffer={0: 0, **{k: k + 1 for k in range(1, len(vec_out))}},
        reductions=[n for n in nodes if stage.get(n) == "reduce"],
        scalar_nodes=scalar_nodes, post_nodes=[n for n in nodes if stage.get(n) == "post"],
        names=names, strong=strong,
        slot={node: i for i, node in enumerate(sc_in + scalar_nodes)},
        post_outputs=[(j, n) for j, n in enumerate(sc_out) if stage.get(n) == "post"])


def _emit_signature(k: _CFunction, name: str) -> list[str]:
    """The includes, the function's signature and its constants (buffers per tensor, scalars
    in and out per tensor, elements per work item)."""
    program = k.program
    return [
        "/* generated by optimlab.optim.kernels from the traced rule; do not edit */",
        "#include <math.h>", "#include <stdbool.h>", "#include <stdint.h>", "#include <stdlib.h>",
        "#ifdef _OPENMP  /* built without OpenMP (Apple's clang): one thread steps every chunk */",
        "#include <omp.h>",
        "#endif",
        "",
        "/* the first chunk of thread id's share: chunk c goes to thread before[c] * nth / total,",
        "   so each thread steps a contiguous run of chunks holding about 1/nth of the elements */",
        "static int64_t first_chunk(const int64_t *before, int64_t nchunks, int64_t nth, int64_t id)",
        "{",
        "    int64_t lo = 0, hi = nchunks;",
        "    while (lo < hi) {",
        "        const int64_t mid = lo + (hi - lo) / 2;",
        "        if (before[mid] * nth / before[nchunks] < id) lo = mid + 1; else hi = mid;",
        "    }",
        "    return lo;",
        "}",
        "",
        f"int {name}(int64_t nt, const int64_t *numel, void *const *ptrs,",
        "            const double *scalars_in, double *scalars_out, int nthreads)",
        "{",
        f"    enum {{ NV = {program.n_vector}, NSI = {program.n_scalar_in}, "
        f"NSO = {max(program.n_scalar_out, 1)}, CH = {CHUNK} }};",
    ]


def _emit_chunking(k: _CFunction) -> list[str]:
    """The work lists: every tensor cut into chunks of ``CH`` elements (one work item of the
    parallel loops each), the per-tensor scalar store and the per-chunk partial norms.
    Returns 1 if an allocation fails."""
    return [
        f"    double *pre = malloc(sizeof(double) * (size_t)(nt * {max(k.n_pre, 1)}));",
        "    int64_t nchunks = 0;",
        "    for (int64_t t = 0; t < nt; ++t) nchunks += (numel[t] + CH - 1) / CH;",
        "    int64_t *chunk_tensor = malloc(sizeof(int64_t) * (size_t)(nchunks + 1));",
        "    int64_t *chunk_start = malloc(sizeof(int64_t) * (size_t)(nchunks + 1));",
        "    int64_t *chunk_before = malloc(sizeof(int64_t) * (size_t)(nchunks + 1));",
        "    double *partial = malloc(sizeof(double) * (size_t)((nchunks + 1) * "
        f"{max(len(k.reductions), 1)}));",
        "    if (!pre || !chunk_tensor || !chunk_start || !chunk_before || !partial) {",
        f"        {_FREE} return 1;",
        "    }",
        "    chunk_before[0] = 0;",
        "    for (int64_t t = 0, c = 0; t < nt; ++t)",
        "        for (int64_t s = 0; s < numel[t]; s += CH) {",
        "            chunk_tensor[c] = t; chunk_start[c] = s;",
        "            chunk_before[c + 1] = chunk_before[c] + (numel[t] - s < CH ? numel[t] - s : CH);",
        "            ++c;",
        "        }",
        "",
    ]


def _emit_scalars(k: _CFunction) -> list[str]:
    """The per-tensor scalar prologue: read the scalar inputs, compute the scalars the rule
    derives from them, keep both for the loops and write the scalar outputs known already
    (those that depend on a norm are written after the reductions)."""
    lines = [
        "    /* per-tensor scalars: step, scalar state, hyperparameters and what the rule derives */",
        "    for (int64_t t = 0; t < nt; ++t) {",
        "        const double *in = scalars_in + t * NSI;",
        "        double *out = scalars_out + t * NSO;",
        f"        double *keep = pre + t * {max(k.n_pre, 1)};",
        "        (void)in; (void)out; (void)keep;",
    ]
    for i, node in enumerate(k.sc_in):
        lines.append(f"        const double {k.names[node]} = in[{i}];")
    for node in k.scalar_nodes:
        lines.append(f"        const {k.ctype(node)} {k.names[node]} = {k.compute(node)};")
    for node in k.slot:
        lines.append(f"        keep[{k.slot[node]}] = (double){k.names[node]};")
    for j, node in enumerate(k.sc_out):
        if k.stage.get(node) == "post":
            continue
        if isinstance(node, Node):
            lines.append(f"        out[{j}] = (double){k.names[node]};")
        else:
            lines.append(f"        out[{j}] = {_literal(node)};")
    lines.append("    }")
    return lines


def _vector_roots(k: _CFunction) -> tuple[dict[Node, list[int]], dict[Node, list[int]]]:
    """The vector outputs each pass writes (node -> the buffers it goes to): the first pass
    those that need no norm, the second those that do. An output that is its own input
    (state the rule leaves alone) needs no write. One value may be several outputs (a rule
    that keeps the new parameter, ``state["last"] = new; return new``, or puts one value
    under two keys): it is written to each of them."""
    first: dict[Node, list[int]] = {}
    second: dict[Node, list[int]] = {}
    for i, node in enumerate(k.vec_out):
        if not isinstance(node, Node) or k.stage[node] not in ("vector", "vector2"):
            raise Unsupported(f"output {i} of the rule is not an elementwise result")
        buffer = k.out_buffer[i]
        if k.stage[node] == "vector2":
            second.setdefault(node, []).append(buffer)
        elif node is not k.vec_in[buffer]:
            first.setdefault(node, []).append(buffer)
    return first, second


def _emit_chunk_loop(k: _CFunction) -> list[str]:
    """The head of a parallel pass: each OpenMP thread takes a contiguous run of chunks
    holding about an equal share of the elements (``first_chunk``), then per chunk its
    tensor and element range, and that tensor's kept scalars.

    Shares by elements, not by chunk count: a population's member slices are one chunk each
    whatever their size, and split by count the 64 slices of the MNIST-1D MLP's small
    layers went to one thread and those of its large ones to the other (93% of the
    elements). Which thread steps a chunk changes no result: every element is computed
    alone, and the norms are summed per chunk (in :data:`LANES` partial sums combined in a
    fixed order, whatever the CPU's vector width), then in chunk order. So a kernel built
    without OpenMP (:func:`~optimlab.optim.kernels.build.flag_sets`: Apple's clang has none),
    whose one thread steps every chunk (the pragmas ignored, ``_OPENMP`` undefined), gives
    the same results as with any number of threads."""
    # one work item (a small step) is not worth waking a second thread for
    return ["    #pragma omp parallel num_threads(nthreads) if(nchunks > 1)",
            "    {",
            "#ifdef _OPENMP",
            "    const int64_t nth = omp_get_num_threads(), id = omp_get_thread_num();",
            "#else",
            "    const int64_t nth = 1, id = 0;",
            "    (void)nthreads;",
            "#endif",
            "    const int64_t c_end = first_chunk(chunk_before, nchunks, nth, id + 1);",
            "    for (int64_t c = first_chunk(chunk_before, nchunks, nth, id); c < c_end; ++c) {",
            "        const int64_t t = chunk_tensor[c], lo = chunk_start[c];",
            "        const int64_t hi = lo + CH < numel[t] ? lo + CH : numel[t];",
            f"        const double *keep = pre + t * {max(k.n_pre, 1)};",
            "        (void)keep;"]


def _emit_chunk_setup(k: _CFunction, needed: list[Node], roots: dict[Node, list[int]],
                      written: dict[Node, list[int]], second: bool) -> list[str]:
    """Per chunk, before the element loop: the buffers it reads or writes and the per-tensor
    scalars (kept or computed after the reductions) it uses."""
    lines = []
    buffers = set()
    for node in needed:
        if node in written and second:
            buffers.add(written[node][0])
        elif node.op == "placeholder" and k.stage[node] == "vector":
            buffers.add(k.vec_in.index(node))
    for b in sorted(buffers.union(*roots.values())):
        lines.append(f"        {k.elem} *restrict b{b} = ({k.elem} *)ptrs[t * NV + {b}];")
    for node in needed:
        if k.stage.get(node) in ("scalar",) and node in k.slot:
            lines.append(k.load_kept(node, "        "))
        elif k.stage.get(node) == "post":
            lines.append(f"        const {k.ctype(node)} {k.names[node]} = "
                         f"({k.ctype(node)})post[t * {len(k.post_nodes)} + "
                         f"{k.post_nodes.index(node)}];")
    return lines


#: the partial sums a chunk's norms are accumulated in, element ``i`` of the chunk into sum
#: ``i % LANES``, combined in a fixed tree order: the rounding does not depend on the vector
#: width ``-march=native`` picks (an ``omp simd reduction`` splits into as many lanes as the
#: CPU's registers hold, so its sums round differently on AVX2 and AVX-512)
LANES = 8


def _lane_sum(acc: str, lo: int = 0, n: int = LANES) -> str:
    """``acc[lo] + ... + acc[lo + n - 1]`` as a balanced tree of additions (a fixed order)."""
    if n == 1:
        return f"{acc}[{lo}]"
    half = n // 2
    return f"({_lane_sum(acc, lo, half)} + {_lane_sum(acc, lo + half, n - half)})"


def _emit_element_loop(k: _CFunction, needed: list[Node], roots: dict[Node, list[int]],
                       reduce: list[Node], written: dict[Node, list[int]],
                       second: bool) -> list[str]:
    """The vectorized loop over one chunk's elements: load each input once, compute the
    rule in registers, store the outputs, accumulate the norms (in double), then leave the
    chunk's partial norms in ``partial``.

    With norms, the chunk is walked in blocks of :data:`LANES` elements, element ``j`` of a
    block added to partial sum ``j`` (a plain array store the compiler vectorizes, no
    reduction clause), so every CPU and thread count adds the same numbers in the same order.
    """
    accs = [f"r{i}" for i in range(len(reduce))]

    def body(indent: str) -> list[str]:
        lines = []
        for node in needed:
            if k.stage.get(node) in ("scalar", "post"):
                continue
            if second and node in written:
                lines.append(f"{indent}const {k.ctype(node)} {k.names[node]} = "
                             f"b{written[node][0]}[i];")
            elif node.op == "placeholder":
                lines.append(f"{indent}const {k.elem} {k.names[node]} = "
                             f"b{k.vec_in.index(node)}[i];")
            else:
                lines.append(f"{indent}const {k.ctype(node)} {k.names[node]} = "
                             f"{k.compute(node)};")
        for node, buffers in roots.items():
            for buffer in buffers:
                lines.append(f"{indent}b{buffer}[i] = ({k.elem}){k.names[node]};")
        for acc, red in zip(accs, reduce):
            x = k.names[red.args[0]]
            term = {2: f"(double){x} * (double){x}", 1: f"fabs((double){x})"}.get(
                _norm_order(red), f"(double){x}")
            lines.append(f"{indent}{acc}[j] += {term};")
        return lines

    if not accs:
        return (["        #pragma omp simd",
                 "        for (int64_t i = lo; i < hi; ++i) {"]
                + body("            ") + ["        }"])
    lines = [f"        double {acc}[{LANES}] = {{0}};" for acc in accs]
    lines += ["        int64_t i0 = lo;",
              f"        for (; i0 + {LANES} <= hi; i0 += {LANES}) {{",
              "            #pragma omp simd",
              f"            for (int64_t j = 0; j < {LANES}; ++j) {{",
              "                const int64_t i = i0 + j;"]
    lines += body("                ") + ["            }", "        }"]
    lines += ["        for (int64_t j = 0; i0 + j < hi; ++j) {  /* the last, partial block */",
              "            const int64_t i = i0 + j;"]
    lines += body("            ") + ["        }"]
    for i, acc in enumerate(accs):
        lines.append(f"        partial[c * {len(reduce)} + {i}] = {_lane_sum(acc)};")
    return lines


def _emit_pass(k: _CFunction, roots: dict[Node, list[int]], reduce: list[Node],
               written: dict[Node, list[int]], second: bool) -> list[str]:
    """One parallel loop computing ``roots`` (output node -> buffers) and the ``reduce`` norms.

    The second pass reads what the first has ``written`` (node -> buffers) back instead of
    recomputing it.
    """
    targets = list(roots) + [r.args[0] for r in reduce]

    def stop(node):  # what is read from memory (or from the per-tensor scalars)
        if k.stage.get(node) in ("scalar", "post") or node.op == "placeholder":
            return True
        return second and node in written

    needed = _needed(targets, stop) if targets else []
    return (_emit_chunk_loop(k) + _emit_chunk_setup(k, needed, roots, written, second)
            + _emit_element_loop(k, needed, roots, reduce, written, second)
            + ["    }", "    }"])


def _emit_reductions(k: _CFunction) -> list[str]:
    """Between the passes, per tensor: sum the chunks' partial norms in chunk order (so the
    result depends neither on the thread count nor, with the fixed lanes of
    :func:`_emit_element_loop`, on the CPU's vector width), take the square roots, compute the scalars
    that use them and write those that are outputs."""
    names, reductions, post_nodes = k.names, k.reductions, k.post_nodes
    lines = [
        "",
        "    /* the norms, summed in chunk order (deterministic), then the scalars using them */",
        f"    double *post = malloc(sizeof(double) * (size_t)(nt * {max(len(post_nodes), 1)}));",
        f"    if (!post) {{ {_FREE} return 1; }}",
        "    for (int64_t t = 0, c = 0; t < nt; ++t) {",
        f"        const double *keep = pre + t * {max(k.n_pre, 1)};",
        "        double *out = scalars_out + t * NSO;",
        "        (void)keep; (void)out;",
    ]
    for red in reductions:
        lines.append(f"        double {names[red]}_sum = 0;")
    lines.append("        for (; c < nchunks && chunk_tensor[c] == t; ++c) {")
    for i, red in enumerate(reductions):
        lines.append(f"            {names[red]}_sum += partial[c * {len(reductions)} + {i}];")
    lines.append("        }")
    for red in reductions:
        value = f"sqrt({names[red]}_sum)" if _norm_order(red) == 2 else f"{names[red]}_sum"
        lines.append(f"        const {k.ctype(red)} {names[red]} = ({k.ctype(red)}){value};")
    post_deps = _needed(post_nodes, lambda n: k.stage.get(n) != "post") if post_nodes else []
    for node in post_deps:
        if k.stage.get(node) == "scalar" and node in k.slot:
            lines.append(k.load_kept(node, "        "))
    for i, node in enumerate(post_nodes):
        lines.append(f"        const {k.ctype(node)} {names[node]} = {k.compute(node)};")
        lines.append(f"        post[t * {len(post_nodes)} + {i}] = (double){names[node]};")
    for j, node in k.post_outputs:
        lines.append(f"        out[{j}] = (double){names[node]};")
    lines.append("    }")
    return lines


def _defer_clobbering_writes(k: _CFunction, first: dict[Node, list[int]],
                             second: dict[Node, list[int]]) -> None:
    """Move to the second pass the first pass's writes into an input the second pass still
    reads (Lion's momentum, whose old value the cautious step needs after its counts;
    MARS's previous gradient). The second pass reads each element before it writes it, so
    the old value is still there when it is needed."""
    while True:
        needed = _needed(list(second), lambda n: n in first or n.op == "placeholder"
                         or k.stage.get(n) in ("scalar", "post"))
        clobbered = {k.vec_in[b]: n for n, buffers in first.items() for b in buffers}
        moving = dict.fromkeys(clobbered[n] for n in needed if n in clobbered)
        if not moving:
            return
        for node in moving:
            second[node] = first.pop(node)


def _second_pass_reads(k: _CFunction, first: dict[Node, list[int]],
                       second: dict[Node, list[int]]) -> dict[Node, list[int]]:
    """What the second pass may read back instead of recomputing: the first pass's outputs
    (node -> buffers). Raises :class:`Unsupported` if it needs an input the first overwrote."""
    written = dict(first)
    overwritten = {k.vec_in[b] for buffers in first.values() for b in buffers}
    needed = _needed(list(second), lambda n: n in written or n.op == "placeholder"
                     or k.stage.get(n) in ("scalar", "post"))
    if overwritten & set(needed):
        raise Unsupported("the second pass needs an input the first pass overwrote")
    return written


def _emit_epilogue() -> list[str]:
    """Free the work lists and report success."""
    return [f"    {_FREE}",
            "    return 0;", "}", ""]


def to_c(program: Program, name: str = "optimlab_step") -> str:
    """C source of ``void name(nt, numel, ptrs, scalars_in, scalars_out, nthreads)``.

    ``ptrs`` holds ``nt * n_vector`` data pointers (tensor-major: parameter, gradient, state),
    ``scalars_in`` ``nt * n_scalar_in`` doubles and ``scalars_out`` ``nt * n_scalar_out``.
    """
    k = _analyse(program)
    lines = _emit_signature(k, name) + _emit_chunking(k) + _emit_scalars(k)
    first, second = _vector_roots(k)
    _defer_clobbering_writes(k, first, second)
    lines.append("")
    lines += _emit_pass(k, first, k.reductions, {}, second=False)
    if k.reductions or k.post_nodes or second:
        lines += _emit_reductions(k)
        written = _second_pass_reads(k, first, second)
        lines.append("")
        lines += _emit_pass(k, second, [], written, second=True)
        lines.append("    free(post);")
    lines += _emit_epilogue()
    return "\n".join(lines)
