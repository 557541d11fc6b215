"""The one table that describes every optimizer.

The registry (`create`, `available`), the command line (`optimlab list/explain/compare`),
the README's algorithm list and the tests all read this table; nothing else repeats it.
The math itself lives beside each class: :attr:`Info.rule_latex` is read from the
``.. math::`` block of the class docstring, so it is written exactly once. Each
optimizer's colour is given by its registry name in :mod:`optimlab.optim.palette`, which
reads the names from the registry (so this module does not import it).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field

from .adabelief import AdaBelief
from .adadelta import Adadelta
from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adam_mini import AdamMini
from .adamax import Adamax
from .ademamix import AdEMAMix
from .adopt import ADOPT
from .asgd import ASGD
from .capabilities import Capabilities, hyperparameters
from .dadaptation import DAdaptAdam, DAdaptSGD
from .lamb import LAMB
from .laprop import LaProp
from .lars import LARS
from .lbfgs import LBFGS
from .lion import Lion
from .mars import MARS
from .muon import Muon
from .nadam import NAdam
from .novograd import NovoGrad
from .prodigy import Prodigy
from .psgd_kron import PSGDKron
from .radam import RAdam
from .rmsprop import RMSprop
from .rprop import Rprop
from .schedule_free import ScheduleFreeAdamW
from .schedule_free_sgd import ScheduleFreeSGD
from .sgd import SGD
from .shampoo import Shampoo
from .signum import Signum
from .soap import SOAP
from .sophia import Sophia
from .sparse_adam import SparseAdam
from .wrappers import SAM, Lookahead
from .yogi import Yogi


@dataclass(frozen=True)
class Info:
    """Everything optimlab knows about one algorithm.

    ``year`` is the year of the venue ``paper`` names (Adam: ICLR 2015, though its preprint
    is from 2014), or of the first public text where there is none (Muon's 2024 write-up).
    ``memory`` counts the extra parameter-sized buffers the optimizer keeps at its
    defaults (Adam: 2, for m and v); ``memory_note`` says how options change it.
    ``reference`` is what the tests check it against: a ``torch.optim`` class, a NumPy
    oracle in ``tests/oracles``, the ``schedulefree`` package, or an optax function (run on
    JAX's CPU build; its trajectories are stored, see ``tests/oracles/optax_reference.py``).
    """

    name: str
    cls: type
    family: str
    year: int
    paper: str
    url: str
    memory: float
    memory_note: str
    adaptive: bool
    momentum: bool
    bias_correction: bool
    decoupled_weight_decay: str
    sparse: str
    rule_text: str
    tuning: str
    strengths: str
    weaknesses: str
    typical_use: str
    reference: str

    @property
    def capabilities(self) -> Capabilities:
        """What the optimizer can do: the record beside its class, read by every consumer."""
        return self.cls.capabilities

    @property
    def needs_closure(self) -> bool:
        """Whether :meth:`~torch.optim.Optimizer.step` needs a closure (shorthand for the
        capability)."""
        return self.capabilities.needs_closure

    @property
    def wrapper(self) -> bool:
        """Whether the optimizer wraps another one (shorthand for the capability)."""
        return self.capabilities.wrapper

    @property
    def rule_latex(self) -> str:
        """The LaTeX update rule, taken from the class docstring's ``.. math::`` block."""
        doc = self.cls.__doc__ or ""
        match = re.search(r"\.\. math::\n(.*?)(?:\n\s*\n)", doc, re.S)
        return textwrap.dedent(match.group(1)).strip() if match else ""

    @property
    def arguments(self) -> dict[str, tuple[str, str]]:
        """The constructor's arguments as the class docstring's ``Args:`` section documents
        them: name -> (type, description), in order (see :func:`documented_arguments`)."""
        return documented_arguments(self.cls.__doc__ or "")

    @property
    def defaults(self) -> dict:
        """The rule's own hyperparameters with their constructor defaults (no driver flag,
        see :func:`optimlab.optim.capabilities.hyperparameters`)."""
        return hyperparameters(self.cls)


_ARG_LINE = re.compile(r"(\*{0,2}[A-Za-z_][\w, *]*?)\s*(?:\(([^)]*)\))?\s*:(?:\s+(.*)|$)")


def documented_arguments(doc: str) -> dict[str, tuple[str, str]]:
    """The entries of a Google-style docstring's ``Args:`` section: name -> (type,
    description), in order. An entry may name several arguments (``capturable,
    differentiable (bool, optional): ...``), each of which gets it; ``**base_kwargs`` is
    ``base_kwargs``. Empty where the docstring has no such section."""
    lines = doc.expandtabs().splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "Args:"), None)
    if start is None:
        return {}
    out: dict[str, tuple[str, str]] = {}
    names: list[str] = []
    indent = None
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        indent = depth if indent is None else indent
        if depth < indent:
            break  # the next section (Reference:, Example:)
        match = _ARG_LINE.fullmatch(line.strip()) if depth == indent else None
        if match:
            names = [n.strip().lstrip("*") for n in match.group(1).split(",")]
            for name in names:
                out[name] = (match.group(2) or "", match.group(3) or "")
        elif depth > indent and names:
            for name in names:
                kind, text = out[name]
                out[name] = (kind, f"{text} {line.strip()}".strip())
        else:
            break
    return out


@dataclass(frozen=True)
class Alias:
    """A registry name that stands for a class with preset hyperparameters.

    ``year`` and ``paper`` name the work the preset comes from where it is not the class's
    own (heavy-ball momentum is Polyak's 1964 method, not Robbins & Monro's 1951 SGD); by
    the catalog's rule the year is the venue's. ``memory`` and ``memory_note`` are the extra
    state the preset keeps where it differs from the class's defaults (``momentum`` keeps
    SGD's buffer, which plain SGD does not). None keeps the class's row."""

    name: str
    target: str
    preset: dict = field(default_factory=dict)
    summary: str = ""
    year: int | None = None
    paper: str | None = None
    memory: float | None = None
    memory_note: str | None = None


