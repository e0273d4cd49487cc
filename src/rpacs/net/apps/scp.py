"""``rpacs scp``: run the DICOM services in the foreground until interrupted.

Also runnable as ``python -m rpacs.net.apps.scp``. Logs go to stderr, one line per event
worth a person's attention; they never hold a value of the data.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import click


@click.command("scp")
@click.option("--ae-title", default=None, help="AE title to answer to [default: RPACS, "
              "or the ae_title setting]. Any called AE title is accepted; auto-ID projects "
              "and routing rules tell senders apart by it.")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="TCP port [default: 11112, or the dicom_port setting].")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--study-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds without a new instance after which a study is complete "
                   "[default: 16, or the study_timeout setting].")
@click.option("-v", "--verbose", is_flag=True, help="Log associations too.")
def scp_command(ae_title: str | None, port: int | None, host: str, study_timeout: float | None,
                verbose: bool) -> None:
    """Receive studies into the quarantine and answer C-ECHO, C-FIND, C-MOVE and C-GET.

    Complete studies are assigned by coupling list, auto-ID or routing rule, or wait in the
    quarantine (rpacs quarantine list) for rpacs assign. Stop with Ctrl-C or SIGTERM.
    """
    from ...cli.context import installation
    from ..service import GatewayConfig, start_gateway

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("rpacs").setLevel(logging.INFO)
    # pynetdicom's own debug output would print identifiers of queries: never above WARNING.
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    with installation() as inst:
        settings = inst.settings
        config = GatewayConfig(
            ae_title=ae_title or settings.ae_title,
            host=host,
            port=settings.dicom_port if port is None else port,
            study_timeout=study_timeout or settings.study_timeout,
        )
        gateway = start_gateway(inst, config)
        stop = threading.Event()

        def on_signal(_signum: int, _frame: Any) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        click.echo(f"rpacs scp: {config.ae_title} listening on {config.host}:{gateway.port} "
                   f"(study timeout {config.study_timeout:g} s)", err=True)
        try:
            while not stop.wait(0.5):
                pass
        finally:
            gateway.stop()
        click.echo("rpacs scp: stopped", err=True)


def main() -> None:
    scp_command(prog_name="rpacs scp")


if __name__ == "__main__":
    main()
