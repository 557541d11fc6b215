"""The optimizer reference: one static HTML page per algorithm, and an index.

``optimlab docs [--out optimlab-docs]`` calls :func:`write_docs`, which writes

* ``index.html``: every algorithm of the catalog in one table (family, year, what it keeps
  in memory, what the tests check it against), and the registry's aliases;
* ``<name>.html`` per algorithm: its update rule, rendered from the class docstring's
  ``.. math::`` block, its arguments with their defaults (the docstring's ``Args:`` section,
  :attr:`~optimlab.optim.catalog.Info.arguments`), what it can do (its capability record),
  when to use it and what it costs, its example, and the names that build it; the
  docstring's prose paragraphs (what the formula's symbols mean, caveats, its references)
  in their order around these;
* ``katex/``: the KaTeX this package vendors, and ``render.js``, which renders the math
  when a page opens (a file rather than an inline script, so the playground can serve the
  pages under its Content-Security-Policy: ``optimlab serve`` keeps them at ``/docs/`` and
  links each optimizer's card to its page).

Everything comes from the catalog and the classes, so a page cannot drift from the code;
nothing is fetched from the network (the pages open from disk, offline). The only
dependencies are the library's own (torch): no web extra is needed.
"""

from __future__ import annotations

import html
import inspect
import re
import shutil
from pathlib import Path

from .._files import NEW_FILE, write_atomically
from ..optim import palette
from ..optim.catalog import TABLE, Info
from ..optim.registry import Entry, available, summary_line

__all__ = ["write_docs", "page_name"]

KATEX_DIR = Path(__file__).parent / "static" / "vendor" / "katex"

_CSS = """\
body { margin: 0 auto; max-width: 60rem; padding: 1rem 1.5rem 3rem;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330; }
a { color: #2f6fdf; }
.note, .warning { border-left: 3px solid #c9a227; padding: 0.1rem 0 0.1rem 0.7rem; }
.warning { border-left-color: #c0392b; }
h1 { margin-bottom: .2rem; }
h1 small { font-weight: 400; color: #5f6b7a; font-size: .6em; }
h2 { margin-top: 2rem; border-bottom: 1px solid #d9dee6; padding-bottom: .2rem; }
.summary { font-size: 1.1rem; }
.meta { color: #5f6b7a; }
.swatch { display: inline-block; width: .9em; height: .9em; border-radius: 2px;
          vertical-align: -.1em; margin-right: .35em; }
table { border-collapse: collapse; margin: .5rem 0; width: 100%; }
.table-wrap { overflow-x: auto; }
td code, p a { overflow-wrap: anywhere; }
p, dd { overflow-wrap: break-word; }
th, td { border: 1px solid #d9dee6; padding: .3rem .5rem; text-align: left;
         vertical-align: top; }
th { background: #f0f2f5; }
td.num { text-align: right; white-space: nowrap; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em; }
pre { background: #f6f7f9; border: 1px solid #d9dee6; padding: .6rem .8rem;
      overflow-x: auto; }
.math { overflow-x: auto; padding: .3rem 0; }
dt { font-weight: 600; margin-top: .6rem; }
dd { margin-left: 1.2rem; }
"""

#: ``render.js``, which every page runs once it is parsed: each .math block and inline
#: formula through KaTeX (a file, not an inline script, so the playground can serve the
#: pages under its Content-Security-Policy, which allows no inline script)
_RENDER_JS = """\
document.querySelectorAll("[data-latex]").forEach((el) => {
  const display = el.classList.contains("math");
  try {
    katex.render(el.dataset.latex, el, { displayMode: display, throwOnError: true });
  } catch (err) {
    el.textContent = el.dataset.latex;
    el.classList.add("math-error");
  }
});
"""


def page_name(info: Info) -> str:
    """The file name of an algorithm's page: ``adam.html``."""
    return f"{info.name}.html"


