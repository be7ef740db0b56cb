"""Make `ansible_collections.streamops.day2` importable for every test (tests/setup.sh makes the link)."""

import sys
from pathlib import Path

COLLECTIONS = Path(__file__).resolve().parents[1] / ".build" / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
