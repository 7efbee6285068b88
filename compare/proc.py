"""One harness process and its JSON document: the names security/security.py
imports.  They live in compare/suite.py with the other shared helpers;
new code should import suite."""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from suite import exit_status, run_json  # noqa: E402,F401
