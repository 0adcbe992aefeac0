#!/bin/sh
# `script fast-forward`: merges $BASE into the current branch; `clean_merge` when it
# merged without conflicts, else the merge is aborted and merge-helper is called.
set -eu
cd "$RUNKON_SOURCE_DIR"
if git merge --no-edit "$BASE" >/dev/null 2>&1; then
    markers='["clean_merge"]'
    context="merged $BASE"
else
    git merge --abort
    markers='[]'
    context="merging $BASE conflicts"
fi
cat <<END
<<<FLOW_OUTPUT>>>
{"markers": $markers, "context": "$context"}
<<<END_FLOW_OUTPUT>>>
END
