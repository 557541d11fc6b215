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
