"""The advisor's HTML report: every file written, the page self-contained and telling the
story (answer, range tests, rungs, candidates), the JSON exactly the advice's."""

import base64
import json
import os
import re
from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pytest
import torch
from torch import nn

from optimlab.bench.advice_report import write_advice_report
from optimlab.bench.advisor import advise_task, difference_words
from optimlab.bench.store import RunStore
from optimlab.bench.tasks import Task

pytestmark = pytest.mark.filterwarnings("ignore::optimlab.bench.advisor.AdvisorWarning")


def _linear_task() -> Task:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g) + 0.01 * torch.randn(256, 1, generator=g)
    return Task(name="linear", x_train=x[:192], y_train=y[:192], x_test=x[192:],
                y_test=y[192:], models={"linear": lambda: nn.Linear(8, 1)},
                default_model="linear", loss="mse", metric="loss", description="test")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("advice")
    store = RunStore(root / "runs.db")
    advice = advise_task(_linear_task(), optimizers=["momentum", "adam"], steps=27,
                         batch_size=32, seeds=2, store=store)
    paths = write_advice_report(advice, store, root / "report" / "nested")
    return advice, paths


def test_every_file_is_written(report):
    advice, paths = report
    assert set(paths) == {"report", "range_tests", "tournament", "json"}
    assert {p.name for p in paths.values()} == {"advice.html", "range-tests.png",
                                                "tournament.png", "advice.json"}
    for key in ("range_tests", "tournament"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_page_is_self_contained(report):
    _, paths = report
    page = paths["report"].read_text("utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"<script|<link|@import", page, re.I)
    assert "http://" not in page and "https://" not in page
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 2
    assert {paths["range_tests"].read_bytes(), paths["tournament"].read_bytes()} == {
        base64.b64decode(i) for i in images}


def test_the_page_tells_the_story(report):
    advice, paths = report
    page = paths["report"].read_text("utf-8")
    text = re.sub(r"<[^>]+>", "", page)
    assert f"{advice.optimizer} at lr = {advice.hparams['lr']:.3g}" in text
    assert advice.statement.replace("&", "&amp;") in page
    assert "optimlab.create(" in page  # the code to paste, escaped in a <pre>
    sections = ["The answer", "Stage 1: range tests", "Stage 2: the tournament",
                "Stage 3: every candidate"]
    where = [page.index(f"<h2>{s}</h2>") for s in sections]
    assert where == sorted(where)
    for c in advice.candidates:
        assert f"<td>{c['optimizer']}</td>" in page
    assert len(advice.rungs) >= 2
    for i, rung in enumerate(advice.rungs, 1):
        assert f"<h3>Rung {i}" in page
        head = page.index(f"<h3>Rung {i}")
        table = page[head:page.index("</table>", head)]
        assert table.count("<tr><td") == len(rung["arms"])
    assert "recommended" in page and "Adam at its default lr" in page
    # the gain over Adam at its default rate, signed as better-by and said by direction
    better = advice.versus["adam_default"]["better_by"]
    assert better > 0 and difference_words(better, "loss", False).endswith(" lower loss")
    assert f'<td class="num">{better:+.3g} ({difference_words(better, "loss", False)})</td>' in page
    assert f"{advice.steps_spent:,} member-steps" in text
    assert f"({advice.runs_trained:,} runs trained)" in text  # and not read back


def test_the_json_is_the_advice(report):
    advice, paths = report
    from optimlab.bench.store.jsonio import json_data

    def refuse(constant):  # strict JSON: a non-finite number is null, never Infinity
        raise AssertionError(constant)

    written = json.loads(paths["json"].read_text("utf-8"), parse_constant=refuse)
    assert json.dumps(written, sort_keys=True) == json.dumps(json_data(advice.to_json(), finite=True),
                                                             sort_keys=True)
    assert written["optimizer"] == advice.optimizer


def test_a_file_in_the_way_is_refused(report, tmp_path):
    advice, _ = report
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        write_advice_report(advice, RunStore(tmp_path / "other.db"), blocker)


def test_a_store_path_that_is_not_utf8_is_shown_escaped(report, tmp_path):
    """A store path with a byte that is not UTF-8 (a surrogate once decoded) is written into
    the page as an escape, instead of failing to encode the page."""
    advice, _ = report
    odd = str(tmp_path / os.fsdecode(b"odd\xff") / "runs.db")
    paths = write_advice_report(replace(advice, store_path=odd), RunStore(advice.store_path),
                                tmp_path / "out")
    page = paths["report"].read_text("utf-8")
    assert f"Store: {tmp_path}/odd\\xff/runs.db, sweeps " in page
    assert json.loads(paths["json"].read_text("utf-8"))["store"] == odd


def test_an_arm_back_after_rungs_it_missed_is_not_joined_across_them(report):
    """Adam at its default rate, cut at rung 1, is back in the final rung (rung 3) as the
    reference: its points are not one line from rung 1 to rung 3, as the caption says an
    arm's line ends where it was cut."""
    from optimlab.bench.advice_report import _tournament_figure

    advice, _ = report

    def arm(optimizer, lr, score):
        return {"optimizer": optimizer, "lr": lr, "score": score, "then": "went on"}

    rungs = [{"horizon": 3, "seeds": 2, "arms": [arm("momentum", 0.1, 1.0), arm("adam", 0.03, 2.0),
                                                  arm("adam", 0.001, 5.0)]},
             {"horizon": 9, "seeds": 2, "arms": [arm("momentum", 0.1, 0.5), arm("adam", 0.03, 0.8)]},
             {"horizon": 27, "seeds": 2, "arms": [arm("momentum", 0.1, 0.2), arm("adam", 0.03, 0.3),
                                                   arm("adam", 0.001, 4.0)]}]
    fig = _tournament_figure(replace(advice, rungs=rungs), RunStore(advice.store_path))
    left = fig.axes[0]
    lines = [line for line in left.get_lines() if len(line.get_xdata()) > 1
             and line.get_transform() == left.transData]
    assert len(lines) == 2  # momentum 0.1 and adam 0.03, rungs 1 to 3; adam 0.001 has none
    for line in lines:
        assert np.array_equal(np.diff(np.asarray(line.get_xdata(), dtype=float)), [1, 1])
    # adam 0.001 is still drawn at both rungs it ran, as points
    points = {(float(line.get_xdata()[0]), float(line.get_ydata()[0]))
              for line in left.get_lines() if len(line.get_xdata()) == 1}
    assert {(0.0, 5.0), (2.0, 4.0)} <= points
    assert "line ends where it was cut" in left.get_title()
    # each optimizer's points, legend entry and final curves carry its own marker, besides
    # its colour (WCAG 1.4.1)
    marks = {line.get_label(): line.get_marker() for line in left.get_legend().get_lines()}
    assert marks.keys() == {"momentum", "adam"} and marks["momentum"] != marks["adam"]
    assert {line.get_marker() for line in left.get_lines() if len(line.get_xdata()) == 1} \
        == set(marks.values())
    finals = [line for line in fig.axes[1].get_lines()
              if (line.get_gid() or "").startswith("final:")]
    assert finals and all(line.get_marker() == marks[line.get_gid().split(":")[1]]
                          for line in finals)


def test_full_batch_training_is_said_so(report):
    from optimlab.bench.advice_report import _html

    advice, _ = report
    pngs = {"range_tests": b"", "tournament": b""}
    now = datetime.now(timezone.utc)
    page = _html(replace(advice, batch_size=None), RunStore(advice.store_path), pngs, now)
    assert f"For training of {advice.steps} steps, full batch" in page
    assert "batch size" not in re.sub(r"<[^>]+>", "", page).split("Compute spent")[0]
    assert f"steps, batch size {advice.batch_size}." in _html(advice, RunStore(advice.store_path),
                                                               pngs, now)


def test_finalists_ranked_apart_never_print_alike(report):
    """Two finalists whose losses differ by 3e-6, ranked 1 and 2, both printed 0.1234."""
    from optimlab.bench.advice_report import _candidate_rows

    advice, _ = report
    finalists = [{"optimizer": name, "status": "final", "rank": rank, "metric": value,
                  "ci": 6.7e-5} for name, rank, value in (("p", "1", 0.1234293),
                                                           ("q", "2", 0.1234324))]
    rows = _candidate_rows(replace(advice, candidates=finalists))
    assert [row[-1] for row in rows] == ["0.123429 ± 6.7e-05", "0.123432 ± 6.7e-05"]


def test_the_page_says_validation_edges_ties_and_repeated_seeds(report):
    """The page called the selection set's metric "test"; an edge, a tie at a cut and seeds
    that repeat one run were not shown."""
    from optimlab.bench.advice_report import _candidate_rows, _html, _rung_rows

    advice, paths = report
    text = re.sub(r"<[^>]+>", "", paths["report"].read_text("utf-8"))
    assert "test loss" not in text and "validation loss" in text
    assert "Validation, not test." in text and "optimistic" in text
    final = ", ".join(map(str, advice.plan.final_seeds))
    assert f"The final rung trained seeds {final}, none of which an earlier stage" in text
    pngs = {"range_tests": b"", "tournament": b""}
    now = datetime.now(timezone.utc)
    odd = replace(advice, edge={"range_test": "top", "final_rung": None},
                  seeds_repeat="full batch from the model's own initial weights",
                  validation_examples=12)
    page = re.sub(r"<[^>]+>", "", _html(odd, RunStore(advice.store_path), pngs, now))
    assert "At the edge of the search." in page and "is the top of its grid" in page
    assert "no spread: the seeds repeat one run: full batch" in page
    assert "A small validation set. 12 examples, fewer than 100" in page
    rows = _candidate_rows(replace(advice, candidates=[
        {**advice.candidates[0], "range_edge": "top", "final_edge": "bottom"}]))
    assert rows[0][3].endswith("(top of grid)") and rows[0][6].endswith("(bottom of its final rates)")
    tied = replace(advice, rungs=[{**advice.rungs[0], "arms": [
        {**advice.rungs[0]["arms"][0], "then": "went on (tied at the cut)"}]}, advice.rungs[-1]])
    assert _rung_rows(tied, 0)[0][-1] == "went on to rung 2 (tied at the cut)"


def _page_text(advice) -> str:
    from optimlab.bench.advice_report import _html

    pngs = {"range_tests": b"", "tournament": b""}
    page = _html(advice, RunStore(advice.store_path), pngs, datetime.now(timezone.utc))
    return re.sub(r"<[^>]+>", "", page).replace("&amp;", "&")


@pytest.mark.parametrize("ci", [float("inf"), None])  # None: read back from advice.json
def test_seeds_all_alike_are_said_so_in_the_headline_and_the_table(report, ci):
    """Two seeds with one value have no interval (analysis.mean_ci gives inf): the headline
    said "(2 seeds: no interval)" and the Stage 3 cell a bare "0.97", neither saying why."""
    from optimlab.bench.advice_report import _candidate_rows

    advice, _ = report
    final = {**advice.candidates[0], "status": "final", "rank": "1", "metric": 0.97, "ci": ci}
    alike = replace(advice, metric={**advice.metric, "name": "accuracy", "higher_is_better": True,
                                    "value": 0.97, "ci": ci, "seeds": 2},
                    candidates=[final], seeds_repeat=None)
    text = _page_text(alike)
    assert "validation accuracy 0.97 (2 seeds, all alike: no interval)" in text
    assert "(2 seeds: no interval)" not in text
    assert _candidate_rows(alike)[0][-1] == "0.97 (2 seeds, all alike: no interval)"
    one = replace(alike, metric={**alike.metric, "seeds": 1})
    assert "validation accuracy 0.97 (1 seed: no interval)" in _page_text(one)
    assert _candidate_rows(one)[0][-1] == "0.97 (1 seed: no interval)"
    # a candidate cut before the final rung has no mean at all
    cut = replace(alike, candidates=[{**final, "status": "out at rung 1", "metric": None}])
    assert _candidate_rows(cut)[0][-1] == "—"


def test_the_headline_interval_has_the_tables_digits(report):
    """The headline printed ± 0.00797 (.3g) where the Stage 3 table printed ± 0.008 (.2g)."""
    from optimlab.bench.advice_report import _candidate_rows

    advice, _ = report
    final = {**advice.candidates[0], "status": "final", "rank": "1", "metric": 0.97,
             "ci": 0.00797}
    odd = replace(advice, metric={**advice.metric, "name": "accuracy", "value": 0.97,
                                  "ci": 0.00797, "seeds": 3}, candidates=[final], seeds_repeat=None)
    text = _page_text(odd)
    assert "validation accuracy 0.97 ± 0.008 (95% interval over 3 seeds)" in text
    assert "0.00797" not in text.split("Stage 1: range tests")[0]
    assert _candidate_rows(odd)[0][-1] == "0.97 ± 0.008"


def test_a_small_validation_set_is_worded_for_its_metric(report):
    """"one example is 1/12 of an accuracy" was said of a loss too."""
    advice, _ = report
    small = replace(advice, validation_examples=12)
    text = _page_text(replace(small, metric={**advice.metric, "name": "loss"}))
    assert "A small validation set. 12 examples, fewer than 100" in text
    assert "accuracy" not in text.split("A small validation set.")[1].split("Give more")[0]
    assert "a mean loss over so few examples is noisy" in text
    text = _page_text(replace(small, metric={**advice.metric, "name": "accuracy",
                                             "higher_is_better": True}))
    assert "12 examples, fewer than 100: one example is 1/12 of an accuracy" in text


def test_the_edge_of_the_search_is_said_once(report):
    """The statement ends with the edge sentence, and the page printed it again in its own
    paragraph, headed "At the edge of the search." and starting "At the edge of the search:"."""
    from optimlab.bench.advisor import _edge_words

    advice, _ = report
    edged = replace(advice, edge={"range_test": None, "final_rung": "top"}, hparams={"lr": 0.1})
    sentence = _edge_words(edged)
    assert "lr=0.1 is the highest" in sentence
    # the advisor's statement carries it: no paragraph of its own
    carried = replace(edged, statement="Adam is best." + sentence)
    text = _page_text(carried)
    assert text.count("At the edge of the search") == 1
    assert text.count("lr=0.1 is the highest") == 1
    # a statement without it: the paragraph, its prefix not repeated under its heading
    text = _page_text(replace(edged, statement="Adam is best."))
    assert text.count("At the edge of the search") == 1
    assert "At the edge of the search. lr=0.1 is the highest" in text
    assert "At the edge of the search: " not in text
    # the range test's edge starts a sentence
    ranged = replace(advice, edge={"range_test": "top", "final_rung": None}, statement="x.")
    assert "At the edge of the search. The range test's suggestion" in _page_text(ranged)
