"""The run store as pandas DataFrames: :class:`DataFrameReaders`, the ``sweeps``, ``runs``
and ``metrics`` methods of :class:`~optimlab.bench.store.RunStore`.

The DataFrame readers (:meth:`~.RunStore.sweeps`, :meth:`~.RunStore.runs`,
:meth:`~.RunStore.metrics`) name ids ``sweep_id`` and ``run_id`` in every frame (so frames
merge on them), and give JSON columns back decoded.

pandas is imported when a reader is called, so the rest of the store needs only the
standard library.
"""

from __future__ import annotations

from collections.abc import Iterable

from .jsonio import _loads
from .schema import STATUSES, _check_id, _chunks

__all__ = ["DataFrameReaders"]


class DataFrameReaders:
    """The DataFrame readers of :class:`~optimlab.bench.store.RunStore`, which mixes them in.

    They read through ``self.con`` (the store's connection, which raises
    :class:`~.schema.StoreError` for any SQLite error) and check sweep ids with
    ``self._require_sweep``, both defined by the store class. Ids beyond SQLite's integers
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

    def metrics(self, sweep_id: int | None = None, run_ids: Iterable[int] | None = None):
        """Metric points as a long DataFrame, one row per (run, step, name), ordered by
        run, step and name: ``run_id, sweep_id, optimizer, lr, seed, status, step, name,
        value, wall_time``. NaN values come back as NaN. Filter by sweep, by runs, or both.

        For a wide table: ``df.pivot_table(index=["run_id", "step"], columns="name",
        values="value", dropna=False)``; add the hyperparameters with
        ``df.merge(store.runs(sweep_id), on="run_id")``.
        """
        pd = _pandas()
        base = ("SELECT m.run_id, r.sweep_id, r.optimizer, r.lr, r.seed, r.status, m.step, "
                "m.name, m.value, m.wall_time FROM metrics m JOIN runs r ON r.id = m.run_id")
        where, params = [], []
        if sweep_id is not None:
            sweep_id = self._require_sweep(sweep_id)
            where.append("r.sweep_id = ?")
            params.append(sweep_id)
        if run_ids is not None:
            run_ids = [_check_id(i, "run", self.path) for i in run_ids]
        rows: list = []
        if run_ids is None:
            sql = base + (" WHERE " + " AND ".join(where) if where else "")
            rows = self.con.execute(sql + " ORDER BY m.run_id, m.step, m.name", params).fetchall()
        else:
            for chunk in _chunks(sorted(set(run_ids))):
                w = where + [f"m.run_id IN ({', '.join('?' * len(chunk))})"]
                rows += self.con.execute(base + " WHERE " + " AND ".join(w)
                                         + " ORDER BY m.run_id, m.step, m.name",
                                         params + chunk).fetchall()
        columns = ["run_id", "sweep_id", "optimizer", "lr", "seed", "status", "step", "name",
                   "value", "wall_time"]
        df = pd.DataFrame([list(r) for r in rows], columns=columns)
        for c in ("lr", "value", "wall_time"):
            df[c] = df[c].astype("float64")  # NULL value -> NaN
        for c in ("run_id", "sweep_id", "seed", "step"):
            df[c] = df[c].astype("int64")
        return df


def _pandas():
    try:
        import pandas
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("the run store's DataFrame readers need pandas: "
                          "pip install 'optimlab[bench]'") from None
    return pandas

