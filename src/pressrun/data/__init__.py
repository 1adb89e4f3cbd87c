"""Row readers: CSV, JSON, JSONL and XLSX files -> a stream of typed rows."""

from pressrun.data.readers import Row, RowSource, open_rows

__all__ = ["Row", "RowSource", "open_rows"]
