"""``rpacs serve``: the web app and the API, with uvicorn."""

from __future__ import annotations

import click

from .context import installation


def serve(host: str, port: int, workers: int) -> None:
    """Bring the index up to date once, then hand over to uvicorn."""
    import uvicorn

    with installation():
        pass  # migrate once here, not in every worker at the same time
    click.echo(f"rpacs web app on http://{host}:{port}/  (Ctrl+C stops it)")
    uvicorn.run("rpacs.web:app_from_environment", factory=True, host=host, port=port,
                workers=workers, proxy_headers=False, server_header=False,
                log_level="info")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface; put TLS in front).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Web server processes.")
def serve_command(host: str, port: int, workers: int) -> None:
    """Serve the web app and the /api on HOST:PORT."""
    serve(host, port, workers)
