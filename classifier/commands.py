"""CLI commands of the classifier part. Imports only typer at module level (`synth --help` stays instant)."""

from __future__ import annotations

import typer


def register(app: typer.Typer, fail) -> None:
    """Add this part's commands to the `synth` app. `fail(msg)` prints a one-line error and exits 2."""
