"""Shared test set-up. The test process itself uses in-memory tables; workers started by the
integration tests get their own settings through the environment."""

import os

os.environ.setdefault("KPAY_STORE", "memory://")
