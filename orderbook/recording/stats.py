"""What the recording did, read at scrape time: plain attributes, each written by one thread only."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric


@dataclass(slots=True)
class RecorderStats:
    records: int = 0
    raw_bytes: int = 0
    written_bytes: int = 0
    files: int = 0
    files_deleted: int = 0
    dropped_queue_full: int = 0
    """Written by the gevent thread: records the writer was too far behind to take."""
    dropped_write_failed: int = 0
    last_error: str | None = None
    """The writer's latest error, None once it writes again."""

    def families(self) -> list[Metric]:
        dropped = CounterMetricFamily(
            "orderbook_record_dropped", "Records not recorded (--record): the writer was too far behind "
            "(queue_full, a slow disk), or the write failed (write_failed, a full disk)", labels=["reason"])
        dropped.add_metric(["queue_full"], self.dropped_queue_full)
        dropped.add_metric(["write_failed"], self.dropped_write_failed)
        records = CounterMetricFamily("orderbook_recorded_records", "Records written to the recording (--record)")
        records.add_metric([], self.records)
        written = CounterMetricFamily("orderbook_record_written_bytes",
                                      "Bytes written to the recording's files, compressed (--record)")
        written.add_metric([], self.written_bytes)
        raw = CounterMetricFamily("orderbook_record_raw_bytes",
                                  "Bytes of records written to the recording, before compression (--record)")
        raw.add_metric([], self.raw_bytes)
        deleted = CounterMetricFamily("orderbook_record_files_deleted",
                                      "Recording files deleted, the oldest first, to stay within --record-max-bytes")
        deleted.add_metric([], self.files_deleted)
        failing = GaugeMetricFamily("orderbook_record_failing", "1 while the recording cannot write (--record)")
        failing.add_metric([], 0 if self.last_error is None else 1)
        return [dropped, records, written, raw, deleted, failing]
