#!/bin/sh
# `script publish-branch`: pushes the branch to its upstream when it has one.
set -eu
cd "$RUNKON_SOURCE_DIR"
branch=$(git rev-parse --abbrev-ref HEAD)
if git rev-parse --abbrev-ref --symbolic-full-name '@{upstream}' >/dev/null 2>&1; then
    git push --quiet
    echo "pushed $branch"
else
    echo "$branch has no upstream: nothing to publish"
fi
