"""``rpacs serve``: the web app and the API, with uvicorn; optionally the DICOM services."""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import TYPE_CHECKING

import click

from ..errors import InvalidInputError
from .context import installation

if TYPE_CHECKING:
    from ..settings import Settings


def serve(host: str, port: int, workers: int, dicom_port: int | None = None,
          ae_title: str | None = None, dicom_host: str | None = None,
          settings: Settings | None = None) -> None:
    """Bring the index up to date once, start the DICOM services if asked, then hand over
    to uvicorn; when uvicorn returns (Ctrl+C, SIGTERM) the DICOM services stop too.

    The DICOM services run once, in this process, whatever the number of web workers:
    uvicorn's workers are processes of their own, and one quarantine has one receiver.
    They listen on ``dicom_host``, by default where the web app does (``host``): a server
    kept to localhost must not take C-STOREs from every network it is on.

    ``settings`` (one web worker only): serve those rather than the environment's, as
    ``rpacs demo --serve`` does for the demo's own home.
    """
    import uvicorn

    with installation(settings) as inst:
        gateway = None
        if dicom_port is not None:
            from ..net import GatewayConfig, start_gateway

            logging.getLogger("rpacs").setLevel(logging.INFO)
            # pynetdicom's debug output would print identifiers of queries.
            logging.getLogger("pynetdicom").setLevel(logging.WARNING)
            config = GatewayConfig(ae_title=ae_title or inst.settings.ae_title,
                                   host=dicom_host or host, port=dicom_port,
                                   study_timeout=inst.settings.study_timeout)
            gateway = start_gateway(inst, config)
            click.echo(f"rpacs DICOM services: {config.ae_title} on port {gateway.port}, "
                       f"address {config.host}")
        click.echo(f"rpacs web app on http://{host}:{port}/  (Ctrl+C stops it)")
        # uvicorn shuts down on SIGTERM, then raises the signal again for the handler it
        # found: this one ends the command through ``finally``, not the default's sudden exit.
        signal.signal(signal.SIGTERM, _stop)
        try:
            if settings is not None:
                from ..web import create_app

                uvicorn.run(create_app(settings), host=host, port=port, proxy_headers=False,
                            server_header=False, log_level="info")
            else:
                uvicorn.run("rpacs.web:app_from_environment", factory=True, host=host,
                            port=port, workers=workers, proxy_headers=False,
                            server_header=False, log_level="info")
        except KeyboardInterrupt:
            pass
        finally:
            if gateway is not None:
                gateway.stop()
                click.echo("rpacs DICOM services: stopped")


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface; put TLS in front).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Web server processes.")
@click.option("--dicom-port", type=click.IntRange(1, 65535), default=None,
              help="Also run the DICOM services (as rpacs scp does) on this port; stopped "
                   "with the web server.")
@click.option("--dicom-host", default=None,
              help="With --dicom-port: the address the DICOM services listen on (0.0.0.0: "
                   "every interface) [default: --host].")
@click.option("--ae-title", default=None,
              help="With --dicom-port: the AE title [default: the ae_title setting, RPACS].")
def serve_command(host: str, port: int, workers: int, dicom_port: int | None,
                  dicom_host: str | None, ae_title: str | None) -> None:
    """Serve the web app and the /api on HOST:PORT (and DICOM with --dicom-port)."""
    if dicom_host is not None and dicom_port is None:
        raise InvalidInputError("--dicom-host: only with --dicom-port")
    serve(host, port, workers, dicom_port, ae_title, dicom_host)
