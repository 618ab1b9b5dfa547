"""The package's logger, in one place.

Every module logs with `transformers.utils.logging.get_logger(__name__)`, i.e. below the logger named after the
package, which `modeling_tvtsv2/__init__.py` hangs below transformers' library logger: the package prints through
transformers' handler and follows `transformers.logging.set_verbosity_*`. Tools and the trainer raise or lower the
package's level here, never by configuring the root logger.
"""

from __future__ import annotations

import logging

__all__ = ["PACKAGE_LOGGER_NAME", "package_logger", "set_package_log_level"]

PACKAGE_LOGGER_NAME = __name__.split(".")[0]


def package_logger() -> logging.Logger:
    """The logger every module of the package logs below."""
    return logging.getLogger(PACKAGE_LOGGER_NAME)


def set_package_log_level(level: int) -> None:
    """Sets the level of the whole package's logging (e.g. `logging.INFO` for a command-line tool's progress)."""
    package_logger().setLevel(level)
