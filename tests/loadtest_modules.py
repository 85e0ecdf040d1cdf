"""Import the Locust scenarios in loadtests/ as Locust does, without gevent's monkey-patching.

Locust imports the locustfile with its folder on sys.path, so the scenarios import their
siblings by bare name (`import slo`). And `import locust` monkey-patches the whole process for
gevent unless LOCUST_SKIP_MONKEY_PATCH is set: that would change sockets, threads and sleeps
under every other test of the session.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from unittest import mock

from tests.helpers import REPO

LOADTESTS = REPO / "loadtests"


def import_loadtest(name: str) -> ModuleType:
    """Return the module `name` of loadtests/ (e.g. "slo", "shapes", "locustfile")."""
    if str(LOADTESTS) not in sys.path:
        sys.path.insert(0, str(LOADTESTS))
    # Only the first `import locust` reads the variable; the environment is restored at once so
    # that processes started later (Locust itself) are patched as usual.
    with mock.patch.dict(os.environ, {"LOCUST_SKIP_MONKEY_PATCH": "1"}):
        return importlib.import_module(name)
