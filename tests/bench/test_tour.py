"""The tour runs end to end (with tiny budgets) and writes one self-contained page."""

import re

from optimlab.bench.tour import RACES
from optimlab.cli import main


def test_quick_tour_writes_one_page(tmp_path, capsys):
    assert main(["tour", "--quick", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert f"wrote {tmp_path / 'tour.html'}" in captured.out
    assert "mnist1d: 12 runs" in captured.err  # progress lines go to stderr
    page = (tmp_path / "tour.html").read_text()
    assert len(re.findall(r"<section>", page)) == len(RACES) + 3
    # one plot per race, MNIST-1D's curves and lr sensitivity, the profile, the GD variants
    assert page.count("data:image/png;base64,") == len(RACES) + 2 + 1 + 1
    for title, *_ in RACES:
        assert title in page.replace("&#x27;", "'")
    for name in ("sgd", "adagrad", "rmsprop", "adam", "mini-batch"):
        assert name in page
    assert "http://" not in page and "https://" not in page
    for task in ("mnist1d", "digits", "sparse-logreg"):
        assert (tmp_path / task / "report.html").exists()
    # the cross-task profile names every optimizer with a score
    profile = page[page.index("Performance profile over"):]
    for name in ("sgd", "adagrad", "rmsprop", "adam"):
        assert re.search(rf"{name}\s+\S", profile)


def test_tour_to_an_unwritable_place(capsys):
    assert main(["tour", "--quick", "--out", "/proc/no/tour"]) == 2
    assert "cannot write the tour" in capsys.readouterr().err
