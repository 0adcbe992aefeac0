"""``runkon events RUN``: a run's stored events; ``--follow`` keeps printing new ones.

The run may be driven by another process (``runkon run`` in another terminal), whose
events are not on this process's event bus: ``--follow`` reads the database for events
after the last one printed each time the store's change feed says the run has new ones
(``Store.wait_for_events``), until the run's final event (completed, failed or
cancelled) has been printed. Ctrl-C stops following; the run is not affected.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import runkon
from runkon.cli._common import (
    EXIT_OK,
    add_db_argument,
    execute,
    find_run,
    local_time,
    open_store,
    say,
)
from runkon.cli._progress import Describer
from runkon.events import FINAL_EVENT_TYPES, event_from_record
from runkon.persistence import EventRecord

FOLLOW_RECHECK = 5.0  # seconds; a run that writes no events is re-checked for its end


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "events",
        help="print a run's events (--follow: until it ends)",
        description="Print the stored events of run RUN in order: sequence number, time, "
        "type and what happened. With --follow, keep printing new events as they are "
        "written (by any process using the database) until the run ends.",
    )
    parser.add_argument("run", metavar="RUN", help="the run id")
    add_db_argument(parser)
    parser.add_argument(
        "--after", type=int, default=0, metavar="SEQ", help="only events after number SEQ"
    )
    parser.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new events until the run ends"
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per event (the EngineEvent model)"
    )
    parser.set_defaults(handler=lambda args: execute(print_events, args))


def _line(event: runkon.EngineEvent, as_json: bool, describer: Describer) -> str:
    if as_json:
        return event.model_dump_json()
    text = describer.describe(event) or ""
    when = local_time(event.timestamp) + event.timestamp.strftime(".%f")[:4]
    return f"{event.seq:>5}  {when}  {event.type:<22}  {text}".rstrip()


def _record_line(record: EventRecord, as_json: bool, describer: Describer) -> str:
    try:
        event = event_from_record(
            record.run_id, record.seq, record.type, record.created_at, dict(record.data)
        )
    except ValueError:  # a kind this runkon does not know (a newer one wrote it)
        if as_json:
            return json.dumps(
                {
                    "type": record.type,
                    "run_id": record.run_id,
                    "seq": record.seq,
                    "timestamp": record.created_at.isoformat(),
                    **record.data,
                }
            )
        return f"{record.seq:>5}  {local_time(record.created_at)}  {record.type}"
    return _line(event, as_json, describer)


async def print_events(args: argparse.Namespace) -> int:
    async with open_store(args.db) as store:
        run = await find_run(store, args.run)
        last = max(args.after, 0)
        describer = Describer()
        while True:
            records = await store.read_events(run.id, after_seq=last)
            for record in records:
                say(_record_line(record, args.json, describer))
                last = record.seq
                if args.follow and record.type in FINAL_EVENT_TYPES:
                    return EXIT_OK
            if not args.follow:
                return EXIT_OK
            if not records and (await store.get_run(run.id)).is_terminal:
                return EXIT_OK  # finished, and its final event was before --after
            # woken by the store's change feed when the process running it writes events
            await store.wait_for_events(run.id, last, timeout=FOLLOW_RECHECK)
