"""Django LOGGING for klaxon's `django` parser (its default format).

In the project's settings.py:

    from .klaxon_logging import LOGGING

Each record is one line `2023-11-14 22:13:20,123 ERROR django.request 42 message`,
followed by the traceback's lines when there is one; klaxon joins them into
one event and reads the final exception's class and message.
"""
import os

LOG_DIR = os.environ.get("DJANGO_LOG_DIR", "/var/log/app")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "klaxon": {"format": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"},
    },
    "handlers": {
        "file": {
            "class": "logging.handlers.WatchedFileHandler",   # reopens after rotation
            "filename": os.path.join(LOG_DIR, "app.log"),
            "formatter": "klaxon",
        },
    },
    "root": {"handlers": ["file"], "level": "INFO"},
    "loggers": {
        "django": {"handlers": ["file"], "level": "INFO", "propagate": False},
        "django.request": {"handlers": ["file"], "level": "WARNING", "propagate": False},
    },
}
