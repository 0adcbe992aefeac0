#!/bin/sh
# `call lint` (found as lint.sh): no FLOW_OUTPUT block, so stdout becomes the context.
set -eu
sleep 0.1
echo "lint: 0 problems in release ${RUNKON_VERSION}"
