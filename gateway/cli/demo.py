"""``supex demo``: the gateway and simulated systems together."""

from __future__ import annotations

import argparse
import logging

from gateway.demo import run_demo
from gateway.observability import configure_logging

__all__ = ["demo"]


def demo(args: argparse.Namespace) -> int:
    """``supex demo``: the scripted tour, with the gateway's own log kept to warnings."""
    configure_logging(logging.WARNING)
    return run_demo(args.keep)


# ---- data keys --------------------------------------------------------------------------------
