#!/bin/sh
# `script scan-imports`: lists the unused imports under $TARGET_DIR; the marker
# `has_import_issues` keeps the do-while loop of tidy-imports.wf going.
set -eu
here=$(dirname "$0")
found=$(python3 "$here/unused_imports.py" "$TARGET_DIR")
if [ -n "$found" ]; then
    count=$(printf '%s\n' "$found" | wc -l | tr -d ' ')
    markers='["has_import_issues"]'
    context="$count unused import(s) under $TARGET_DIR"
else
    markers='[]'
    context="no unused imports under $TARGET_DIR"
fi
printf '%s\n' "$found"
cat <<END
<<<FLOW_OUTPUT>>>
{"markers": $markers, "context": "$context"}
<<<END_FLOW_OUTPUT>>>
END
