#!/bin/sh
# `call changelog-check`: flags a release without notes with the `needs_notes` marker,
# which the workflow tests (`if changelog-check.needs_notes`).
set -eu
if [ -n "${RUNKON_NOTES:-}" ]; then
    markers='[]'
    context="release notes present"
else
    markers='["needs_notes"]'
    context="no release notes for ${RUNKON_VERSION} yet"
fi
cat <<END
<<<FLOW_OUTPUT>>>
{"markers": ${markers}, "context": "${context}"}
<<<END_FLOW_OUTPUT>>>
END
