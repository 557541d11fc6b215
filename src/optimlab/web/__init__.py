"""The playground: a local web page to race optimizers on landscapes and browse stored runs.

``optimlab serve [--host 127.0.0.1] [--port 8000] [--db optimlab-runs.db]`` starts it; in a
notebook, ``pg = optimlab.web.serve(background=True)`` serves it on a thread and returns a
handle (:class:`~optimlab.web.server.Playground`: a link to the page, ``pg.stop()``). The
app itself is :func:`optimlab.web.server.create_app`. The JSON API is described in
:mod:`optimlab.web.server`, its limits in :mod:`optimlab.web.models` and the hyperparameter
ranges in :mod:`optimlab.web.hparams`. Everything the page loads (its own files, Plotly from
the installed ``plotly`` package, the vendored KaTeX) comes from this machine: no CDN.

Needs the ``web`` extra (``pip install "optimlab[web]"``: FastAPI, uvicorn, plotly);
nothing else in optimlab imports this package but the command line. The optimizer
reference (:mod:`optimlab.web.docs`, ``optimlab docs``) needs no extra: it reads the
catalog and the vendored KaTeX.
"""

# Playground is reached through __getattr__ (it imports FastAPI): not in __all__, so that
# `from optimlab.web import *` needs no web extra
__all__ = ["create_app", "serve"]


def create_app(db_path=None, warm: bool = True, hosts=("127.0.0.1", "localhost", "[::1]"),
               slices=()):
    """The playground's FastAPI app (see :func:`optimlab.web.server.create_app`).

    ``db_path`` is the run store the Runs tab reads (read-only), ``warm`` runs the warm-up
    when the server starts, ``hosts`` are the ``Host`` header values it answers (None: any)
    and ``slices`` the folders (or files) of loss-landscape slices the Slices tab shows.
    """
    from .server import create_app as _create_app

    return _create_app(db_path, warm, hosts, slices)


def serve(host: str = "127.0.0.1", port: int = 8000, db_path=None, log_level: str | None = None,
          slices=(), background: bool = False):
    """Run the playground with uvicorn (see :func:`optimlab.web.server.serve`).

    By default it blocks until interrupted, as ``optimlab serve`` does, and so cannot run
    in a notebook's cell. There ``serve(background=True)`` serves on a thread of its own
    and returns at once with a :class:`~optimlab.web.server.Playground` (shown as a link;
    its ``url``, and ``stop()`` to stop it; ``port=0`` picks a free port). ``db_path`` is
    the run store the Runs tab reads, ``slices`` the folders the Slices tab shows and
    ``log_level`` uvicorn's (``"info"``, or ``"warning"`` in the background, by default).
    """
    from .server import serve as _serve

    return _serve(host=host, port=port, db_path=db_path, log_level=log_level, slices=slices,
                  background=background)


def __getattr__(name: str):
    # the handle serve(background=True) returns, imported (with FastAPI) only when asked for
    if name == "Playground":
        from .server import Playground

        return Playground
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
