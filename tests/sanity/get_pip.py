"""Stand-in for the get-pip.py bootstrap script ansible-test downloads from a host this machine cannot reach.

ansible-test runs it inside each fresh sanity virtualenv with pip's install arguments (for example
`pip==24.2 --no-setuptools`). The real script unpacks a bundled pip; this one starts from the pip that
Python's own ensurepip carries and lets it install the requested packages from PyPI, which this machine reaches.
"""

import subprocess
import sys

# In subprocesses: ensurepip clears pip's configuration (e.g. the machine's CA bundle) from its own process.
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", "--upgrade"] + args)
