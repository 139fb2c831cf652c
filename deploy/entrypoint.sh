#!/bin/sh
# The image's entrypoint, behind tini. One word names a process of dev/procs.py and runs it exactly as
# `make <name>` does: `docker run IMAGE worker`. Anything else runs as given:
# `docker run IMAGE python -m alembic current`.
set -e
if [ "$#" -eq 1 ]; then
    case "$1" in
        api | worker | beat | flower | migrate | sim) exec python -m dev.procs "$1" ;;
    esac
fi
exec "$@"
