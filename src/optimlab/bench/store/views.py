"""The run store as pandas DataFrames: :class:`DataFrameReaders`, the ``sweeps``, ``runs``
and ``metrics`` methods of :class:`~optimlab.bench.store.RunStore`.

The DataFrame readers (:meth:`~.RunStore.sweeps`, :meth:`~.RunStore.runs`,
:meth:`~.RunStore.metrics`) name ids ``sweep_id`` and ``run_id`` in every frame (so frames
merge on them), and give JSON columns back decoded.

pandas is imported when a reader is called, so the rest of the store needs only the
standard library.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from .jsonio import _loads
from .schema import STATUSES, _check_id, _chunks

__all__ = ["DataFrameReaders"]


def _one_state(reader):
    """``reader`` run under the store's :meth:`~.RunStore.snapshot`: its queries (the points,
    then their runs' columns; one per name or chunk of ids) see one state of the store, so
    a run that ends while they read is shown running with the points it had, or ended with
    all of them, never ended without its last points."""
    @functools.wraps(reader)
    def read(self, *args, **kwargs):
        with self.snapshot():
            return reader(self, *args, **kwargs)
    return read


class DataFrameReaders:
    """The DataFrame readers of :class:`~optimlab.bench.store.RunStore`, which mixes them in.

    They read through ``self.con`` (the store's connection, which raises
    :class:`~.schema.StoreError` for any SQLite error), check sweep ids with
    ``self._require_sweep`` and read one state under ``self.snapshot()``, all defined by
    the store class. Ids beyond SQLite's integers
    raise KeyError, as unknown sweeps do.
    """

    def sweeps(self):
        """All sweeps as a DataFrame, one row each: ``sweep_id, key, name, task, model,
        created_at`` (UTC datetimes), the run counts ``n_runs, n_pending, n_running,
        n_finished, n_diverged, n_failed``, and ``config``, ``environment`` as dicts."""
        pd = _pandas()
        rows = self.con.execute(
            "SELECT s.id, s.key, s.name, s.task, s.model, s.created_at, COUNT(r.id), "
            + ", ".join(f"SUM(CASE WHEN r.status = '{s}' THEN 1 ELSE 0 END)" for s in STATUSES)
            + ", s.config, s.environment FROM sweeps s LEFT JOIN runs r ON r.sweep_id = s.id "
            "GROUP BY s.id, s.key, s.name, s.task, s.model, s.created_at, s.config, "
            "s.environment ORDER BY s.id").fetchall()
        columns = (["sweep_id", "key", "name", "task", "model", "created_at", "n_runs"]
                   + [f"n_{s}" for s in STATUSES] + ["config", "environment"])
        # decode JSON before pandas sees the text (it would turn missing text into NaN)
        df = pd.DataFrame([list(r[:-2]) + [_loads(r[-2]), _loads(r[-1])] for r in rows],
                          columns=columns)
        for c in ["n_runs"] + [f"n_{s}" for s in STATUSES]:
            df[c] = df[c].fillna(0).astype("int64")
        df["created_at"] = pd.to_datetime(df["created_at"], utc=True, format="ISO8601")
        return df

    @_one_state
    def runs(self, sweep_id: int | None = None):
        """Runs as a DataFrame (of one sweep, or all), one row each, in the order added.

        Columns: ``run_id, sweep_id, optimizer, lr, seed, status, error, started_at,
        finished_at`` (UTC datetimes, NaT while unset), ``member_key``, ``hparams`` and
        ``summary`` (dicts; summary None until the run ends), then every hyperparameter as a
        column ``hp_<name>`` and every summary entry as ``summary_<name>`` (missing entries
        are NaN/None).
        """
        pd = _pandas()
        sql = ("SELECT id, sweep_id, optimizer, lr, seed, status, error, started_at, "
               "finished_at, member_key, hparams, summary FROM runs")
        params: tuple = ()
        if sweep_id is not None:
            sweep_id = self._require_sweep(sweep_id)
            sql, params = sql + " WHERE sweep_id = ?", (sweep_id,)
        rows = self.con.execute(sql + " ORDER BY id", params).fetchall()
        columns = ["run_id", "sweep_id", "optimizer", "lr", "seed", "status", "error",
                   "started_at", "finished_at", "member_key", "hparams", "summary"]
        df = pd.DataFrame([list(r[:-2]) + [_loads(r[-2]), _loads(r[-1])] for r in rows],
                          columns=columns)
        df["lr"] = df["lr"].astype("float64")
        for col in ("started_at", "finished_at"):
            df[col] = pd.to_datetime(df[col], utc=True, format="ISO8601")
        for prefix, source in (("hp_", "hparams"), ("summary_", "summary")):
            names: dict[str, None] = {}
            for d in df[source]:
                names.update(dict.fromkeys(d or {}))
            for n in names:
                df[prefix + n] = [(d or {}).get(n) for d in df[source]]
                if all(isinstance(v, (int, float)) and not isinstance(v, bool) or v is None
                       for v in df[prefix + n]):
                    df[prefix + n] = pd.to_numeric(df[prefix + n])
        return df

    @_one_state
    def metrics(self, sweep_id: int | None = None, run_ids: Iterable[int] | None = None,
                names: Iterable[str] | None = None):
        """Metric points as a long DataFrame, one row per (run, step, name), ordered by
        run, step and name: ``run_id, sweep_id, optimizer, lr, seed, status, step, name,
        value, wall_time``. NaN values come back as NaN. Filter by sweep, by runs, by metric
        ``names``, or any of them.

        For a wide table: ``df.pivot_table(index=["run_id", "step"], columns="name",
        values="value", dropna=False)``; add the hyperparameters with
        ``df.merge(store.runs(sweep_id), on="run_id")``. :meth:`metric_points` reads only
        the points' own columns, for a reader of many points.
        """
        pd = _pandas()
        import numpy as np

        where, params = [], []
        if sweep_id is not None:
            sweep_id = self._require_sweep(sweep_id)
            where.append("r.sweep_id = ?")
            params.append(sweep_id)
        names = _names(names)
        if names is not None:
            where.append(f"m.name IN ({', '.join('?' * len(names))})")
            params += names
        base = ("SELECT m.run_id, m.step, m.name, m.value, m.wall_time FROM metrics m "
                "JOIN runs r ON r.id = m.run_id")
        order = " ORDER BY m.run_id, m.step, m.name"
        if run_ids is not None:
            run_ids = [_check_id(i, "run", self.path) for i in run_ids]
        if names == []:
            queries = []
        elif run_ids is None:
            queries = [(base + (" WHERE " + " AND ".join(where) if where else "") + order,
                        params)]
        else:
            queries = [(base + " WHERE " + " AND ".join(
                where + [f"m.run_id IN ({', '.join('?' * len(chunk))})"]) + order,
                params + chunk) for chunk in _chunks(sorted(set(run_ids)))]
        cols = _point_columns(self.con, queries, 5)
        # each run's own columns once, looked up by position (not repeated text per point)
        ids = np.unique(cols["run_id"])
        info = {}
        for chunk in _chunks(ids.tolist()):
            for row in self.con.execute(
                    "SELECT id, sweep_id, optimizer, lr, seed, status FROM runs WHERE id IN "
                    f"({', '.join('?' * len(chunk))})", chunk):
                info[row[0]] = row[1:]
        if len(info) < len(ids):  # a run deleted meanwhile: its points go, as a join drops them
            keep = np.isin(cols["run_id"], np.array(list(info), dtype=np.int64))
            cols = {k: v[keep] for k, v in cols.items()}
            ids = np.unique(cols["run_id"])
        at = np.searchsorted(ids, cols["run_id"])
        runs = [info[i] for i in ids.tolist()]

        def run_column(k, dtype):
            values = np.empty(len(runs), dtype=object)
            values[:] = [r[k] for r in runs]
            return values[at] if dtype is object else values.astype(dtype)[at]

        df = pd.DataFrame({
            "run_id": cols["run_id"], "sweep_id": run_column(0, np.int64),
            "optimizer": run_column(1, object), "lr": run_column(2, np.float64),
            "seed": run_column(3, np.int64), "status": run_column(4, object),
            "step": cols["step"], "name": cols["name"], "value": cols["value"],
            "wall_time": cols["wall_time"]})
        return df

    @_one_state
    def metric_points(self, run_ids: Iterable[int], names: Iterable[str] | None = None):
        """The metric points of the runs ``run_ids`` (of those ``names`` only, where given) as
        a narrow long DataFrame, ordered by run, step and name: ``run_id, step, name, value``
        (NaN values as NaN). Unlike :meth:`metrics` it joins nothing and repeats no text per
        point (each name is one shared string), so a reader of the many points of long runs
        (a report's curves) holds about 30 bytes per point.

        With ``names`` each name is read by a query of its own, of numbers only (the points
        of ended runs, which are never written again, or read under
        :meth:`~.RunStore.snapshot`); without, one query reads them all. The per-name
        queries pay for their second path: one query with the names filtered in SQL reads
        and factorizes every point's name, and made ``write_report`` of 24 runs x 100,000
        steps take 8.0-8.9 s against 4.3-4.9 s (two runs each, this session's review)."""
        pd = _pandas()
        import numpy as np

        names = _names(names)
        run_ids = sorted({_check_id(i, "run", self.path) for i in run_ids})
        if names is None:
            return pd.DataFrame(_point_columns(self.con, [
                ("SELECT run_id, step, name, value FROM metrics WHERE run_id IN "
                 f"({', '.join('?' * len(chunk))}) ORDER BY run_id, step, name", chunk)
                for chunk in _chunks(run_ids)], 4))
        names = sorted(names)  # (text order: the order SQLite sorts names in)
        parts, codes = [], []
        for code, name in enumerate(names):
            for chunk in _chunks(run_ids):
                cur = self.con.execute(
                    "SELECT run_id, step, value FROM metrics WHERE run_id IN "
                    f"({', '.join('?' * len(chunk))}) AND name = ? ORDER BY run_id, step",
                    chunk + [name])
                while batch := cur.fetchmany(_BATCH):
                    parts.append(np.array(batch, dtype=_NUMBERS))  # NULL -> NaN
                    codes.append(np.full(len(batch), code, dtype=np.int64))
                    del batch
        points = np.concatenate(parts) if parts else np.array([], dtype=_NUMBERS)
        code = np.concatenate(codes) if codes else np.array([], dtype=np.int64)
        order = np.lexsort((code, points["step"], points["run_id"]))
        labels = np.empty(len(names), dtype=object)
        labels[:] = names
        return pd.DataFrame({"run_id": points["run_id"][order], "step": points["step"][order],
                             "name": labels[code[order]], "value": points["value"][order]})


#: a point's numbers, as :meth:`DataFrameReaders.metric_points` reads them
_NUMBERS = [("run_id", "i8"), ("step", "i8"), ("value", "f8")]


#: rows fetched at a time by :func:`_point_columns`
_BATCH = 50_000


def _names(names: Iterable[str] | None) -> list[str] | None:
    if names is None:
        return None
    if isinstance(names, str):
        names = [names]
    names = list(dict.fromkeys(names))
    for n in names:
        if not isinstance(n, str):
            raise TypeError(f"a metric name is a string, got {n!r:.80}")
    return names


def _point_columns(con, queries, width: int) -> dict:
    """The columns ``run_id, step, name, value`` (and ``wall_time`` with ``width`` 5) of the
    rows ``queries`` select, in their order, as numpy arrays: fetched a batch at a time and
    turned into columns at once, so no row is copied and each name is one string shared by
    its points (an object column of references)."""
    import numpy as np

    pd = _pandas()
    keys = ("run_id", "step", "name", "value", "wall_time")[:width]
    parts: dict[str, list] = {k: [] for k in keys}
    codes: dict[str, int] = {}
    for sql, params in queries:
        cur = con.execute(sql, params)
        while True:
            batch = cur.fetchmany(_BATCH)
            if not batch:
                break
            cols = list(zip(*batch))
            del batch
            parts["run_id"].append(np.array(cols[0], dtype=np.int64))
            parts["step"].append(np.array(cols[1], dtype=np.int64))
            local, uniques = pd.factorize(np.array(cols[2], dtype=object))
            glob = np.array([codes.setdefault(u, len(codes)) for u in uniques], dtype=np.int64)
            parts["name"].append(glob[local])
            for k, col in zip(keys[3:], cols[3:]):
                parts[k].append(np.array(col, dtype=np.float64))  # NULL -> NaN
    labels = np.empty(len(codes), dtype=object)
    labels[:] = list(codes)
    out = {}
    for k in keys:
        dtype = np.float64 if k in ("value", "wall_time") else np.int64
        out[k] = np.concatenate(parts[k]) if parts[k] else np.array([], dtype=dtype)
    out["name"] = labels[out["name"]] if len(codes) else np.array([], dtype=object)
    return out


def _pandas():
    try:
        import pandas
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("the run store's DataFrame readers need pandas: "
                          "pip install 'optimlab[bench]'") from None
    return pandas

