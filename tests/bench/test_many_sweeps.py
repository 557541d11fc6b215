"""A store of many sweeps, and sweeps of many optimizers: what grew with their number.

* Opening a new sweep read and parsed every stored sweep's configuration, twice (the lookup of
  a sweep an earlier optimlab keyed with its grid in another order): creating N sweeps was
  O(N^2) (1,000 sweeps took 245 s). The sweeps' ``free_key`` column finds it by an index; a
  store an earlier optimlab wrote gets the column, filled once, from its first writer.
* ``optimlab profile``'s table had a column per optimizer (759 characters at 42), its
  picture's legend covered the curves and the title; ``optimlab runs`` listed every
  optimizer of a sweep in one cell (466 characters at 42).

Nothing here is timed: the tests count the stored configurations parsed, and measure widths.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from optimlab.bench.store import RunStore, canonical_json, canonical_key
from optimlab.bench.store import runstore as runstore_module
from optimlab.bench.store import schema as schema_module
from optimlab.bench.store.schema import StoreWarning
from tests.bench.catalog_names import CATALOG_NAMES

OPTIMIZERS = CATALOG_NAMES


def _config(i: int, optimizers=("sgd", "adam"), lrs=(0.01, 0.1)) -> dict:
    return {"task": "digits", "model": None, "optimizers": list(optimizers), "lrs": list(lrs),
            "seeds": 1, "train": {"steps": 10 + i, "model": None}}


@pytest.fixture
def parsed(monkeypatch):
    """How many stored configurations (JSON texts) the store module parses."""
    count = [0]
    loads = runstore_module._loads

    def counting(text):
        count[0] += 1
        return loads(text)

    monkeypatch.setattr(runstore_module, "_loads", counting)
    return count


def _opening_parses(store, parsed, config) -> int:
    before = parsed[0]
    store.open_sweep(config, environment={})
    return parsed[0] - before


def test_opening_a_new_sweep_reads_no_stored_configuration(store_url, parsed):
    """The 4th and the 31st new sweep parse as few stored configurations: none (the old
    lookup parsed every one, twice: 6, then 60); each is still found again with its grid
    in any order, and a configuration that differs is a new sweep."""
    with RunStore(store_url) as store:
        for i in range(3):
            store.open_sweep(_config(i), environment={})
        few = _opening_parses(store, parsed, _config(3))
        for i in range(4, 30):
            store.open_sweep(_config(i), environment={})
        many = _opening_parses(store, parsed, _config(30))
        assert (few, many) == (0, 0)
        assert parsed[0] == 0  # nor did finding the sweeps stored before
        for i in (0, 17, 30):
            turned = _config(i, optimizers=("adam", "sgd"), lrs=(0.1, 0.01))
            assert store.find_sweep(turned) == store.open_sweep(turned) == i + 1
        assert store.find_sweep(_config(31)) is None
        assert store.con.execute("SELECT COUNT(*) FROM sweeps").fetchone()[0] == 31


def _as_an_earlier_optimlab_left_it(store_url, legacy: dict) -> None:
    """The store as an optimlab without the ``free_key`` column wrote it: the column and its
    index gone, and one more sweep keyed by its configuration as given (before the key left
    out the order of its optimizers and rates)."""
    with RunStore(store_url) as store:
        store.con.execute("DROP INDEX IF EXISTS sweeps_free_key")
        if "free_key" in store._columns("sweeps"):
            store.con.execute("ALTER TABLE sweeps DROP COLUMN free_key")
        store.con.execute("INSERT INTO sweeps (key, name, task, model, config, created_at) "
                          "VALUES (?, 'legacy', 'digits', NULL, ?, '2024-01-01T00:00:00+00:00')",
                          (canonical_key(legacy), canonical_json(legacy)))


def test_a_store_an_earlier_optimlab_wrote_gets_its_free_keys_once(store_url, parsed):
    """A reader of a store without the column finds its sweeps as before (reading the
    configurations); its first writer adds the column and fills it, parsing each stored
    configuration once; from then on, opening a sweep parses none, and the sweep keyed as
    given is found with its grid in another order, not stored again."""
    db = store_url
    with RunStore(db) as store:
        for i in range(5):
            store.open_sweep(_config(i), environment={})
    legacy = _config(99, optimizers=("sgd", "adam"), lrs=(0.1, 0.01))
    turned = _config(99, optimizers=("adam", "sgd"), lrs=(0.01, 0.1))
    assert canonical_key(legacy) not in runstore_module.sweep_keys(turned)
    _as_an_earlier_optimlab_left_it(db, legacy)
    with RunStore(db, readonly=True) as reader:
        assert "free_key" not in reader._columns("sweeps")

    with RunStore(db, readonly=True) as reader:
        assert reader.find_sweep(turned) == 6 and reader.find_sweep(_config(7)) is None
    parsed[0] = 0
    with RunStore(db) as store:
        assert parsed[0] == 6  # each stored configuration once, by the migration
        assert "free_key" in store._columns("sweeps")
        assert store.con.execute(
            "SELECT COUNT(*) FROM sweeps WHERE free_key IS NULL").fetchone()[0] == 0
        assert _opening_parses(store, parsed, turned) == 0
        assert store.open_sweep(turned) == 6
        assert _opening_parses(store, parsed, _config(7)) == 0
        assert store.find_sweep(_config(7)) == 7
    parsed[0] = 0
    with RunStore(db) as again:  # nothing left to fill: no write, nothing parsed
        assert parsed[0] == 0 and again.find_sweep(turned) == 6


def test_a_sweep_an_earlier_optimlab_adds_later_is_read_once(store_url, parsed):
    """An optimlab without the column, writing the same store, leaves its sweeps' free_key
    NULL: such a sweep is found all the same, and the first open_sweep that looks for one
    writes its key, so that no later one parses it again."""
    with RunStore(store_url) as store:
        store.open_sweep(_config(0), environment={})
        legacy = _config(1, optimizers=("sgd", "adam"))
        turned = _config(1, optimizers=("adam", "sgd"))
        store.con.execute("INSERT INTO sweeps (key, config, created_at) VALUES (?, ?, 'x')",
                          (canonical_key(legacy), canonical_json(legacy)))
        store.con.execute("INSERT INTO sweeps (key, config, created_at) VALUES ('k', "
                          "'not json', 'x')")
        assert store.find_sweep(turned) == 2  # read, not written
        parsed[0] = 0
        assert store.open_sweep(_config(2), environment={}) == 4
        assert parsed[0] == 2  # the two unkeyed sweeps, once, and their key written
        assert _opening_parses(store, parsed, _config(3)) == 0
        assert store.open_sweep(turned) == 2
        keys = dict(store.con.execute(
            "SELECT id, free_key FROM sweeps WHERE id IN (2, 3)").fetchall())
        assert keys[3] == "" and keys[2] == runstore_module._free_key(json.loads(
            canonical_json(legacy)))


# ------------------------------------------------------------------------------- profile


def _profile(names: list[str]):
    from optimlab.bench.profile import Profile

    taus = np.linspace(1, 4, 40)
    return Profile(times={"1: digits": {o: 0.02 + 0.001 * i for i, o in enumerate(names)},
                          "2: sparse-logreg": {o: 0.03 + 0.002 * i for i, o in enumerate(names)}},
                   taus=taus,
                   rho={o: np.clip((taus - 1) / (1 + i % 5), 0, 1) for i, o in enumerate(names)},
                   scores={o: 1 - 0.01 * i for i, o in enumerate(names)})


def _table_width(profile) -> int:
    table = profile.table().split("\ntime to the target:")[0]  # the notes are prose lines
    return max(len(line) for line in table.splitlines())


def test_the_profile_table_grows_down_with_the_optimizers_not_across():
    """42 optimizers made a table 759 characters wide: past a width it has a row per
    optimizer; two keep a column each (as the command line's tests read them)."""
    wide = _profile(OPTIMIZERS)
    assert _table_width(wide) <= 110
    lines = wide.table().splitlines()
    assert lines[0].split() == ["optimizer", "1:", "digits", "2:", "sparse-logreg", "score",
                                "(AlgoPerf)"]
    assert [line.split()[0] for line in lines[2:44]] == sorted(OPTIMIZERS)
    assert lines[2].split()[1:] == ["0.029", "s", "(1.45x)", "0.048", "s", "(1.60x)", "0.910"]
    assert _table_width(_profile(OPTIMIZERS[:20])) <= 110
    few = _profile(["sgd", "adam"]).table().splitlines()
    assert few[0].split() == ["workload", "adam", "sgd"]


@pytest.mark.parametrize("count", [1, 10, 20, 42])
def test_the_profile_legend_is_beside_the_curves(count):
    """Inside the axes at lower right, 42 optimizers' entries covered the curves and the
    title: the legend lies beside the axes, whole inside the figure, every entry in it."""
    pytest.importorskip("matplotlib")
    from optimlab.landscapes.plots import plt_close

    fig = _profile(OPTIMIZERS[:count]).plot()
    try:
        fig.canvas.draw()
        ax = fig.axes[0]
        legend = ax.get_legend()
        box, axes, whole = (legend.get_window_extent(), ax.get_window_extent(),
                            fig.bbox)
        assert box.x0 >= axes.x1  # right of the axes: over no curve, under no title
        assert whole.x0 <= box.x0 and box.x1 <= whole.x1 + 1
        assert whole.y0 <= box.y0 and box.y1 <= whole.y1 + 1
        assert len(legend.get_texts()) == count
    finally:
        plt_close(fig)


# ------------------------------------------------------------------------------ runs table


def test_optimlab_runs_cuts_a_sweeps_optimizers_to_a_bounded_cell(tmp_path, capsys):
    """42 optimizers made a cell of 466 characters: the cell shows the first that fit and
    how many more, a line says where the whole list is; a sweep of two keeps both."""
    from optimlab.cli import main

    db = tmp_path / "runs.db"
    with RunStore(db) as store:
        store.open_sweep({"task": "digits", "optimizers": OPTIMIZERS, "seeds": 1},
                         environment={})
        store.open_sweep({"task": "digits", "optimizers": ["sgd (momentum=0.9, nesterov=True)",
                                                          "adam"], "seeds": 1},
                         environment={})
    capsys.readouterr()
    assert main(["runs", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines[0].index("optimizers")
    first, second = lines[2][start:], lines[3][start:]
    assert len(first) <= 64 and first.startswith("sgd,adam,adamw,")
    shown = first.split(",... (+")[0].split(",")
    assert first.endswith(f",... (+{42 - len(shown)})") and shown == OPTIMIZERS[:len(shown)]
    assert second == "sgd (momentum=0.9, nesterov=True),adam"
    assert len(lines[1]) == start + max(len(first), len(second))
    assert lines[-1] == "(+N): N more optimizers; `optimlab report SWEEP_ID` lists every one"
    assert max(len(line) for line in lines[:4]) <= start + 64


def test_a_writer_that_may_not_add_the_column_warns_and_works_as_before(tmp_path, monkeypatch,
                                                                      parsed):
    """A store whose writer cannot add the column (a PostgreSQL role that may not ALTER the
    table; here a statement that fails) opens with a StoreWarning and finds its sweeps by
    reading the configurations, as before the column."""
    db = str(tmp_path / "runs.db")
    with RunStore(db) as store:
        store.open_sweep(_config(0), environment={})
    legacy = _config(99, optimizers=("sgd", "adam"), lrs=(0.1, 0.01))
    turned = _config(99, optimizers=("adam", "sgd"), lrs=(0.01, 0.1))
    _as_an_earlier_optimlab_left_it(db, legacy)
    monkeypatch.setitem(schema_module._ADDED, "sweeps",
                        {"free_key": ("ALTER TABLE no_such_table ADD COLUMN free_key TEXT",)})
    with pytest.warns(StoreWarning, match="free_key column could not be added"):
        store = RunStore(db)
    with store:
        assert "free_key" not in store._columns("sweeps")
        assert store.open_sweep(turned) == 2  # found by reading the configurations
        assert store.open_sweep(_config(5), environment={}) == 3