def write_docs(out: str | Path) -> Path:
    """Write the reference into the folder ``out`` (created if needed; its pages, style,
    script and the vendored KaTeX files are replaced, any other file there is left as it
    is); returns the index page's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # every file is written whole or not at all (write_atomically): a full disk or an
    # interrupt leaves the previous reference's file, never a truncated page or script.
    # The vendored files are written over; anything else in katex/ is the user's and stays
    shutil.copytree(KATEX_DIR, out / "katex", dirs_exist_ok=True, copy_function=_copy)
    write_atomically(out / "style.css", _CSS, mode=NEW_FILE)
    write_atomically(out / "render.js", _RENDER_JS, mode=NEW_FILE)
    entries = available()
    for info in TABLE:
        aliases = [e for e in entries if e.alias_of == info.name]
        write_atomically(out / page_name(info), _page(info, aliases), mode=NEW_FILE)
    index = out / "index.html"  # last: the pages it links to are there
    write_atomically(index, _index(entries), mode=NEW_FILE)
    return index


def _copy(src: str, dst: str) -> str:
    """``copytree``'s copy of one vendored file, written atomically (:func:`write_atomically`)."""
    write_atomically(Path(dst), Path(src).read_bytes(), mode=NEW_FILE)
    return dst


# ----------------------------------------------------------------------------- text


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


_INLINE = re.compile(r"``(.+?)``|:math:`(.+?)`|:(?:class|func|meth|attr|mod|data):`~?(.+?)`"
                     r"|(https?://[^\s<>\"'`]*[^\s<>\"'`.,;:)\]])"
                     r"|(?<![\w*])\*\*([^*\s](?:[^*]*?[^*\s])?)\*\*(?![\w*])"
                     r"|(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])")


def rst_inline(text: str) -> str:
    """A docstring's inline markup as HTML: ``code``, :math:`x` (rendered by KaTeX on the
    page), cross-references such as :class:`~optimlab.optim.SGD` (their last name, as
    code), web addresses (links, to the papers: nothing is loaded from them), **strong**
    and *emphasis*; everything else escaped."""
    out, end = [], 0
    for match in _INLINE.finditer(text):
        out.append(_e(text[end:match.start()]))
        code, math, ref, url, strong, emphasis = match.groups()
        if code is not None:
            out.append(f"<code>{_e(code)}</code>")
        elif math is not None:
            out.append(f'<span data-latex="{_e(math)}">{_e(math)}</span>')
        elif ref is not None:
            out.append(f"<code>{_e(ref.split('.')[-1])}</code>")
        elif url is not None:
            out.append(f'<a href="{_e(url)}">{_e(url)}</a>')
        elif strong is not None:
            out.append(f"<strong>{_e(strong)}</strong>")
        else:
            out.append(f"<em>{_e(emphasis)}</em>")
        end = match.end()
    out.append(_e(text[end:]))
    return "".join(out)


def _page_head(title: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title>"
            f'<link rel="icon" href="data:,">'  # no request for a favicon
            f'<link rel="stylesheet" href="katex/katex.min.css">'
            f'<link rel="stylesheet" href="style.css">'
            f'<script defer src="katex/katex.min.js"></script>'
            f'<script defer src="render.js"></script></head><body>')


def _table(headers: list[str] | None, rows: list[list[str]],
           numeric: frozenset[int] = frozenset(), label: str = "table") -> str:
    """An HTML table (no header row where ``headers`` is None); cells are HTML already
    (escape them before). It sits in a region named ``label`` that scrolls sideways
    (focusable, so the keyboard scrolls it too), so a table wider than a narrow window
    (a phone's 400 px) does not widen the page; a long name in code breaks."""
    head = "" if headers is None else \
        "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr></thead>"
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric
                                    else f"<td>{c}</td>" for i, c in enumerate(row)) + "</tr>"
                   for row in rows)
    return (f'<div class="table-wrap" tabindex="0" role="region" aria-label="{_e(label)}">'
            f"<table>{head}<tbody>{body}</tbody></table></div>")


