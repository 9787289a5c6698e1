#!/bin/sh
# The crash test at soak size: 10,000 lines through a receiver killed with
# SIGKILL twice; every line must be stored exactly once on both sides.
set -eu
cd "$(dirname "$0")/.."
CRASH_LINES=10000 exec cargo test --release --test history crash_test -- --nocapture
