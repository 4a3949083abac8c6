"""The local stack gives the functions' shared Powertools logger the environment it sets
(level and service name, as each function gets at its own cold start on AWS), keeps its
records from being printed again by the root logger, and puts the logger back as it was."""

from __future__ import annotations

import logging

from streamrec.local.stack import _configure_function_logger
from streamrec.observability import logger


def test_the_functions_logger_follows_the_stack_environment_and_is_restored(monkeypatch):
    underlying = logging.getLogger(logger.name)
    before = (underlying.level, underlying.propagate, logger.get_current_keys().get("service"))
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "streamrec")
    restore = _configure_function_logger()
    try:
        assert not underlying.isEnabledFor(logging.INFO) and underlying.isEnabledFor(logging.WARNING)
        assert logger.get_current_keys()["service"] == "streamrec"
        assert underlying.propagate is False  # printed once, by Powertools' own handler
    finally:
        restore()
    assert (underlying.level, underlying.propagate, logger.get_current_keys().get("service")) == before