def _admonitions(doc: str) -> list[tuple[str, str]]:
    """The docstring's ``.. note::`` and ``.. warning::`` blocks: ``(kind, text)``, the text
    on one line (rST inline markup kept, for :func:`rst_inline`)."""
    lines = inspect.cleandoc(doc).splitlines()
    out = []
    for i, line in enumerate(lines):
        match = re.match(r"\s*\.\. (note|warning)::\s*(.*)$", line)
        if not match:
            continue
        indent = len(line) - len(line.lstrip())
        block = [match.group(2)] if match.group(2) else []
        for body in lines[i + 1:]:
            if body.strip() and len(body) - len(body.lstrip()) <= indent:
                break
            block.append(body.strip())
        text = " ".join(" ".join(block).split())
        if text:
            out.append((match.group(1), text))
    return out


#: the line that opens a Google-style section of a docstring (``Args:``, ``Example:``)
_SECTION = re.compile(r"[A-Z][A-Za-z ]*:")
#: a bullet of an rST list
_BULLET = re.compile(r"[*+-] ")


def _prose(doc: str) -> list[tuple[str, str]]:
    """The docstring's prose, in its order, past the summary: every top-level paragraph or
    bullet list that is not a directive (``.. math::``, ``.. note::``, ...) or a section
    (``Args:``, ``Example:``; a ``Reference:`` paragraph is prose). Each comes as
    ``(where, html)``: where is ``"intro"`` before the math block, ``"rule"`` after it and
    before the first section (the definitions the formula uses), ``"after"`` past a
    section (the references); html is a ``<p>`` or ``<ul>`` through :func:`rst_inline`."""
    lines = inspect.cleandoc(doc).expandtabs().splitlines()
    chunks: list[list[str]] = []  # a top-level line and whatever belongs to it
    blank = True
    for line in lines:
        if line.strip() and not line[0].isspace() and (blank or not chunks):
            chunks.append([line])
        elif chunks:
            chunks[-1].append(line)
        blank = not line.strip()
    out, where = [], "intro"
    for chunk in chunks[1:]:  # the first is the summary
        head = chunk[0].strip()
        if head.startswith(".. "):
            if re.match(r"\.\. math::", head) and where == "intro":
                where = "rule"
            continue
        if _SECTION.fullmatch(head):
            where = "after"
            continue
        html_ = _prose_html(chunk)
        if html_:
            out.append((where, html_))
    return out


def _prose_html(chunk: list[str]) -> str:
    """A top-level paragraph as ``<p>``, a bullet list as ``<ul>`` (a paragraph that leads
    into a list without a blank line comes first); a list item's continuation lines are
    the indented ones."""
    paragraphs: list[list[str]] = []
    items: list[list[str]] = []
    for line in chunk:
        text = line.strip()
        if not text:
            if paragraphs and paragraphs[-1] and not items:
                paragraphs.append([])
            continue
        if not line[0].isspace() and _BULLET.match(text):
            items.append([text[2:]])
        elif items:
            items[-1].append(text)
        else:
            if not paragraphs:
                paragraphs.append([])
            paragraphs[-1].append(text)
    parts = [f"<p>{rst_inline(' '.join(' '.join(p).split()))}</p>" for p in paragraphs if p]
    if items:
        parts.append("<ul>" + "".join(f"<li>{rst_inline(' '.join(' '.join(i).split()))}</li>"
                                      for i in items) + "</ul>")
    return "".join(parts)


def _example(doc: str) -> str | None:
    """The docstring's ``Example:`` block, dedented, or None."""
    lines = inspect.cleandoc(doc).splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "Example:"), None)
    if start is None:
        return None
    block = []
    for line in lines[start + 1:]:
        if line.strip() and not line.startswith(" "):
            break
        block.append(line)
    text = inspect.cleandoc("\n".join(block))
    return text or None


# ----------------------------------------------------------------------------- pages


