"""The e2e scenarios import their shared lab harness (relocation_lab) from this folder."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