TABLE: list[Info] = [
    Info(
            name="sgd",
            cls=SGD,
            family="sgd",
            year=1951,
            paper="Robbins & Monro, A Stochastic Approximation Method (1951); "
            "Polyak (1964) heavy ball; Sutskever et al. (ICML 2013) Nesterov form",
            url="https://doi.org/10.1214/aoms/1177729586",
            memory=0,
            memory_note="0; 1 buffer with momentum",
            adaptive=False,
            momentum=True,
            bias_correction=False,
            decoupled_weight_decay="no (L2 in the gradient)",
            sparse="poor: rare features get the same small step",
            rule_text="b = mu*b + (1-dampening)*g;  w -= lr * (g + mu*b if nesterov else b)",
            tuning="lr is the one knob (try 0.1..0.01 on normalised inputs); momentum 0.9 "
            "is the common choice; decay lr on a schedule",
            strengths="simple, least memory, often generalises best when tuned and scheduled",
            weaknesses="sensitive to lr and scaling; slow on ill-conditioned problems and "
            "plateaus without momentum",
            typical_use="image classification CNNs with momentum and a schedule; convex problems",
            reference="torch.optim.SGD",
        ),
    Info(
            name="asgd",
            cls=ASGD,
            family="sgd",
            year=1992,
            paper="Polyak & Juditsky, Acceleration of Stochastic Approximation by Averaging "
            "(SIAM J. Control Optim. 1992)",
            url="https://doi.org/10.1137/0330046",
            memory=1,
            memory_note="1 (ax, the averaged iterate)",
            adaptive=False,
            momentum=False,
            bias_correction=False,
            decoupled_weight_decay="no (L2 in the gradient; lambd also shrinks w by "
            "1 - lambd*eta each step)",
            sparse="poor: rare features get the same small step",
            rule_text="w = w*(1 - lambd*eta) - eta*g;  ax += mu*(w - ax);  "
            "eta = lr/(1+lambd*lr*t)^alpha;  mu = 1/max(1, t - t0)",
            tuning="t0 sets when averaging starts (default 1e6: in practice never); lr as for SGD; "
            "evaluate with state['ax'], which is not copied into the parameters",
            strengths="iterate averaging reaches the optimal asymptotic rate for convex "
            "stochastic problems without a hand-tuned decay schedule",
            weaknesses="the average lives in the optimizer state and must be swapped in by the "
            "user; averaging too early slows progress; little benefit on fast-changing "
            "non-convex training",
            typical_use="convex stochastic problems; the end of training of LSTM language "
            "models (NT-ASGD in AWD-LSTM)",
            reference="torch.optim.ASGD",
        ),
    Info(
            name="rprop",
            cls=Rprop,
            family="sign",
            year=1993,
            paper="Riedmiller & Braun, A Direct Adaptive Method for Faster Backpropagation "
            "Learning: The RPROP Algorithm (IEEE ICNN 1993)",
            url="https://doi.org/10.1109/ICNN.1993.298623",
            memory=2,
            memory_note="2 (previous gradient, per-coordinate step size)",
            adaptive=True,
            momentum=False,
            bias_correction=False,
            decoupled_weight_decay="no weight decay option",
            sparse="poor: relies on the sign of every coordinate's full gradient",
            rule_text="step *= eta+ if g*g_prev > 0, eta- if < 0 (then g = 0);  "
            "clamp(step, min, max);  w -= step * sign(g)",
            tuning="defaults from the paper (etas 0.5/1.2) rarely need changing; lr is only "
            "the initial step size; use full batches",
            strengths="ignores the gradient's magnitude, so it is robust to badly scaled "
            "gradients; fast on deterministic, full-batch problems",
            weaknesses="breaks down with mini-batch noise (the sign flips at random); "
            "memory of two buffers",
            typical_use="full-batch training of small networks; deterministic curve fitting",
            reference="torch.optim.Rprop",
        ),
    Info(
            name="adagrad",
            cls=Adagrad,
            family="adaptive",
            year=2011,
            paper="Duchi, Hazan & Singer, Adaptive Subgradient Methods for Online Learning and "
            "Stochastic Optimization (JMLR 2011)",
            url="https://www.jmlr.org/papers/v12/duchi11a.html",
            memory=1,
            memory_note="1 (sum of squared gradients)",
            adaptive=True,
            momentum=False,
            bias_correction=False,
            decoupled_weight_decay="no (L2 in the gradient; not allowed with sparse gradients)",
            sparse="best: made for sparse features (rare coordinates keep large steps); "
            "accepts sparse gradients, e.g. nn.Embedding(sparse=True)",
            rule_text="s += g^2;  w -= lr/(1+(t-1)*lr_decay) * g / (sqrt(s) + eps)",
            tuning="lr 0.01..0.1 (default 1e-2); initial_accumulator_value 0.1 as in "
            "TensorFlow damps the first steps; little else to tune",
            strengths="per-coordinate steps with no schedule; strong regret guarantees for "
            "convex online learning; ideal for sparse, rarely active features",
            weaknesses="the sum only grows, so steps shrink towards zero and training stalls "
            "on long non-convex runs (the motivation for RMSprop and Adadelta)",
            typical_use="sparse linear models, click-through prediction, embeddings and "
            "recommendation; convex online learning",
            reference="torch.optim.Adagrad",
        ),
    Info(
            name="adadelta",
            cls=Adadelta,
            family="adaptive",
            year=2012,
            paper="Zeiler, ADADELTA: An Adaptive Learning Rate Method (2012)",
            url="https://arxiv.org/abs/1212.5701",
            memory=2,
            memory_note="2 (running averages of squared gradients and squared updates)",
            adaptive=True,
            momentum=False,
            bias_correction=False,
            decoupled_weight_decay="no (L2 in the gradient)",
            sparse="good: per-parameter scale",
            rule_text="v = rho*v + (1-rho)*g^2;  d = sqrt(u+eps)/sqrt(v+eps) * g;  "
            "u = rho*u + (1-rho)*d^2;  w -= lr*d",
            tuning="lr 1.0 (the paper has none); rho 0.9..0.95; eps (1e-6) sets the size of "
            "the first steps, raise it if training starts too slowly",
            strengths="no learning rate to choose; steps do not decay to zero as in Adagrad; "
            "update has the units of the parameter",
            weaknesses="slow start governed by eps; usually beaten by Adam and tuned SGD; "
            "rarely used in current practice",
            typical_use="problems where no learning rate search is possible; older speech "
            "and vision models",
            reference="torch.optim.Adadelta",
        ),
    Info(
            name="rmsprop",
            cls=RMSprop,
            family="adaptive",
            year=2012,
            paper="Hinton, Srivastava & Swersky, Neural Networks for Machine Learning, "
            "lecture 6e (2012); centered form: Graves (2013)",
            url="https://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf",
            memory=1,
            memory_note="1 (v); +1 with momentum; +1 with centered",
            adaptive=True,
            momentum=True,
            bias_correction=False,
            decoupled_weight_decay="no (L2 in the gradient)",
            sparse="good: per-parameter scale",
            rule_text="v = alpha*v + (1-alpha)*g^2;  (centered: v -= gbar^2);  "
            "w -= lr * g / (sqrt(v) + eps)  (or through a momentum buffer)",
            tuning="lr 1e-3..1e-4 (torch's default 1e-2 is large); alpha 0.9..0.99; eps is "
            "outside the root here, inside in TF/Keras (defaults differ)",
            strengths="simple adaptive step that does not decay like Adagrad's; copes with "
            "non-stationary objectives",
            weaknesses="no bias correction, so the first steps are large (v starts at 0); "
            "sensitive to lr; eps placement and defaults differ across frameworks",
            typical_use="reinforcement learning (DQN, A3C) and recurrent networks",
            reference="torch.optim.RMSprop",
        ),
    Info(
            name="adam",
            cls=Adam,
            family="adam",
            year=2015,
            paper="Kingma & Ba, Adam: A Method for Stochastic Optimization (ICLR 2015)",
            url="https://arxiv.org/abs/1412.6980",
            memory=2,
            memory_note="2 (m, v); 3 with amsgrad",
            adaptive=True,
            momentum=True,
            bias_correction=True,
            decoupled_weight_decay="optional (decoupled_weight_decay=True is AdamW)",
            sparse="good: per-parameter scale",
            rule_text="m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;  "
            "w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)",
            tuning="defaults (lr 1e-3, betas 0.9/0.999, eps 1e-8) are a strong start; tune lr "
            "on a log grid (1e-4..1e-2); lower beta2 (0.98-0.99) for stability in transformers",
            strengths="robust default across tasks, little tuning, handles badly scaled "
            "gradients and sparse features",
            weaknesses="can generalise worse than tuned SGD; L2 weight decay interacts badly "
            "with the adaptive scale (use AdamW); can fail to converge in contrived cases "
            "(AMSGrad's motivation)",
            typical_use="the default for deep nets: NLP, GANs, RL, quick baselines",
            reference="torch.optim.Adam",
        ),
    Info(
            name="adamw",
            cls=AdamW,
            family="adam",
            year=2019,
            paper="Loshchilov & Hutter, Decoupled Weight Decay Regularization (ICLR 2019)",
            url="https://arxiv.org/abs/1711.05101",
            memory=2,
            memory_note="2 (m, v); 3 with amsgrad",
            adaptive=True,
            momentum=True,
            bias_correction=True,
            decoupled_weight_decay="yes (scaled by lr, as in torch)",
            sparse="good: per-parameter scale",
            rule_text="w *= 1 - lr*wd;  then the Adam step",
            tuning="lr 1e-4..3e-3 with warmup and cosine decay; weight_decay 0.01..0.1",
            strengths="Adam whose weight decay regularises as intended; the standard for "
            "transformers",
            weaknesses="two coupled knobs (lr and wd); memory of Adam",
            typical_use="transformers, large-scale pre-training and fine-tuning",
            reference="torch.optim.AdamW",
        ),
    Info(
            name="adamax",
            cls=Adamax,
            family="adam",
            year=2015,
            paper="Kingma & Ba, Adam: A Method for Stochastic Optimization (ICLR 2015), "
            "section 7.1",
            url="https://arxiv.org/abs/1412.6980",
            memory=2,
            memory_note="2 (m, u: the exponentially weighted infinity norm)",
            adaptive=True,
            momentum=True,
            bias_correction=True,
            decoupled_weight_decay="no (L2 in the gradient)",
            sparse="good: per-parameter scale",
            rule_text="m = b1*m + (1-b1)*g;  u = max(b2*u, |g| + eps);  w -= lr/(1-b1^t) * m / u",
            tuning="lr 2e-3 default (about twice Adam's); betas 0.9/0.999; tune lr on a log grid",
            strengths="step bounded by lr/(1-b1^t); the max-norm is less sensitive to rare large "
            "gradients than Adam's mean square; no bias correction needed for u",
            weaknesses="u decays slowly after a spike (only by b2 per step), which can stall a "
            "coordinate; less tested than Adam in practice",
            typical_use="embeddings and other sparse-gradient models; an Adam alternative when "
            "gradients have heavy tails",
            reference="torch.optim.Adamax",
        ),
    Info(
            name="nadam",
            cls=NAdam,
            family="adam",
            year=2016,
            paper="Dozat, Incorporating Nesterov Momentum into Adam (ICLR 2016 workshop)",
            url="https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ",
            memory=2,
            memory_note="2 (m, v) plus a scalar product of the momentum schedule",
            adaptive=True,
            momentum=True,
            bias_correction=True,
            decoupled_weight_decay="optional (decoupled_weight_decay=True is NAdamW)",
            sparse="good: per-parameter scale",
            rule_text="mu_t = b1*(1 - 0.5*0.96^(t*psi));  m, v as Adam;  "
            "w -= lr * ((1-mu_t)/(1-prod mu) * g + mu_{t+1}/(1-prod mu * mu_{t+1}) * m) "
            "/ (sqrt(v/(1-b2^t)) + eps)",
            tuning="as Adam (lr 2e-3 default, betas 0.9/0.999); momentum_decay 4e-3 rarely tuned",
            strengths="Nesterov look-ahead in Adam: often slightly faster early progress than "
            "Adam at the same cost",
            weaknesses="the momentum warm-up schedule makes its early steps differ from other "
            "frameworks' NAdam; same generalisation caveats as Adam",
            typical_use="drop-in Adam replacement for RNNs/language models and general deep nets",
            reference="torch.optim.NAdam",
        ),
    Info(
            name="radam",
            cls=RAdam,
            family="adam",
            year=2020,
            paper="Liu et al., On the Variance of the Adaptive Learning Rate and Beyond "
            "(ICLR 2020)",
            url="https://arxiv.org/abs/1908.03265",
            memory=2,
            memory_note="2 (m, v)",
            adaptive=True,
            momentum=True,
            bias_correction=True,
            decoupled_weight_decay="optional (decoupled_weight_decay=True is RAdamW)",
            sparse="good: per-parameter scale",
            rule_text="rho_t = rho_inf - 2t*b2^t/(1-b2^t);  if rho_t > 5: "
            "w -= lr * m_hat * r_t * sqrt(1-b2^t)/(sqrt(v)+eps)  else: w -= lr * m_hat",
            tuning="as Adam (lr 1e-3, betas 0.9/0.999); meant to remove the need for a "
            "learning-rate warmup",
            strengths="rectifies the high variance of the adaptive step in the first steps: "
            "a built-in warmup, more robust to the choice of lr",
            weaknesses="the first steps (rho_t <= 5) are un-normalised SGD with momentum, which "
            "can be large for badly scaled gradients; an explicit warmup with Adam works about "
            "as well",
            typical_use="transformers and other models that need warmup with Adam",
            reference="torch.optim.RAdam",
        ),
    Info(
            name="adabelief",
            cls=AdaBelief,
            family="adam",
            year=2020,
            paper="Zhuang et al., AdaBelief Optimizer: Adapting Stepsizes by the Belief in "
            "Observed Gradients (NeurIPS 2020)",
            url="https://arxiv.org/abs/2010.07468",
            memory=2,
            memory_note="2 (m, s)",
            adaptive=True,
            momentum=True,
            bias_correction=True,
            decoupled_weight_decay="yes (scaled by lr, AdamW style)",
            sparse="good: per-parameter scale",
            rule_text="m = b1*m + (1-b1)*g;  s = b2*s + (1-b2)*(g-m)^2 + eps;  "
            "w -= lr/(1-b1^t) * m / (sqrt(s)/sqrt(1-b2^t) + eps)",
            tuning="Adam's settings carry over (lr 1e-3, betas 0.9/0.999); eps enters s "
            "every step, so the default 1e-16 corresponds to Adam's 1e-8",
            strengths="large steps when gradients agree with their running mean, small ones "
            "when they are surprising; the paper reports Adam-like speed with SGD-like "
            "generalisation and stable GAN training",
            weaknesses="eps means something different from Adam's, so values do not transfer; "
            "when the belief s becomes tiny near a minimum, gradient noise is amplified; "
            "the authors' package defaults changed between versions (rectification)",
            typical_use="image classification CNNs, GANs, LSTM language models and "
            "transformers (the paper's experiments)",
            reference="oracle",
        ),
    Info(
            name="lamb",
            cls=LAMB,
            family="adam",
            year=2020,
            paper="You et al., Large Batch Optimization for Deep Learning: Training BERT in "
            "76 minutes (ICLR 2020)",
            url="https://arxiv.org/abs/1904.00962",
            memory=2,
            memory_note="2 (m, v)",
            adaptive=True,
            momentum=True,
            bias_correction=True,
            decoupled_weight_decay="yes (added to the Adam direction before the trust ratio)",
            sparse="fair: per-parameter scale, but the step size is set per tensor",
            rule_text="u = m_hat/(sqrt(v_hat)+eps) + wd*w;  "
            "w -= lr * (||w||/||u|| per tensor, 1 if either is 0) * u",
            tuning="made for large batches: warm up lr and scale it with the batch size "
            "(the paper uses square-root scaling); weight_decay 0.01 as in BERT; "
            "betas 0.9/0.999",
            strengths="each layer's step is lr times its weight norm, whatever the gradient "
            "scale, which keeps very large batches stable (BERT at batch 64k, ResNet-50 at 32k)",
            weaknesses="little gain over AdamW at ordinary batch sizes; a per-tensor norm "
            "reduction each step; zero-initialised tensors get ratio 1; implementations differ "
            "(gradient clipping, ratio clipping, excluded layers)",
            typical_use="large-batch pre-training of BERT-style transformers; large-batch "
            "ImageNet training",
            reference="oracle",
        ),
    Info(
            name="lion",
            cls=Lion,
            family="sign",
            year=2023,
            paper="Chen et al., Symbolic Discovery of Optimization Algorithms (NeurIPS 2023)",
            url="https://arxiv.org/abs/2302.06675",
            memory=1,
            memory_note="1 (m)",
            adaptive=False,
            momentum=True,
            bias_correction=False,
            decoupled_weight_decay="yes (scaled by lr)",
            sparse="poor: every coordinate moves by lr whatever its gradient frequency",
            rule_text="w -= lr * (sign(b1*m + (1-b1)*g) + wd*w);  m = b2*m + (1-b2)*g",
            tuning="lr 3-10x smaller than AdamW's and weight_decay 3-10x larger (keep "
            "lr*wd); betas 0.9/0.99, or 0.95/0.98 for stability; gains grow with batch size",
            strengths="half of Adam's optimizer memory; a simple sign update of uniform "
            "size; reported to match or beat AdamW on vision transformers, diffusion and "
            "language models",
            weaknesses="sensitive to lr, which must be retuned when coming from AdamW; sign "
            "steps never shrink, so it oscillates at scale lr near a minimum; the paper "
            "reports smaller gains at small batch sizes",
            typical_use="image classification (ViT), vision-language contrastive training, "
            "diffusion models, language-model pre-training",
            reference="oracle",
        ),
    Info(
            name="lbfgs",
            cls=LBFGS,
            family="quasi-newton",
            year=1989,
            paper="Liu & Nocedal, On the limited memory BFGS method for large scale "
            "optimization (Math. Programming 1989)",
            url="https://doi.org/10.1007/BF01589116",
            memory=2 * 100,
            memory_note="2 x history_size (100) vectors of all parameters (the curvature "
            "pairs), plus the direction and the previous gradient",
            adaptive=True,
            momentum=False,
            bias_correction=False,
            decoupled_weight_decay="no (add it to the loss)",
            sparse="poor: one curvature model of all parameters; sparse gradients "
            "(nn.Embedding(sparse=True)) are made dense, as torch.optim.LBFGS does",
            rule_text="d = -H g by the two-loop recursion over the last m pairs "
            "(s = w_k+1 - w_k, y = g_k+1 - g_k);  w += t*d, t = lr (first step "
            "min(1, 1/|g|_1)*lr) or a strong-Wolfe line search;  up to max_iter per step()",
            tuning="full-batch problems: lr 1 with line_search_fn='strong_wolfe'; history "
            "size 10-100; max_iter sets the inner iterations per step() call",
            strengths="fast convergence on smooth deterministic problems (R-linear proven for L-BFGS "
            "on uniformly convex functions, often near-superlinear in practice); no "
            "learning rate to tune with the line search; the classic choice for small "
            "models, physics-informed networks, style transfer and fitting",
            weaknesses="made for deterministic (full-batch) gradients: mini-batch noise "
            "corrupts the curvature pairs; many closure evaluations per step(); memory of "
            "2 x history_size copies of the parameters; one parameter group only",
            typical_use="full-batch training of small models, physics-informed neural "
            "networks, neural style transfer, curve fitting and logistic regression",
            reference="torch.optim.LBFGS",
        ),
    Info(
            name="sparseadam",
            cls=SparseAdam,
            family="adam",
            year=2017,
            paper="Kingma & Ba, Adam (ICLR 2015), in the lazy form of torch.optim.SparseAdam "
            "(PyTorch 0.3, 2017)",
            url="https://arxiv.org/abs/1412.6980",
            memory=2,
            memory_note="2 (m, v), dense, though only touched entries change",
            adaptive=True,
            momentum=True,
            bias_correction=True,
            decoupled_weight_decay="no (no weight decay at all)",
            sparse="made for it: sparse gradients only; untouched rows keep their moments",
            rule_text="for the entries g touches: m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;"
            "  w -= lr*sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(v)+eps)",
            tuning="as Adam (lr 1e-3, betas 0.9/0.999) for the embedding tables; a dense "
            "optimizer (Adam) for the rest of the model, in a second optimizer",
            strengths="the cost of a step grows with the rows a batch touches, not the table "
            "size (in torch's in-place form); the usual choice for large embedding tables",
            weaknesses="lazy moments: a rarely seen row's averages do not decay between its "
            "visits, so its steps differ from Adam's; dense gradients are refused; no weight "
            "decay",
            typical_use="recommendation and language models with large nn.Embedding("
            "sparse=True) tables",
            reference="torch.optim.SparseAdam",
        ),
    Info(
            name="signum",
            cls=Signum,
            family="sign",
            year=2018,
            paper="Bernstein et al., signSGD: Compressed Optimisation for Non-Convex Problems "
            "(ICML 2018)",
            url="https://arxiv.org/abs/1802.04434",
            memory=1,
            memory_note="1 (m), kept with momentum=0 too (signSGD)",
            adaptive=False,
            momentum=True,
            bias_correction=False,
            decoupled_weight_decay="yes (scaled by lr)",
            sparse="poor: every coordinate moves by lr whatever its gradient frequency",
            rule_text="m = b*m + (1-b)*g;  w -= lr * (sign(m) + wd*w)",
            tuning="lr about Lion's (3-10x smaller than Adam's), decayed on a schedule; "
            "momentum 0.9; weight_decay as for Lion (keep lr*wd)",
            strengths="one bit per coordinate to communicate (majority vote across workers); "
            "the memory of SGD with momentum; robust to gradient scale",
            weaknesses="steps never shrink, so it oscillates at scale lr without a decaying "
            "schedule; biased when the gradient noise is skewed; usually behind Adam at small "
            "batch sizes",
            typical_use="communication-bound distributed training; a simple baseline for "
            "sign-based methods (Lion)",
            reference="optax.signum",
        ),
    Info(
            name="yogi",
            cls=Yogi,
            family="adam",
            year=2018,
            paper="Zaheer, Reddi, Sachan, Kale & Kumar, Adaptive Methods for Nonconvex "
            "Optimization (NeurIPS 2018)",
            url="https://papers.nips.cc/paper/8186-adaptive-methods-for-nonconvex-optimization",
            memory=2,
            memory_note="2 (m, v)",
            adaptive=True,
            momentum=True,
            bias_correction=True,
            decoupled_weight_decay="no (L2 in the gradient)",
            sparse="good: per-parameter scale",
            rule_text="m = b1*m + (1-b1)*g;  v = v - (1-b2)*sign(v - g^2)*g^2;  "
            "w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)",
            tuning="lr 1e-2 default (larger than Adam's); eps 1e-3 (much larger than Adam's "
            "1e-8, the paper's choice); betas 0.9/0.999; initial_accumulator_value 1e-6",
            strengths="v moves by at most (1-b2)*g^2 a step, so a burst of small gradients "
            "cannot collapse the denominator and blow up the step as in Adam; the paper "
            "reports gains over Adam with little tuning",
            weaknesses="the large eps damps the adaptivity for small gradients; v_0 and eps "
            "defaults differ across frameworks (optax also starts m at v_0); same "
            "generalisation caveats and memory as Adam",
            typical_use="drop-in Adam replacement: the paper's experiments cover image "
            "classification (ResNet, DenseNet), transformers for translation, named entity "
            "recognition, autoencoders and deep sets",
            reference="optax.yogi",
        ),
    Info(
            name="ademamix",
            cls=AdEMAMix,
            family="adam",
            year=2025,
            paper="Pagliardini, Ablin & Grangier, The AdEMAMix Optimizer: Better, Faster, "
            "Older (ICLR 2025)",
            url="https://arxiv.org/abs/2409.03137",
            memory=3,
            memory_note="3 (fast m1, slow m2, v)",
            adaptive=True,
            momentum=True,
            bias_correction=True,
            decoupled_weight_decay="yes (scaled by lr, AdamW style)",
            sparse="good: per-parameter scale",
            rule_text="m1 = b1*m1 + (1-b1)*g;  m2 = b3_t*m2 + (1-b3_t)*g;  "
            "v = b2*v + (1-b2)*g^2;  w -= lr * ((m1/(1-b1^t) + alpha_t*m2) / "
            "(sqrt(v)/sqrt(1-b2^t) + eps) + wd*w);  alpha_t, b3_t warm up over T steps",
            tuning="start from a tuned AdamW (same lr, b1, b2, wd); b3 0.999-0.9999 (smaller "
            "for short runs), alpha 5-10; set t_alpha_beta3 to about the run length, since "
            "a large alpha with a slow b3 from step 1 destabilises early training",
            strengths="uses gradients tens of thousands of steps old: the paper reports "
            "AdamW's loss in about half the tokens on LLM pre-training, lower minima and "
            "slower forgetting of earlier data",
            weaknesses="one more buffer than Adam; two more hyperparameters and a warm-up "
            "tied to the run length; little gain (or harm) in short runs or when the data "
            "distribution shifts, where old gradients mislead",
            typical_use="long language-model pre-training runs; image classification "
            "(ViT on ImageNet) in the paper",
            reference="optax.contrib.ademamix",
        ),
    Info(
            name="adopt",
            cls=ADOPT,
            family="adam",
            year=2024,
            paper="Taniguchi et al., ADOPT: Modified Adam Can Converge with Any beta2 with the "
            "Optimal Rate (NeurIPS 2024)",
            url="https://arxiv.org/abs/2411.02853",
            memory=2,
            memory_note="2 (m, v)",
            adaptive=True,
            momentum=True,
            bias_correction=False,
            decoupled_weight_decay="optional (decoupled=True, scaled by lr, AdamW style)",
            sparse="good: per-parameter scale",
            rule_text="first step: v = g^2 only;  then m = b1*m + (1-b1)*clip(g / max(sqrt(v), "
            "eps), t^0.25);  w -= lr * m;  v = b2*v + (1-b2)*g^2",
            tuning="Adam's lr (1e-3) and b1 (0.9) carry over; b2 may stay at 0.9999 (any b2 "
            "converges); eps 1e-6 is a floor on sqrt(v), not a sum; keep clip=True",
            strengths="converges at the optimal rate for any b2, without Adam's problem-"
            "dependent b2 or a bounded-noise assumption; no bias correction needed; the paper "
            "reports Adam-or-better results on image classification, generative models, "
            "language-model pre-training and fine-tuning, and reinforcement learning",
            weaknesses="the first step does not move the weights; without the clip a "
            "coordinate whose first gradient is near zero takes a huge step; the authors' "
            "package changed its first steps between versions (clip, m_0)",
            typical_use="a drop-in for Adam/AdamW where b2 is hard to tune or training is "
            "unstable: image classification, GPT-2 pre-training, LLM fine-tuning, deep RL",
            reference="optax.contrib.adopt",
        ),
    Info(
            name="lars",
            cls=LARS,
            family="sgd",
            year=2017,
            paper="You, Gitman & Ginsburg, Large Batch Training of Convolutional Networks "
            "(arXiv 2017)",
            url="https://arxiv.org/abs/1708.03888",
            memory=1,
            memory_note="1 (momentum buffer)",
            adaptive=True,
            momentum=True,
            bias_correction=False,
            decoupled_weight_decay="no (L2 added to the gradient before the trust ratio, and "
            "part of the ratio's denominator)",
            sparse="fair: plain SGD per coordinate, but the step size is set per tensor",
            rule_text="r = eta*||w||/(||g|| + wd*||w|| + eps) per tensor (1 if ||w|| or the "
            "denominator is 0);  b = mu*b + r*(g + wd*w);  w -= lr * b",
            tuning="made for large batches: warm up lr and scale it with the batch size, "
            "decay it polynomially (the paper: (1 - t/T)^2); trust_coefficient 0.001; "
            "momentum 0.9; weight_decay 5e-4 as for SGD on CNNs",
            strengths="each layer's step is about lr*eta times its weight norm, whatever the "
            "gradient scale, which keeps very large batches stable (AlexNet and ResNet-50 at "
            "batch 8k-32k); the memory of SGD with momentum",
            weaknesses="little gain over SGD at ordinary batch sizes; a per-tensor norm "
            "reduction each step; zero-initialised tensors get ratio 1; implementations "
            "differ (order of ratio and momentum, ratio's denominator, excluded layers)",
            typical_use="large-batch ImageNet training of CNNs; self-supervised pre-training "
            "(SimCLR, BYOL, VICReg)",
            reference="optax.lars",
        ),
    Info(
            name="psgdkron",
            cls=PSGDKron,
            family="psgd",
            year=2018,
            paper="Li, Preconditioned Stochastic Gradient Descent (IEEE TNNLS 2018, arXiv "
            "2015); Li, Preconditioner on Matrix Lie Group for SGD (ICLR 2019); Walters, "
            "kron_torch (2024)",
            url="https://arxiv.org/abs/1512.04202",
            memory=3,
            memory_note="1 (momentum) plus a triangular n_i x n_i factor per dimension "
            "(a square matrix: 2 more, so 3 in all) or a diagonal one (n_i numbers) for "
            "vectors, dimensions above max_size_triangular and memory_save_mode's choice; "
            "'one_diag' keeps a tall matrix's state near 1 buffer",
            adaptive=True,
            momentum=True,
            bias_correction=True,
            decoupled_weight_decay="yes (scaled by lr, default); tensors with 2+ "
            "dimensions only",
            sparse="fair: the preconditioner mixes coordinates within each dimension",
            rule_text="m = mu*m + (1-mu)*g;  m_hat = m/(1-mu^t);  every ceil(1/p) steps: "
            "A = Q m_hat, B = Q^-T v (v ~ N(0, I)), Q_i -= eta/||.|| * triu(A_i A_i^T - "
            "B_i B_i^T) Q_i;  u = Q^T Q m_hat (Q = Q_1 x ... x Q_k), clipped to RMS 1.1;  "
            "w -= lr * (u + wd*w)",
            tuning="lr about 3-10x smaller than Adam's (1e-3 default, 3e-4 in kron_torch); "
            "momentum 0.9; precondition_lr 0.1; keep the default update-probability "
            "schedule (every step for 500 steps, then down to 3%); memory_save_mode="
            "'one_diag' for very tall or wide matrices",
            strengths="a full-matrix (Kronecker) preconditioner per tensor like Shampoo, fitted "
            "by a few small triangular solves instead of matrix roots, so it is stable in "
            "float32/bfloat16 and cheap to refit; the RMS clip makes the step scale "
            "predictable; reported faster than AdamW on language models and RL",
            weaknesses="random: the fit uses Gaussian probes (seeded per tensor); O(n^3) "
            "work per refit and n^2 memory per dimension, so large dimensions need "
            "max_size_triangular or memory_save_mode; fitting needs a few hundred steps "
            "before the preconditioner is good; implementations differ (clip, schedule, "
            "balancing, float32 solves)",
            typical_use="transformers, RNNs and RL policies where Shampoo/SOAP-style "
            "preconditioning pays off; small and medium models where whole-tensor "
            "preconditioning is affordable",
            reference="pytorch_optimizer.Kron",
        ),
    Info(
            name="prodigy",
            cls=Prodigy,
            family="parameter-free",
            year=2024,
            paper="Mishchenko & Defazio, Prodigy: An Expeditiously Adaptive Parameter-Free "
            "Learner (ICML 2024)",
            url="https://arxiv.org/abs/2306.06101",
            memory=4,
            memory_note="4 (m, v, s, the start x0); 3 with betas[0]=0 (no m); s and x0 take "
            "1/slice_p of a parameter with slice_p > 1",
            adaptive=True,
            momentum=True,
            bias_correction=False,
            decoupled_weight_decay="yes by default (decouple=True, scaled by the step size "
            "d*lr); decouple=False adds the L2 term to the gradient",
            sparse="good: per-parameter scale, as Adam (dense gradients only)",
            rule_text="r = b3*r + d^2/d0*lr*<g, x0 - x>;  s = b3*s + d^2/d0*lr*g;  "
            "d = max(d, d_coef*r/|s|_1);  m = b1*m + (1-b1)*d*g;  v = b2*v + (1-b2)*d^2*g^2;  "
            "w -= d*lr * m / (sqrt(v) + d*eps)   (d per param group)",
            tuning="leave lr at 1.0 (it multiplies the estimated step) and decay it with a "
            "schedule (cosine) if needed; tune d_coef (0.5-2) instead of lr; "
            "safeguard_warmup=True with an lr warmup; growth_rate ~1.02 for a gentler start; "
            "betas (0.9, 0.999), beta3 = sqrt(beta2); weight_decay as for AdamW",
            strengths="no learning rate to tune: the step size d grows from d0 to about the "
            "distance to the solution within tens to hundreds of steps, and reaches close to "
            "hand-tuned Adam on vision, language and recommendation benchmarks in the paper; "
            "grows d faster than D-Adaptation",
            weaknesses="two more buffers than Adam; d never decreases, so a too large "
            "estimate (an early burst, a warmup without safeguard_warmup, d_coef > 1) is not "
            "undone; one d per parameter group, so splitting a model into groups changes the "
            "estimate; with bfloat16 weights the first steps (d0 scale) round away and d "
            "never grows (keep float32 master weights or raise d0); reads two numbers back "
            "per group and step (a device sync)",
            typical_use="training without a learning-rate search: fine-tuning diffusion models "
            "and LoRA adapters (its most common use), transformers, CNNs; as an AdamW "
            "replacement with lr=1 and a cosine schedule",
            reference="prodigyopt.Prodigy",
        ),
    Info(
            name="mars",
            cls=MARS,
            family="adam",
            year=2025,
            paper="Yuan, Liu, Wu, Zhou & Gu, MARS: Unleashing the Power of Variance Reduction "
            "for Training Large Models (ICML 2025)",
            url="https://arxiv.org/abs/2411.10438",
            memory=3,
            memory_note="3 (m, v, previous gradient); 4 with amsgrad; 2 with "
            "mars_type='lion' (m, previous gradient)",
            adaptive=True,
            momentum=True,
            bias_correction=True,
            decoupled_weight_decay="yes (scaled by lr, AdamW style)",
            sparse="fair: per-parameter scale, but the clip rescales a whole tensor's "
            "corrected gradient",
            rule_text="c = g + gamma*b1/(1-b1)*(g - g_prev);  c /= max(1, ||c||) per tensor;  "
            "m = b1*m + (1-b1)*c;  v = b2*v + (1-b2)*c^2;  "
            "w -= lr * (m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + wd*w)",
            tuning="start from a tuned AdamW: betas 0.95/0.99, gamma 0.025 and lr 3e-3 are "
            "the authors' defaults; gamma scales the correction (0: AdamW "
            "on the norm-clipped gradient), keep it small with noisy small batches",
            strengths="a variance-reduced (STORM-style) gradient at AdamW's cost of one "
            "gradient per step: the paper reports lower GPT-2 validation loss than AdamW "
            "for the same tokens; the per-tensor clip bounds what enters the moments",
            weaknesses="one more buffer than AdamW; the correction uses the previous batch's "
            "gradient, so with noisy batches it adds noise unless gamma is small; the clip "
            "to norm 1 makes the moments' scale depend on tensor size and loss scale (a "
            "large tensor's gradient is nearly always normalised); implementations differ "
            "(the authors' code steps 1-D parameters with AdamW, pytorch_optimizer divides "
            "eps by sqrt(1-b2^t), timm starts with c_1 = g_1)",
            typical_use="language-model pre-training (GPT-2 in the paper); a drop-in "
            "replacement for AdamW where its extra buffer is affordable",
            reference="pytorch_optimizer.MARS",
        ),
    Info(
            name="laprop",
            cls=LaProp,
            family="adam",
            year=2020,
            paper="Ziyin, Wang & Ueda, LaProp: Separating Momentum and Adaptivity in Adam "
            "(arXiv 2020)",
            url="https://arxiv.org/abs/2002.04839",
            memory=2,
            memory_note="2 (m, v); 3 with amsgrad",
            adaptive=True,
            momentum=True,
            bias_correction=True,
            decoupled_weight_decay="yes by default (applied after the step, scaled by lr); L2 "
            "in the gradient with decoupled_weight_decay=False",
            sparse="good: per-parameter scale",
            rule_text="v = b2*v + (1-b2)*g^2;  m = b1*m + (1-b1) * g/(sqrt(v/(1-b2^t)) + eps);  "
            "w -= lr/(1-b1^t) * m;  w *= 1 - lr*wd",
            tuning="Adam's settings carry over (authors' lr 4e-4, betas 0.9/0.999, eps 1e-15); "
            "b1 and b2 can be set independently: b1 up to 0.999 stays stable, a small b2 moves "
            "it towards signed-gradient descent with momentum",
            strengths="normalising before averaging bounds every step by about lr/(1-b1^t) "
            "whatever the betas, so mismatched betas cannot make it diverge (Adam needs "
            "b1 < sqrt(b2)); reported faster and more stable than Adam on noisy problems, "
            "style transfer, very deep MLPs, transformers and deep Q-learning",
            weaknesses="Adam's memory and its per-coordinate generalisation caveats; with the "
            "tiny default eps a coordinate with tiny gradients still takes a full normalised "
            "step; implementations differ under lr schedules (the reference keeps lr inside "
            "the momentum) and in where eps goes",
            typical_use="drop-in Adam replacement where Adam is unstable: noisy gradients, "
            "reinforcement learning, transformers trained with little warm-up",
            reference="pytorch_optimizer.LaProp",
        ),
    Info(
            name="novograd",
            cls=NovoGrad,
            family="adam",
            year=2019,
            paper="Ginsburg et al., Stochastic Gradient Methods with Layer-wise Adaptive "
            "Moments for Training of Deep Networks (arXiv 2019)",
            url="https://arxiv.org/abs/1905.11286",
            memory=1,
            memory_note="1 (m) plus one number per parameter tensor (v)",
            adaptive=True,
            momentum=True,
            bias_correction=False,
            decoupled_weight_decay="yes (wd*w added to the normalised gradient, inside the "
            "momentum)",
            sparse="poor: one scale per tensor, so rare features get no larger step",
            rule_text="v = ||g||^2 on step 1, then b2*v + (1-b2)*||g||^2 (per tensor);  "
            "m = b1*m + (g/sqrt(v + eps) + wd*w);  w -= lr * m",
            tuning="betas 0.95/0.98 and weight_decay about 1e-3 as in the paper; the heavy "
            "ball multiplies lr by up to 1/(1-b1) (20x at 0.95), so lr is about Adam's or "
            "smaller with grad_averaging=False; no warm-up needed; cosine or polynomial decay",
            strengths="half of Adam's memory; the step is invariant to each layer's gradient "
            "scale, robust to lr and initialisation without warm-up; strong at large batches "
            "(ResNet-50 up to 32k) and in speech recognition (Jasper, QuartzNet)",
            weaknesses="one scale per tensor: coordinates within a layer are not adapted; a "
            "per-tensor norm each step; implementations differ (eps inside or outside the "
            "root, grad averaging, first-step init, optax's b2 default 0.25)",
            typical_use="speech recognition (NVIDIA NeMo's Jasper and QuartzNet), large-batch "
            "image classification, language models",
            reference="optax.novograd",
        ),

    Info(
            name="dadaptadam",
            cls=DAdaptAdam,
            family="parameter-free",
            year=2023,
            paper="Defazio & Mishchenko, Learning-Rate-Free Learning by D-Adaptation "
            "(ICML 2023)",
            url="https://arxiv.org/abs/2301.07733",
            memory=3,
            memory_note="3 (m, v, s: the weighted gradient sum d is estimated from); "
            "d is per param group",
            adaptive=True,
            momentum=True,
            bias_correction=False,
            decoupled_weight_decay="optional (decouple=True: scaled by the step size d*lr; "
            "default: L2 in the gradient)",
            sparse="good: per-parameter scale (Adam's), one global step size d per group",
            rule_text="dlr = d*lr;  r = sqrt(b2)*r + (1-sqrt(b2))*dlr*sum(g*s/(sqrt(v)+eps));  "
            "m = b1*m + (1-b1)*dlr*g;  v = b2*v + (1-b2)*g^2;  "
            "s = sqrt(b2)*s + (1-sqrt(b2))*dlr*g;  "
            "d = max(d, r/((1-sqrt(b2))*|s|_1));  w -= m/(sqrt(v)+eps)",
            tuning="no learning rate to tune: leave lr at 1 (a multiplier of the estimate; "
            "lower it if unstable) and keep the usual schedule (cosine or linear decay, "
            "warmup) on it; d0 1e-6 rarely matters; growth_rate ~1.02 acts as a warmup; "
            "decouple=True for AdamW-style decay",
            strengths="matches hand-tuned Adam on vision and language tasks with no lr search "
            "(the paper's experiments); the estimate only grows, from a safe underestimate, "
            "so it does not diverge early",
            weaknesses="the estimate never shrinks: an overshoot early in training (or a "
            "noisy gradient correlation) keeps a too-large step, so a decaying schedule is "
            "still needed; one d per param group couples the layers of a group; a read-back "
            "per step; the first steps are tiny until d grows (with d0 = 1e-6)",
            typical_use="replacing a tuned Adam/AdamW when no learning-rate sweep is affordable: "
            "transformers, LSTMs, CNNs, fine-tuning (the paper's tasks include GPT, RoBERTa, "
            "ViT, DLRM, fastMRI)",
            reference="dadaptation.DAdaptAdam",
        ),
    Info(
            name="dadaptsgd",
            cls=DAdaptSGD,
            family="parameter-free",
            year=2023,
            paper="Defazio & Mishchenko, Learning-Rate-Free Learning by D-Adaptation "
            "(ICML 2023)",
            url="https://arxiv.org/abs/2301.07733",
            memory=2,
            memory_note="2 (s, the weighted gradient sum, and x0, the start; z = x0 - s is not "
            "stored); d is per param group",
            adaptive=False,
            momentum=True,
            bias_correction=False,
            decoupled_weight_decay="no (L2 in the gradient)",
            sparse="poor: one step size for every coordinate of a group",
            rule_text="dlr = d*lr/|g0|;  r += dlr*sum(g*s);  s += dlr*g;  "
            "d = max(d, 2*r/|s|_2);  z = x0 - s;  w = mom*w + (1-mom)*z",
            tuning="no learning rate to tune: leave lr at 1 (a multiplier of the estimate) and "
            "keep the usual step or cosine schedule on it; momentum 0.9 as for SGD; d0 1e-6 "
            "rarely matters; growth_rate ~1.02 acts as a warmup",
            strengths="matches hand-tuned SGD with momentum on convex problems and CNNs "
            "without an lr search; provably reaches the optimal rate of a tuned step size for "
            "convex Lipschitz problems (dual averaging form)",
            weaknesses="the estimate never shrinks and the step is scaled by the first "
            "gradient's norm, so an unrepresentative first batch mis-scales the run; one d "
            "per param group; needs a decaying schedule; the first steps are tiny until d "
            "grows",
            typical_use="image classification CNNs (the paper's CIFAR/ImageNet ResNets) and "
            "convex problems where SGD is the baseline and tuning its lr is costly",
            reference="dadaptation.DAdaptSGD",
        ),
    Info(
            name="adammini",
            cls=AdamMini,
            family="adam",
            year=2025,
            paper="Zhang, Chen, Li, Ding, Wu, Kingma, Ye, Luo & Sun, Adam-mini: Use Fewer "
            "Learning Rates To Gain More (ICLR 2025)",
            url="https://arxiv.org/abs/2406.16793",
            memory=1,
            memory_note="1 (m) plus one number per block (v): a row's worth per matrix row "
            "by default; 2 (AdamW's) with partition='element'",
            adaptive=True,
            momentum=True,
            bias_correction=True,
            decoupled_weight_decay="yes (scaled by lr, AdamW style)",
            sparse="fair: one scale per block, so a rare coordinate shares its block's step "
            "size",
            rule_text="m = b1*m + (1-b1)*g;  v_b = b2*v_b + (1-b2)*mean_{i in b}(g_i^2) per "
            "block b (rows by default);  w = w*(1 - lr*wd) - lr/(1-b1^t) * m / "
            "(sqrt(v_b)/sqrt(1-b2^t) + eps)",
            tuning="AdamW's lr, betas, eps and weight decay carry over (the paper reuses "
            "them); for Transformers set the partition per group: one block per head for "
            "queries and keys (partition=head_dim*dim), rows elsewhere, and weight_decay=0 "
            "for biases and norms",
            strengths="about half of AdamW's optimizer memory (v shrinks to one number per "
            "block) with AdamW's loss in the paper's LLM pre-training, SFT and RLHF runs; "
            "fewer memory transfers, so higher throughput when memory-bound",
            weaknesses="the partition matters: a block that mixes coordinates of very "
            "different curvature (a whole query matrix, say) shares one step size and can "
            "train unstably; rare coordinates are drowned by their block's frequent ones; "
            "the authors' package picks blocks from parameter names, which a renamed model "
            "silently changes",
            typical_use="memory-bound pre-training and fine-tuning of Transformers (Llama, "
            "GPT-2) where AdamW would be used; other networks with rows as blocks",
            reference="adam_mini.Adam_mini",
        ),
    Info(
            name="sophia",
            cls=Sophia,
            family="second-order",
            year=2024,
            paper="Liu, Li, Hall, Liang & Ma, Sophia: A Scalable Stochastic Second-order "
            "Optimizer for Language Model Pre-training (ICLR 2024)",
            url="https://arxiv.org/abs/2305.14342",
            memory=2,
            memory_note="2 (m, h); on a Hessian step (every update_interval steps) also, "
            "for the step only, a copy of the parameters and the gradient at the probe point",
            adaptive=True,
            momentum=True,
            bias_correction=False,
            decoupled_weight_decay="yes (scaled by lr, AdamW style)",
            sparse="fair: a per-coordinate curvature scale, but every coordinate's step is "
            "capped at lr; dense gradients only",
            rule_text="m = b1*m + (1-b1)*g;  every k steps: u ~ N(0, I), "
            "h = b2*h + (1-b2) * u*(grad(w + d*u) - g)/d  (Hutchinson, u*Hu);  "
            "w -= lr * (clip(m / max(gamma*h, eps), -1, 1) + wd*w)",
            tuning="lr about AdamW's (6e-4 default; the clip caps every coordinate's step at "
            "lr); gamma 0.01 (the paper's for Sophia-H): raise it when almost every "
            "coordinate is clipped (the authors aim for 10-50% unclipped), lower it when "
            "none is; betas 0.96/0.99, update_interval 10; weight decay as for AdamW (the "
            "authors' code uses 0.1)",
            strengths="a per-coordinate Newton-like step, m / (gamma*h), at little more than "
            "the cost of a first-order method (one extra gradient every update_interval "
            "steps); the clip bounds every step by lr, so negative or noisy curvature "
            "estimates fall back to sign momentum; the paper reports AdamW's GPT-2 "
            "perplexity in half the steps",
            weaknesses="step() needs a closure that reproduces its batch (evaluated twice on "
            "a Hessian step; torch's RNG is replayed for dropout); the Hessian-vector product "
            "is a forward difference of gradients (sqrt(eps) relative error, and clipping "
            "inside the closure enters it); the probes make a run depend on its seed; with "
            "no bias correction the first steps are sign steps of size lr; later "
            "independent comparisons report smaller gains over a well-tuned AdamW than the "
            "paper's",
            typical_use="language-model pre-training (GPT-2 125M-770M and GPT-NeoX in the "
            "paper); problems whose curvature differs widely across coordinates",
            reference="pytorch_optimizer.SophiaH",
        ),
    Info(
            name="soap",
            cls=SOAP,
            family="shampoo",
            year=2025,
            paper="Vyas et al., SOAP: Improving and Stabilizing Shampoo using Adam "
            "(ICLR 2025)",
            url="https://arxiv.org/abs/2409.11321",
            memory=2,
            memory_note="2 (m, v) + a d x d factor and its d x d eigenbasis per rotated "
            "dimension d (matrices' rows and columns; vectors with precondition_1d)",
            adaptive=True,
            momentum=True,
            bias_correction=True,
            decoupled_weight_decay="yes (scaled by lr, applied after the step, as the "
            "authors' code)",
            sparse="poor: the rotation mixes every coordinate of a layer, so a sparse gradient "
            "becomes a dense step",
            rule_text="first step: L = (1-bs)*G G^T, R = (1-bs)*G^T G, QL, QR = their "
            "eigenvectors, no move;  then G' = QL^T G QR;  m = b1*m + (1-b1)*G;  "
            "v = b2*v + (1-b2)*G'^2;  w -= lr*sqrt(1-b2^t)/(1-b1^t) * "
            "QL [(QL^T m QR) / (sqrt(v) + eps)] QR^T;  w *= 1 - lr*wd;  "
            "L = bs*L + (1-bs)*G G^T, R likewise;  every f steps QL = QR(L QL) "
            "(columns sorted by estimated eigenvalue, v permuted alike), QR likewise",
            tuning="the paper's defaults: betas (0.95, 0.95), shampoo_beta = beta2, "
            "eps 1e-8, weight_decay 0.01, lr 3e-3 with warmup and decay (start from a "
            "tuned AdamW's lr); precondition_frequency 10 (the paper finds SOAP degrades "
            "slowly as it grows, unlike Shampoo); lower max_precondition_dim to bound "
            "memory and the O(d^3) refreshes",
            strengths="Shampoo's curvature with Adam's per-coordinate adaptivity in the "
            "rotated basis, which keeps adapting between refreshes: the paper reports over "
            "40% fewer iterations and over 35% less wall-clock time than AdamW on 360M and "
            "660M language models, about 20% better than Shampoo on both; only one "
            "hyperparameter (the frequency) beyond AdamW's",
            weaknesses="two d x d matrices per dimension on top of Adam's buffers and an "
            "O(d^3) QR every f steps; the first step does not move the weights; no "
            "multi-tensor, fused or batched path (one tensor at a time, one instance per "
            "population member); the path depends on the gradients' rounding wherever a "
            "factor is rank-deficient (the null space's eigenvectors are set by noise), so "
            "batched and unbatched runs, or two devices, part ways; on HeavyBall's "
            "LightBench it passes 72.5% of tasks, level with AdamW (72.3%)",
            typical_use="language-model pre-training (the paper's 360M and 660M "
            "transformers) and other transformer or CNN training where AdamW is the "
            "baseline and the per-dimension matrices fit in memory",
            reference="pytorch_optimizer.SOAP",
        ),
    Info(
            name="shampoo",
            cls=Shampoo,
            family="shampoo",
            year=2018,
            paper="Gupta, Koren & Singer, Shampoo: Preconditioned Stochastic Tensor "
            "Optimization (ICML 2018); grafting from Anil et al. (2020)",
            url="https://arxiv.org/abs/1802.09568",
            memory=3,
            memory_note="3 (two momenta, the graft's sum of squares; 2 with graft sgd or "
            "none) + a d x d statistic and its d x d inverse root per dimension d of a "
            "matrix or higher tensor",
            adaptive=True,
            momentum=True,
            bias_correction=False,
            decoupled_weight_decay="optional (decoupled_weight_decay=True, scaled by lr); "
            "else L2 added to both directions after grafting",
            sparse="poor: the Kronecker factors mix every coordinate of a layer",
            rule_text="L = b2*L + (1-b2)*G G^T, R = b2*R + (1-b2)*G^T G (L0 = R0 = eps*I; "
            "sums when b2 = 1);  every f steps PL = L^(-1/4), PR = R^(-1/4) "
            "(-1/2k per dimension for order k);  D = PL G PR * ||Dg|| / ||PL G PR|| with "
            "the graft's step Dg (AdaGrad: G / (sqrt(sum G^2) + eps_g));  m = b1*m + D;  "
            "w -= lr * (b1*m + D) (nesterov);  the graft's own momentum step before step T",
            tuning="tune lr as for the graft (AdaGrad's by default) and keep it when "
            "switching; start_preconditioning_step a few steps (5); precondition_frequency 1 "
            "for small layers, tens to hundreds of steps for large ones; eps 1e-6 in "
            "float32 (the authors: down to 1e-12 in float64); betas (0.9, 0.999)",
            strengths="Kronecker-factored full-matrix AdaGrad: captures the correlations "
            "within each layer's rows and columns for two small matrices per layer; "
            "grafting makes a tuned first-order learning rate carry over; a Distributed "
            "Shampoo scored highest in AlgoPerf v0.5's external-tuning track (0.78 against "
            "NadamW's 0.57)",
            weaknesses="inverse 4th roots by SVD cost O(d^3) per dimension and recomputation "
            "(no blocking here: large layers take the graft's step); stale or ill-conditioned "
            "roots need the graft, the start step and eps; the eps*I start decays with b2, "
            "so long runs on rank-deficient statistics give large, noisy roots (the authors' "
            "code adds a ridge eps*lambda_max instead); several extra hyperparameters; "
            "no multi-tensor, fused or batched path",
            typical_use="transformers (translation, BERT), ResNet-50 and click-through-rate "
            "models in Anil et al.; layers of moderate width where a first-order baseline "
            "with a tuned learning rate exists to graft from",
            reference="pytorch_optimizer.ScalableShampoo",
        ),
    Info(
            name="adafactor",
            cls=Adafactor,
            family="adafactor",
            year=2018,
            paper="Shazeer & Stern, Adafactor: Adaptive Learning Rates with Sublinear Memory "
            "Cost (ICML 2018)",
            url="https://arxiv.org/abs/1804.04235",
            memory=0,
            memory_note="sublinear for matrices: a row and a column factor (n + m numbers, "
            "n x m the last two dimensions, per index of the leading ones: near a full "
            "buffer for small conv kernels); 1 buffer for vectors; no first moment",
            adaptive=True,
            momentum=False,
            bias_correction=False,
            decoupled_weight_decay="yes (scaled by lr, as in torch)",
            sparse="fair: per-row/column scale only for matrices",
            rule_text="b2_t = 1 - t^decay;  R, C = EMA of row/col means of g^2;  "
            "V = R C / mean(R);  U = g / sqrt(V);  U /= max(1, RMS(U)/d);  "
            "w -= max(eps2, RMS(w)) * min(lr, 1/sqrt(t)) * U",
            tuning="relative step size: lr caps it (default 1e-2); beta2_decay -0.8 and d 1.0 as "
            "in the paper; usually no warmup needed",
            strengths="near-zero optimizer memory for large matrices; steps scale with the "
            "parameter size (relative), update clipping for stability",
            weaknesses="no momentum by default; the factored estimate is coarse; torch's version "
            "differs from the paper and from HF/optax in lr and eps handling",
            typical_use="large transformers when optimizer memory matters (T5, large "
            "embeddings)",
            reference="torch.optim.Adafactor",
        ),
    Info(
            name="muon",
            cls=Muon,
            family="muon",
            year=2024,
            paper="Jordan et al., Muon: An optimizer for hidden layers in neural networks "
            "(2024); Liu et al., Muon is Scalable for LLM Training (2025, arXiv 2502.16982)",
            url="https://kellerjordan.github.io/posts/muon/",
            memory=1,
            memory_note="1 (momentum buffer); 2-D parameters only",
            adaptive=False,
            momentum=True,
            bias_correction=False,
            decoupled_weight_decay="yes (scaled by lr, as in torch; default 0.1)",
            sparse="poor: the update is a dense orthogonalized matrix",
            rule_text="B = mu*B + (1-mu)*g;  O = NewtonSchulz5((1-mu)*g + mu*B if nesterov else B) "
            "(bfloat16);  w = w*(1 - lr*wd) - lr*sqrt(max(1, m/n)) * O  (w is m x n)",
            tuning="lr about 0.02 with 'original' scaling; with adjust_lr_fn='match_rms_adamw' "
            "reuse AdamW's lr and weight decay; momentum 0.95, nesterov, 5 NS steps",
            strengths="orthogonalized updates give every direction of a weight matrix an equal "
            "step: fast training of hidden layers at SGD-momentum memory",
            weaknesses="2-D weights only (embeddings, heads, biases and norms need another "
            "optimizer); Newton-Schulz adds matmuls; update carries only bfloat16 precision",
            typical_use="hidden weight matrices of transformers and CNNs (flattened), paired "
            "with AdamW for the rest",
            reference="torch.optim.Muon",
        ),
    Info(
            name="sam",
            cls=SAM,
            family="wrapper",
            year=2021,
            paper="Foret et al., Sharpness-Aware Minimization for Efficiently Improving "
            "Generalization (ICLR 2021); adaptive: Kwon et al., ASAM (ICML 2021)",
            url="https://arxiv.org/abs/2010.01412",
            memory=1,
            memory_note="1 (the weights saved during a step) plus the base optimizer's",
            adaptive=False,
            momentum=False,
            bias_correction=False,
            decoupled_weight_decay="as the base optimizer",
            sparse="no: SAM refuses sparse gradients whatever the base optimizer (the "
            "perturbation needs the whole gradient)",
            rule_text="e = rho * T^2 g / ||T g|| (T = |w| if adaptive else 1);  "
            "base step at w with the gradient at w + e",
            tuning="rho 0.05 with SGD (0.01-0.2; ASAM 0.5-2); keep the base optimizer's "
            "usual lr and schedule; each step costs two forward/backward passes",
            strengths="seeks flat minima: better generalisation and robustness to label noise "
            "reported on image classification (CIFAR, ImageNet) and fine-tuning; wraps any "
            "optimizer",
            weaknesses="twice the compute per step; needs a closure (or first_step/second_step); "
            "one more hyperparameter; the gain depends on batch size and on the per-device "
            "(m-sharpness) batch used for the perturbation",
            typical_use="image classification with SGD, vision transformers, fine-tuning where "
            "generalisation matters more than compute",
            reference="oracle",
        ),
    Info(
            name="lookahead",
            cls=Lookahead,
            family="wrapper",
            year=2019,
            paper="Zhang, Lucas, Hinton & Ba, Lookahead Optimizer: k steps forward, 1 step back "
            "(NeurIPS 2019)",
            url="https://arxiv.org/abs/1907.08610",
            memory=1,
            memory_note="1 (the slow weights) plus the inner optimizer's",
            adaptive=False,
            momentum=False,
            bias_correction=False,
            decoupled_weight_decay="as the inner optimizer",
            sparse="as the inner optimizer: sparse gradients step through Adagrad or SGD; "
            "SparseAdam (sparse gradients only) is refused",
            rule_text="inner step every step;  every k steps: slow += alpha*(fast - slow); "
            "fast = slow",
            tuning="k 5-10, alpha 0.5 (the paper's defaults work across tasks); keep the inner "
            "optimizer's hyperparameters",
            strengths="reduces the variance of the inner optimizer and its sensitivity to lr "
            "and other hyperparameters at almost no compute; wraps any optimizer",
            weaknesses="one more buffer; can slow progress when the inner optimizer is already "
            "well tuned; the slow weights must be saved with checkpoints",
            typical_use="wrapping Adam or SGD on image classification, language modelling and "
            "translation (RAdam + Lookahead is known as Ranger)",
            reference="oracle",
        ),
    Info(
            name="schedulefreeadamw",
            cls=ScheduleFreeAdamW,
            family="schedule-free",
            year=2024,
            paper="Defazio et al., The Road Less Scheduled (NeurIPS 2024)",
            url="https://arxiv.org/abs/2405.15682",
            memory=2,
            memory_note="2 (z, v); x is recovered from y and z",
            adaptive=True,
            momentum=True,
            bias_correction=True,
            decoupled_weight_decay="yes (taken at y, scaled by lr)",
            sparse="good: per-parameter scale",
            rule_text="d = g/(sqrt(v/(1-b2^t)) + eps) + wd*y;  z -= lr_t*d;  "
            "x = (1-c)*x + c*z (c = w_t/sum w);  y = (1-b1)*z + b1*x",
            tuning="no schedule and no stopping time needed; lr typically 1-10x AdamW's "
            "(default 0.0025), warmup_steps as for AdamW; beta1 0.9 (0.95 for long runs); "
            "call train()/eval()",
            strengths="matches or beats tuned cosine schedules without knowing the training "
            "length; won the AlgoPerf 2024 self-tuning track; no momentum buffer",
            weaknesses="train()/eval() must be called (BatchNorm statistics need recomputing at "
            "x); sensitive to the lr/warmup pair; extra care with checkpoints",
            typical_use="training runs of unknown or changing length: language models, vision, "
            "AlgoPerf-style workloads",
            reference="schedulefree.AdamWScheduleFree",
        ),
    Info(
            name="schedulefreesgd",
            cls=ScheduleFreeSGD,
            family="schedule-free",
            year=2024,
            paper="Defazio et al., The Road Less Scheduled (NeurIPS 2024)",
            url="https://arxiv.org/abs/2405.15682",
            memory=1,
            memory_note="1 (z); x is recovered from y and z",
            adaptive=False,
            momentum=True,
            bias_correction=False,
            decoupled_weight_decay="no (L2 term added to the gradient, taken at y)",
            sparse="poor: dense z and y steps; untouched coordinates still move toward z",
            rule_text="d = g + wd*y;  z -= lr_t*d;  "
            "x = (1-c)*x + c*z (c = w_t/sum w);  y = (1-b)*z + b*x",
            tuning="no schedule and no stopping time needed; lr typically 10-50x a scheduled "
            "SGD's (reference default 1.0), warmup_steps as for SGD; momentum 0.9; "
            "call train()/eval()",
            strengths="matches tuned step/cosine schedules for SGD without knowing the training "
            "length; one buffer (as SGD with momentum), no second moment",
            weaknesses="train()/eval() must be called (BatchNorm statistics need recomputing at "
            "x); sensitive to the lr/warmup pair; not adaptive, so per-layer scales matter",
            typical_use="convex and vision workloads where SGD with momentum is the baseline, "
            "of unknown or changing length",
            reference="schedulefree.SGDScheduleFree",
        ),
]

