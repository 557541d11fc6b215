"""The playground: a local web page to race optimizers on landscapes and browse stored runs.

``optimlab serve [--host 127.0.0.1] [--port 8000] [--db optimlab-runs.db]`` starts it; the
app itself is :func:`optimlab.web.server.create_app`. The JSON API is described in
:mod:`optimlab.web.server`, its limits in :mod:`optimlab.web.models` and the hyperparameter
ranges in :mod:`optimlab.web.hparams`. Everything the page loads (its own files, Plotly from
the installed ``plotly`` package, the vendored KaTeX) comes from this machine: no CDN.

Needs the ``web`` extra (``pip install "optimlab[web]"``: FastAPI, uvicorn, plotly);
nothing else in optimlab imports this package but the command line. The optimizer
reference (:mod:`optimlab.web.docs`, ``optimlab docs``) needs no extra: it reads the
catalog and the vendored KaTeX.
"""

__all__ = ["create_app", "serve"]


def create_app(db_path=None, warm: bool = True, hosts=("127.0.0.1", "localhost", "[::1]")):
    """The playground's FastAPI app (see :func:`optimlab.web.server.create_app`)."""
    from .server import create_app as _create_app

    return _create_app(db_path, warm, hosts)


def serve(host: str = "127.0.0.1", port: int = 8000, db_path=None) -> None:
    """Run the playground with uvicorn (see :func:`optimlab.web.server.serve`)."""
    from .server import serve as _serve

    _serve(host=host, port=port, db_path=db_path)