def _capabilities(info: Info) -> list[list[str]]:
    """What the optimizer can do, in words, from its capability record."""
    caps = info.capabilities
    batching = {"elementwise": "every member at once, the rule broadcast over a member axis",
                "vmap": "every member at once, the rule mapped with torch.func.vmap",
                "member": "one instance per member"}[caps.batching]
    sparse = "only sparse ones" if caps.sparse_only else "yes" if caps.sparse else "no"
    rows = [
        ("a step over a parameter group", "all its tensors at once (multi-tensor)"
         if caps.multi_tensor else "tensor by tensor"),
        ("fused kernel (fused=)", "yes: generated C on a CPU" if caps.fusable else "no"),
        ("in a population (races, sweeps)", batching),
        ("sparse gradients", sparse),
        ("needs a closure in step()", "yes" if caps.needs_closure else "no"),
        ("parameters", "matrices only" if caps.needs_matrix else "any shape"),
        ("parameter groups", "one only" if caps.single_group else "any number"),
        ("complex parameters", "yes, as their real view" if caps.complex else "no"),
        ("compact state (state_precision=)", "yes" if "state_precision" in
         inspect.signature(info.cls.__init__).parameters else "no"),
        ("wraps another optimizer", f"yes (<code>{_e(caps.wraps)}=</code>)" if caps.wraps
         else "no"),
    ]
    return [[_e(what), value if "<code>" in value else _e(value)] for what, value in rows]


def _arguments(info: Info) -> str:
    documented = info.arguments
    signature = inspect.signature(info.cls.__init__).parameters
    rows = []
    for name, (kind, text) in documented.items():
        param = signature.get(name)
        if param is None or param.default is inspect.Parameter.empty:
            default = "required" if param is not None and param.kind not in (
                param.VAR_KEYWORD, param.VAR_POSITIONAL) else ""
        else:
            default = f"<code>{_e(_default_text(param.default))}</code>"
        label = f"**{name}" if param is not None and param.kind is param.VAR_KEYWORD else name
        rows.append([f"<code>{_e(label)}</code>", _e(kind), default, rst_inline(text)])
    return _table(["argument", "type", "default", "what it does"], rows, label="arguments")


def _source(reference: str) -> str:
    """Where a reference implementation comes from: ``torch.optim``, the package it is in
    (``optax``, ``pytorch_optimizer``, ``schedulefree``, ...), or ``oracle``."""
    if reference == "oracle":
        return "oracle"
    if reference.startswith("torch.optim"):
        return "torch.optim"
    return reference.split(".")[0]


def _sources_sentence(infos: list[Info]) -> str:
    """The sources the tests check the optimizers against, as HTML, read from the
    reference column: torch.optim first, then every other package in catalog order, with
    how many algorithms each checks, and the NumPy transcriptions last."""
    counts: dict[str, int] = {}
    for info in infos:
        source = _source(info.reference)
        counts[source] = counts.get(source, 0) + 1
    order = sorted(counts, key=lambda s: (s != "torch.optim", s == "oracle"))
    parts = [("a NumPy transcription of the paper written for the tests"
              if source == "oracle" else f"<code>{_e(source)}</code>") + f" ({counts[source]})"
             for source in order]
    if len(parts) > 1:
        parts[-1] = "or " + parts[-1]
    return ", ".join(parts)


def _checked(reference: str) -> str:
    """What the tests check an optimizer against, as HTML (``oracle``: the NumPy
    transcription of its paper in the tests)."""
    if reference == "oracle":
        return "a NumPy transcription of the paper (<code>tests/oracles</code>)"
    return f"<code>{_e(reference)}</code>"


def _default_text(value: object) -> str:
    if isinstance(value, type):
        return value.__name__
    return repr(value)


