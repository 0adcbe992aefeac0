"""Parse throughput of the .wf parser on a generated 10,000-line workflow.

Run: ``python -m benchmarks.bench_parse [--lines N] [--repeat R]``. Prints the median
lines/s over R parses and compares it with the target of issue 2 (20,000 lines/s).
"""

from __future__ import annotations

import argparse
import statistics
import time

import runkon

TARGET_LINES_PER_SECOND = 20_000

_CHUNK = """\
  // section {i}: a realistic mix of every construct
  script detect-{i} {{
    run     = "./scripts/detect.sh {{{{branch}}}} --section {i}"
    timeout = 120
    env     = {{ BASE = "{{{{branch}}}}"  SECTION = "{i}" }}
  }}
  unless fast {{
    parallel {{
      fail_fast   = false
      min_success = 1
      with        = ["style-guide", "tips-{i}"]
      call lint-{i}
      call audit-{i} {{ retries = 2  if = "detect-{i}.has_code" }}
    }}
  }}
  call plan-{i} {{
    output    = "task-plan"
    retries   = 1
    on_fail   = continue
    timeout   = "10m"
    max_turns = 40
    as        = "developer"
  }}
  gate quality_gate {{
    source    = plan-{i}
    threshold = 70
    on_fail   = continue
  }}
  do {{
    max_iterations = 3
    stuck_after    = 2
    on_max_iter    = continue
    call review-{i}
    if review-{i}.needs_changes {{
      call fix-{i} {{ with = ["fix-hints"] }}
    }}
  }} while review-{i}.needs_changes
  gate human_approval {{
    prompt     = "Ship section {i}?\\nSay \\"yes\\" to go on."
    timeout    = "24h"
    on_timeout = fail
    options    = ["ship", "hold"]
  }}
  foreach per-repo-{i} {{
    over          = repos
    max_parallel  = 4
    workflow      = repo-check
    inputs        = {{ repo = "{{{{item.id}}}}" }}
    on_child_fail = continue
  }}
  call workflow notify {{
    inputs {{ ticket = "{{{{ticket}}}}" }}
  }}
"""

_HEAD = """\
workflow generated {
  meta {
    title   = "Generated"
    targets = ["worktree", "pr"]
  }
  inputs {
    branch default = "main"
    ticket required description = "Ticket id"
    fast   boolean
  }
"""


def generate(lines: int) -> str:
    """A valid workflow of about ``lines`` lines."""
    parts = [_HEAD]
    count = _HEAD.count("\n")
    i = 0
    while count < lines - 1:
        chunk = _CHUNK.format(i=i)
        parts.append(chunk)
        count += chunk.count("\n")
        i += 1
    parts.append("}\n")
    return "".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    text = generate(args.lines)
    line_count = text.count("\n")
    workflow = runkon.parse_workflow(text, source="generated.wf")  # warm-up, and a sanity check
    nodes = sum(1 for _ in workflow.walk())
    timings = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        runkon.parse_workflow(text, source="generated.wf")
        timings.append(time.perf_counter() - start)
    median = statistics.median(timings)
    rate = line_count / median
    print(f"parse: {line_count} lines, {len(text)} bytes, {nodes} nodes")
    print(
        f"  median {median * 1000:.1f} ms over {args.repeat} runs "
        f"(min {min(timings) * 1000:.1f}, max {max(timings) * 1000:.1f})"
    )
    verdict = "PASS" if rate >= TARGET_LINES_PER_SECOND else "FAIL"
    print(
        f"  throughput {rate:,.0f} lines/s  target >= {TARGET_LINES_PER_SECOND:,} lines/s  "
        f"{verdict} ({rate / TARGET_LINES_PER_SECOND:.1f}x the target)"
    )


if __name__ == "__main__":
    main()
