"""The real `medark` command and what the tests give it, importable by name from any
test package: `from conftest import …` finds whichever conftest.py was imported last
under that name (tests/storage has its own), so modules collected after it use this."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

PASSWORD = "correct horse battery staple"
TEST_KDF = {"MEDARK_KDF_N": "1024",
            "MEDARK_INSECURE_TEST_KDF": "i-understand-this-weakens-every-key"}
"""A cheap scrypt cost for test keys: below the floor, so it needs the test-only switch
(src/medark/repo/keys.py). Environments built without os.environ must add both."""
MEDARK = shutil.which("medark", path=str(Path(sys.executable).parent)) or "medark"
