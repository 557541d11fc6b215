"""The one table that describes every optimizer.

The registry (`create`, `available`), the command line (`optimlab list/explain/compare`),
the README's algorithm list and the tests all read this table; nothing else repeats it.
The math itself lives beside each class: :attr:`Info.rule_latex` is read from the
``.. math::`` block of the class docstring, so it is written exactly once.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field

from .adam import Adam, AdamW
from .sgd import SGD


@dataclass(frozen=True)
class Info:
    """Everything optimlab knows about one algorithm.

    ``memory`` counts the extra parameter-sized buffers the optimizer keeps at its
    defaults (Adam: 2, for m and v); ``memory_note`` says how options change it.
    ``reference`` is what the tests check it against: a ``torch.optim`` class, a NumPy
    oracle in ``tests/oracles``, or the ``schedulefree`` package.
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
    needs_closure: bool = False
    wrapper: bool = False

    @property
    def rule_latex(self) -> str:
        """The LaTeX update rule, taken from the class docstring's ``.. math::`` block."""
        doc = self.cls.__doc__ or ""
        match = re.search(r"\.\. math::\n(.*?)(?:\n\s*\n)", doc, re.S)
        return textwrap.dedent(match.group(1)).strip() if match else ""

    @property
    def defaults(self) -> dict:
        """The constructor's default hyperparameters."""
        import inspect

        sig = inspect.signature(self.cls.__init__)
        skip = {"self", "params", "optimizer", "foreach", "skip_nonfinite"}
        return {
            k: v.default
            for k, v in sig.parameters.items()
            if k not in skip and v.default is not inspect.Parameter.empty
            and v.kind is not inspect.Parameter.VAR_KEYWORD
        }


@dataclass(frozen=True)
class Alias:
    """A registry name that stands for a class with preset hyperparameters."""

    name: str
    target: str
    preset: dict = field(default_factory=dict)
    summary: str = ""


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
]

ALIASES: list[Alias] = [
    Alias("gd", "sgd", {}, "plain gradient descent (SGD without momentum)"),
    Alias("momentum", "sgd", {"momentum": 0.9}, "SGD with heavy-ball momentum 0.9"),
    Alias("nag", "sgd", {"momentum": 0.9, "nesterov": True},
          "Nesterov accelerated gradient (SGD, Nesterov momentum 0.9)"),
    Alias("amsgrad", "adam", {"amsgrad": True},
          "Adam with the running maximum of v (Reddi et al., ICLR 2018)"),
]
