"""Entry point for the Faust CLI: ``faust -A kpay worker``."""

from kpay_faust.app import app

__all__ = ["app"]
