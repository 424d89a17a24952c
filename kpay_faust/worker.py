"""The worker class the CLI starts for KPay (``faust -A kpay worker``)."""

from __future__ import annotations

import logging

import faust


class KPayWorker(faust.Worker):
    """A Faust worker that keeps the root logger at the level asked for.

    Faust's progress spinner lowers the root logger to DEBUG whenever the level is WARN or
    above, so every debug call in aiokafka and Faust builds a log record that is then thrown
    away: about a tenth of a busy worker's CPU. The spinner is only for terminals.
    """

    def _setup_spinner_handler(self, logger: logging.Logger, level: int) -> None:
        if self.spinner is not None and self.spinner.file.isatty():
            super()._setup_spinner_handler(logger, level)
        else:
            self.spinner = None
