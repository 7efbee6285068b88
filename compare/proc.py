"""Run one harness process and read its JSON document (shared by
compare/run.py and tune/tune.py)."""

import json
import subprocess
import sys
import time


def run_json(cmd, timeout, env=None):
    """Run cmd with a timeout; return (rc, stdout, stderr, seconds, doc).

    rc is the exit status, "timeout" when the process ran over, or "exec"
    when it could not be started (stderr then holds the reason).  doc is the
    parsed JSON document on stdout, or None when there is none."""
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                           timeout=timeout)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc = "timeout"
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
    except OSError as e:
        rc, out, err = "exec", "", str(e)
    secs = time.monotonic() - t0
    doc = None
    try:
        doc = json.loads(out)
    except ValueError:
        pass
    return rc, out, err, secs, doc


def exit_status(prog, errors):
    """Lists the failed processes on stderr; the driver's exit status."""
    if not errors:
        return 0
    print("%s: %d process(es) failed:" % (prog, len(errors)), file=sys.stderr)
    for e in errors:
        print("  " + e, file=sys.stderr)
    return 1
