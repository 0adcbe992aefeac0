#!/bin/sh
# `call publish`: runs only when the gate was approved with the `ship` option.
set -eu
echo "publishing release ${RUNKON_VERSION} (approved: ${RUNKON_GATE_FEEDBACK:-no comment})"
echo "notes: ${RUNKON_NOTES:-none}"
