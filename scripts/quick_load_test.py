#!/usr/bin/env python3
"""The seed's load test, as its README runs it, on Wallex.

    python3 scripts/quick_load_test.py --wallets 100 --operations 1000 --fast --workers 10
    python3 scripts/quick_load_test.py --wallets 1000 --operations 20000 --fast --workers 20

Runs `wallex-load` (crates/load-generator: creates the wallets, runs the
credits, debits and transfers, checks that money was conserved, exits 0 on a
pass) with the same arguments, built by cargo in release mode when it is not
built yet or is out of date. Every option of `wallex-load --help` is taken;
the server is http://127.0.0.1:3000 unless `--url` or WALLEX_LOAD_URL says
otherwise.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if __name__ == "__main__":
    command = [
        "cargo", "run", "--release", "--quiet",
        "--manifest-path", os.path.join(ROOT, "Cargo.toml"),
        "-p", "load-generator", "--",
    ] + sys.argv[1:]
    os.execvp(command[0], command)
