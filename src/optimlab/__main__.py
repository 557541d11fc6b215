"""``python -m optimlab`` runs the command line."""
from .cli import entry

entry()
