"""The optimizer reference (``optimlab docs``): a page per algorithm, read from the code,
that opens offline. Its math rendering in a real browser is in ``test_e2e.py``."""

import html
import inspect
import re
from html.parser import HTMLParser

import pytest

from optimlab.cli import main
from optimlab.optim.catalog import TABLE
from optimlab.optim.registry import available
from optimlab.web.docs import KATEX_DIR, page_name, rst_inline, write_docs


class _Refs(HTMLParser):
    """The resources a page loads (script src, stylesheet href), its links, and the LaTeX
    of each element KaTeX renders (``data-latex``)."""

    def __init__(self):
        super().__init__()
        self.loads, self.links, self.latex = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.loads.append(attrs["src"])
        if tag == "link" and attrs.get("rel") == "stylesheet":
            self.loads.append(attrs["href"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if "data-latex" in attrs:
            self.latex.append(attrs["data-latex"])


def _refs(path):
    parser = _Refs()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
    return write_docs(out).parent


def test_every_algorithm_has_a_page_the_index_links_to(docs):
    index = _refs(docs / "index.html")
    for info in TABLE:
        assert page_name(info) in index.links, info.name
        assert (docs / page_name(info)).is_file()
    text = (docs / "index.html").read_text(encoding="utf-8")
    for entry in available():
        if entry.alias_of:  # every alias is listed, and links to its class's page
            assert f"<code>{entry.name}</code>" in text
            assert f"{entry.alias_of}.html" in index.links


def test_pages_load_only_local_files_that_exist(docs):
    for page in sorted(docs.glob("*.html")):
        refs = _refs(page)
        assert refs.loads, page.name
        for src in refs.loads:  # no CDN: every script and stylesheet is beside the page
            assert not re.match(r"[a-z]+:", src), (page.name, src)
            assert (docs / src).is_file(), (page.name, src)
        for href in refs.links:  # links are other pages here, or the papers
            assert href.startswith("https://") or (docs / href).is_file(), (page.name, href)
    assert (docs / "katex" / "fonts" / "KaTeX_Main-Regular.woff2").is_file()


@pytest.mark.parametrize("info", TABLE, ids=lambda i: i.name)
def test_a_page_holds_the_rule_every_argument_and_its_default(docs, info):
    page = docs / page_name(info)
    text = page.read_text(encoding="utf-8")
    assert info.rule_latex and info.rule_latex in _refs(page).latex
    signature = inspect.signature(info.cls.__init__).parameters
    for name, param in signature.items():
        if name == "self":
            continue
        label = f"**{name}" if param.kind is param.VAR_KEYWORD else name
        row = re.search(rf"<tr><td><code>{re.escape(label)}</code></td>(.*?)</tr>", text)
        assert row, f"{info.name}: no row for {name}"
        if param.default is not param.empty and not isinstance(param.default, type):
            assert f"<code>{_escaped(repr(param.default))}</code>" in row.group(1), name
    assert info.cls.__name__ in text and _escaped(info.paper) in text
    # what it can do says what the constructor takes (Adagrad keeps no moment, yet its sum
    # of squares can be compact)
    for row, flag in (("compact state (state_precision=)", "state_precision"),
                      ("fused kernel (fused=)", "fused")):
        cell = re.search(rf"<td>{re.escape(row)}</td><td>(.*?)</td>", text).group(1)
        assert cell.startswith("yes") == (flag in signature), (row, cell)
    # every page has its example, and the docstring's notes and warnings (they were dropped)
    assert "<h2>Example</h2>" in text, info.name
    doc = info.cls.__doc__ or ""
    for kind in ("note", "warning"):
        assert text.count(f'<p class="{kind}">') == doc.count(f".. {kind}::"), (info.name, kind)


def _escaped(text):
    return html.escape(text, quote=True)


def test_writing_again_replaces_its_files_and_keeps_the_users(docs):
    """The vendored KaTeX files are written over; a file of the user's in katex/ is kept
    (the folder was deleted whole, with whatever a site kept there)."""
    (docs / "katex" / "katex.min.js").write_text("broken")
    (docs / "katex" / "my-notes.txt").write_text("precious")
    write_docs(docs)
    assert (docs / "katex" / "my-notes.txt").read_text() == "precious"
    assert (docs / "katex" / "katex.min.js").read_bytes() == \
        (KATEX_DIR / "katex.min.js").read_bytes()


def test_a_summary_wrapped_over_two_lines_is_whole(docs):
    # Sophia's first docstring paragraph spans two lines: the page and `explain` cut it
    page = (docs / "sophia.html").read_text()
    assert "Hessian&#x27;s diagonal, clipped coordinate by coordinate.</p>" in page
    from optimlab.optim.registry import resolve

    assert resolve("sophia").summary.endswith("clipped coordinate by coordinate.")


def test_rst_inline_markup():
    assert rst_inline("``a<b`` and :math:`\\gamma` in :class:`~optimlab.optim.SGD`, "
                      "*outside*, 2*3 and **kw") == (
        "<code>a&lt;b</code> and <span data-latex=\"\\gamma\">\\gamma</span> in "
        "<code>SGD</code>, <em>outside</em>, 2*3 and **kw")


def test_the_docs_command(tmp_path, capsys):
    assert main(["docs", "--out", str(tmp_path / "ref")]) == 0
    assert f"page for each of the {len(TABLE)} optimizers" in capsys.readouterr().out
    assert (tmp_path / "ref" / "adam.html").is_file()
    assert main(["docs", "--out", str(tmp_path / "missing" / "ref")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err


class _Text(HTMLParser):
    """A page's visible text (what a reader sees before KaTeX renders the math)."""

    def __init__(self):
        super().__init__()
        self.parts = []

    def handle_data(self, data):
        self.parts.append(data)


def _text(html_text):
    parser = _Text()
    parser.feed(html_text)
    return "".join(parser.parts)


def _plain(rst):
    """A docstring paragraph as the page shows it: its inline markup taken off (a
    cross-reference shows its last name), bullets too."""
    rst = re.sub(r"^\* ", "", rst, flags=re.M)
    rst = re.sub(r"``(.+?)``", r"\1", rst, flags=re.S)
    rst = re.sub(r":math:`(.+?)`", r"\1", rst, flags=re.S)
    rst = re.sub(r":\w+:`~?([^`]+?)`", lambda m: m.group(1).split(".")[-1], rst)
    rst = re.sub(r"\*\*(.+?)\*\*", r"\1", rst, flags=re.S)
    return re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])", r"\1", rst)


def _paragraphs(doc):
    """The docstring's top-level prose after the summary: no directive (math, note,
    warning), no section (Args:, Example:), no indented block."""
    out = []
    for block in re.split(r"\n\s*\n", inspect.cleandoc(doc))[1:]:
        first = block.splitlines()[0]
        if first[:1].isspace() or first.startswith(".. ") or \
                re.fullmatch(r"[A-Z][A-Za-z ]*:", first.strip()):
            continue
        out.append(block)
    return out


@pytest.mark.parametrize("info", TABLE, ids=lambda i: i.name)
def test_a_page_holds_every_prose_paragraph_of_its_docstring(docs, info):
    # only the summary, the math, Args, notes and the example were rendered: the paragraphs
    # that define the formula's symbols, the caveats and the references were dropped
    page = (docs / page_name(info)).read_text()
    text = re.sub(r"\s+", "", html.unescape(_text(page)))
    paragraphs = _paragraphs(info.cls.__doc__ or "")
    assert paragraphs, info.name
    for paragraph in paragraphs:
        assert re.sub(r"\s+", "", _plain(paragraph)) in text, (info.name, paragraph[:60])
    if re.search(r"^References?:", inspect.cleandoc(info.cls.__doc__), re.M):
        assert "<h2>References</h2>" in page, info.name


def test_the_prose_sits_where_the_docstring_puts_it(docs):
    page = (docs / "adam.html").read_text()
    rule, args = page.index("<h2>Update rule</h2>"), page.index("<h2>Arguments</h2>")
    math_end, one_line = page.index("</pre></div>"), page.index("<p>In one line:")
    # the definition of d in the cautious step follows the formula that uses it
    cautious = page.index("is the tensor&#x27;s size")
    assert rule < math_end < cautious < one_line < args
    assert page.index("<p>Drop-in for <code>torch.optim.Adam</code>") < rule
    # the references come after the arguments, their address a link (nothing loaded)
    refs = page.index("<h2>References</h2>")
    assert args < refs < page.index("<h2>Example</h2>")
    assert '<a href="https://arxiv.org/abs/1412.6980">https://arxiv.org/abs/1412.6980</a>.' \
        in page[refs:]
    sgd = (docs / "sgd.html").read_text()
    assert "(<code>nn.Embedding(sparse=True)</code>) step as in torch" in sgd
    assert "weight decay is refused." in sgd
    assert "a default <code>weight_decay</code> of 1e-2" in (docs / "adamw.html").read_text()
    assert "3-10x smaller" in (docs / "lion.html").read_text()
    mini = (docs / "adammini.html").read_text()
    assert mini.count("<li>") == 4 and "<li><code>&quot;tensor&quot;</code>: one block" in mini


def test_no_page_shows_rst_markup(docs):
    for page in sorted(docs.glob("*.html")):
        text = page.read_text(encoding="utf-8")
        # code (the example's w ** 2, **base_kwargs) and LaTeX keep their asterisks
        text = re.sub(r"<code>.*?</code>|<pre>.*?</pre>|data-latex=\"[^\"]*\"", "", text,
                      flags=re.S)
        text = re.sub(r"<span data-latex[^>]*>.*?</span>", "", text, flags=re.S)
        assert "**" not in text, page.name
        assert "``" not in text and ":math:`" not in text, page.name
    assert "keeps <strong>one</strong> estimate" in (docs / "dadaptadam.html").read_text()


def test_rst_inline_strong_and_links():
    assert rst_inline("keeps **one** estimate, *not* **kw or 2**3") == (
        "keeps <strong>one</strong> estimate, <em>not</em> **kw or 2**3")
    assert rst_inline("ICLR 2015, https://arxiv.org/abs/1412.6980.") == (
        'ICLR 2015, <a href="https://arxiv.org/abs/1412.6980">'
        "https://arxiv.org/abs/1412.6980</a>.")
    assert rst_inline("``https://x.org/a``") == "<code>https://x.org/a</code>"


def test_the_index_names_every_source_the_tests_check_against(docs):
    text = (docs / "index.html").read_text(encoding="utf-8")
    sentence = re.search(r"The tests check each one against .*?</p>", text, re.S).group(0)
    sources = {"torch.optim" if r.startswith("torch.optim.") else r.split(".")[0]
               for r in (info.reference for info in TABLE)}
    assert {"optax", "pytorch_optimizer", "oracle"} <= sources
    for source in sources - {"oracle"}:
        count = sum(1 for info in TABLE if info.reference.startswith(source + "."))
        assert f"<code>{source}</code> ({count})" in sentence, source
    assert "a NumPy transcription of the paper" in sentence
    # a third-party package (pytorch_optimizer) or optax is not "the authors' package"
    assert "the authors' package" not in sentence


class _Assets(HTMLParser):
    """Every address a page would load by itself: any src, a <link>'s href, srcset,
    poster, data, and url(...) in a style attribute."""

    def __init__(self):
        super().__init__()
        self.loads = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value is None:
                continue
            if name in ("src", "srcset", "poster", "data", "background") or \
                    (tag == "link" and name == "href"):
                self.loads.append(value)
            if name == "style":
                self.loads += re.findall(r"url\(\s*['\"]?([^'\")]+)", value)


def test_the_site_loads_nothing_remote(docs):
    for page in sorted(docs.glob("*.html")):
        parser = _Assets()
        parser.feed(page.read_text(encoding="utf-8"))
        for src in parser.loads:
            assert not re.match(r"(https?:)?//", src, re.I), (page.name, src)
    for css in [docs / "style.css", *docs.glob("katex/*.css")]:
        assert not re.search(r"url\(\s*['\"]?(https?:)?//", css.read_text(), re.I), css
    assert "http" not in (docs / "render.js").read_text()
