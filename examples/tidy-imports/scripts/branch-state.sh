#!/bin/sh
# `script check-branch-state`: markers `behind_base` (the base branch has commits this
# branch lacks) and `dirty_tree` (uncommitted changes) for the repository of
# $RUNKON_SOURCE_DIR (the workflow's `source_dir` input).
set -eu
cd "$RUNKON_SOURCE_DIR"
markers=""
if [ "$(git rev-list --count "HEAD..$RUNKON_BASE_BRANCH")" -gt 0 ]; then
    markers='"behind_base"'
fi
if [ -n "$(git status --porcelain)" ]; then
    markers="${markers:+$markers, }\"dirty_tree\""
fi
cat <<END
<<<FLOW_OUTPUT>>>
{"markers": [$markers], "context": "on $(git rev-parse --abbrev-ref HEAD), base $RUNKON_BASE_BRANCH"}
<<<END_FLOW_OUTPUT>>>
END