def _page(info: Info, aliases: list[Entry]) -> str:
    doc = info.cls.__doc__ or ""
    summary = summary_line(doc)
    cls = info.cls.__name__
    parts = [_page_head(f"{cls}: optimlab"),
             '<p><a href="index.html">All optimizers</a></p>',
             f'<h1><span class="swatch" style="background:{_e(palette.color(info.name))}">'
             f"</span>{_e(cls)} <small>optimlab.{_e(cls)}, "
             f'optimlab.create("{_e(info.name)}", ...)</small></h1>',
             f'<p class="summary">{rst_inline(summary)}</p>',
             f'<p class="meta">{_e(info.family)} family · {info.year} · '
             f'<a href="{_e(info.url)}">{_e(info.paper)}</a> · checked against '
             f"{_checked(info.reference)}</p>"]
    prose = _prose(doc)
    parts += [text for where, text in prose if where == "intro"]
    parts.append("<h2>Update rule</h2>")
    if info.rule_latex:
        parts.append(f'<div class="math" data-latex="{_e(info.rule_latex)}">'
                     f"<pre>{_e(info.rule_latex)}</pre></div>")
    parts += [text for where, text in prose if where == "rule"]
    parts.append(f"<p>In one line: <code>{_e(info.rule_text)}</code></p>")
    parts.append("<h2>Arguments</h2>" + _arguments(info))
    for kind, text in _admonitions(doc):
        parts.append(f'<p class="{kind}"><strong>{kind.capitalize()}:</strong> '
                     f"{rst_inline(text)}</p>")
    after = [text for where, text in prose if where == "after"]
    if after:  # the References paragraph, after the sections
        heading = "<h2>References</h2>" if all(
            re.match(r"<p>References?:", text) for text in after) else ""
        parts.append(heading + "".join(after))
    example = _example(doc)
    if example:
        parts.append(f"<h2>Example</h2><pre><code>{_e(example)}</code></pre>")
    parts.append("<h2>When to use it</h2><dl>")
    for label, text in (("typical use", info.typical_use), ("strengths", info.strengths),
                        ("weaknesses", info.weaknesses), ("tuning", info.tuning),
                        ("extra memory", info.memory_note), ("sparse data", info.sparse),
                        ("weight decay", info.decoupled_weight_decay)):
        parts.append(f"<dt>{_e(label)}</dt><dd>{rst_inline(text)}</dd>")
    parts.append("</dl>")
    parts.append("<h2>What it can do</h2>" + _table(None, _capabilities(info),
                                                     label="what it can do"))
    if aliases:
        rows = [[f"<code>{_e(a.name)}</code>",
                 _e(", ".join(f"{k}={v!r}" for k, v in a.preset.items()) or "(none)"),
                 rst_inline(a.summary)] for a in aliases]
        parts.append("<h2>Other names</h2><p>Registry names that build this class with "
                     "preset arguments (<code>optimlab.create(name, params)</code>):</p>"
                     + _table(["name", "preset", "what it is"], rows, label="names"))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _index(entries: list[Entry]) -> str:
    rows = []
    for info in TABLE:
        rows.append([f'<span class="swatch" style="background:{_e(palette.color(info.name))}">'
                     f'</span><a href="{_e(page_name(info))}">{_e(info.cls.__name__)}</a>',
                     _e(info.family), str(info.year),
                     "yes" if info.adaptive else "no", "yes" if info.momentum else "no",
                     _e(info.memory_note), _checked(info.reference)])
    aliases = [[f"<code>{_e(e.name)}</code>",
                f'<a href="{_e(e.alias_of)}.html">{_e(e.cls.__name__)}</a>',
                _e(", ".join(f"{k}={v!r}" for k, v in e.preset.items()) or "(none)")]
               for e in entries if e.alias_of]
    return "\n".join([
        _page_head("optimlab: the optimizers"),
        "<h1>optimlab <small>the optimizers</small></h1>",
        f"<p>Each of the {len(TABLE)} algorithms below is a drop-in "
        "<code>torch.optim.Optimizer</code>: <code>optimlab.Adam(model.parameters(), "
        'lr=1e-3)</code>, or by name <code>optimlab.create("adam", model.parameters())</code>. '
        "Its page has the update rule, every argument with its default, what it can do "
        "and when to use it, all read from the code. The tests check each one against an "
        "independent implementation (last column; how many each checks in parentheses): "
        f"{_sources_sentence(TABLE)}.</p>",
        _table(["optimizer", "family", "year", "adaptive lr", "momentum", "extra memory",
                "checked against"], rows, numeric=frozenset({2}), label="the optimizers"),
        "<h2>Other names</h2><p>Registry names for a class with preset arguments:</p>",
        _table(["name", "class", "preset"], aliases, label="other names"),
        "</body></html>\n",
    ])