ALIASES: list[Alias] = [
    Alias("gd", "sgd", {}, "plain gradient descent (SGD without momentum)",
          memory=0, memory_note="0",
          year=1847, paper="Cauchy, Methode generale pour la resolution des systemes "
          "d'equations simultanees (Comptes rendus de l'Academie des sciences 1847)"),
    Alias("momentum", "sgd", {"momentum": 0.9}, "SGD with heavy-ball momentum 0.9",
          memory=1, memory_note="1 (the momentum buffer b)",
          year=1964, paper="Polyak, Some methods of speeding up the convergence of iteration "
          "methods (USSR Comput. Math. and Math. Phys. 1964)"),
    Alias("nag", "sgd", {"momentum": 0.9, "nesterov": True},
          "Nesterov accelerated gradient (SGD, Nesterov momentum 0.9)",
          memory=1, memory_note="1 (the momentum buffer b)",
          year=1983, paper="Nesterov, A method for solving the convex programming problem with "
          "convergence rate O(1/k^2) (Soviet Math. Doklady 1983); Sutskever et al. (ICML 2013) "
          "for deep learning"),
    Alias("amsgrad", "adam", {"amsgrad": True},
          "Adam with the running maximum of v (Reddi et al., ICLR 2018)",
          memory=3, memory_note="3 (m, v and the running maximum of v)",
          year=2018, paper="Reddi, Kale & Kumar, On the Convergence of Adam and Beyond "
          "(ICLR 2018)"),
]
