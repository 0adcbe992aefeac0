#!/bin/sh
# `call write-notes`: drafts notes; the `notes` extra becomes {{notes}} (RUNKON_NOTES)
# for later steps.
set -eu
cat <<END
<<<FLOW_OUTPUT>>>
{"markers": ["notes_drafted"], "context": "drafted notes", "notes": "Release ${RUNKON_VERSION}: faster gates."}
<<<END_FLOW_OUTPUT>>>
END
