"""tests/pooler/test_cli.py: the command line and the configuration file as
the binary reads them: --help, --version, --check, and errors that name the
file, the line and the key."""
import os
import subprocess

from harness import BIN, TMP, ok


def test_cli():
    r = subprocess.run([BIN, "--help"], capture_output=True, text=True)
    ok(r.returncode == 0 and "Usage: perfopt-pooler" in r.stdout and "--config" in r.stdout,
       "--help prints usage and exits 0", r.stdout[:200])
    r = subprocess.run([BIN, "--version"], capture_output=True, text=True)
    ok(r.returncode == 0 and r.stdout.startswith("perfopt-pooler "), "--version", r.stdout)
    bad = os.path.join(TMP, "bad.ini")
    with open(bad, "w") as f:
        f.write("[databases]\nappdb = host=/tmp\n\n[pooler]\npool_size = 20\nmax_overflow = lots\n")
    r = subprocess.run([BIN, "-c", bad], capture_output=True, text=True)
    ok(r.returncode != 0 and "%s:6:" % bad in r.stderr and '"max_overflow"' in r.stderr,
       "bad value: non-zero exit, error names file, line 6 and key", r.stderr)
    with open(bad, "w") as f:
        f.write("[databases]\nappdb = host=/tmp pool_sise=3\n")
    r = subprocess.run([BIN, "-c", bad], capture_output=True, text=True)
    ok(r.returncode != 0 and "%s:2:" % bad in r.stderr and "pool_sise" in r.stderr,
       "unknown per-database option names file, line and key", r.stderr)
    with open(bad, "w") as f:
        f.write("[databases]\nappdb = host=/tmp\n[pooler]\nno_such_setting = 1\n")
    r = subprocess.run([BIN, "-c", bad], capture_output=True, text=True)
    ok(r.returncode != 0 and ":4:" in r.stderr and "no_such_setting" in r.stderr,
       "unknown setting rejected with line and key", r.stderr)
    r = subprocess.run([BIN, "-c", os.path.join(TMP, "missing.ini")], capture_output=True, text=True)
    ok(r.returncode != 0 and "missing.ini" in r.stderr, "missing config file: clear error", r.stderr)
    sample = os.path.join(os.environ["PERFOPT_ROOT"], "pooler", "perfopt-pooler.ini")
    r = subprocess.run([BIN, "-c", sample, "--check"], capture_output=True, text=True)
    ok(r.returncode == 0, "sample perfopt-pooler.ini is valid", r.stderr)


TESTS = [("cli", test_cli)]
