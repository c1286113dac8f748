"""The media types supex reads and writes, in one table: a body's ``Content-Type`` or a file's name
gives the format it is read as; a mapping's format gives the type a written body is sent as."""

from __future__ import annotations

__all__ = ["FILE_TYPES", "NOTICES", "READ_AS", "WRITTEN_AS", "XLSX"]

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# the gateway's notices of the sharing procedure, pushed to a push connector's endpoint beside its records
NOTICES = "application/vnd.supex.notices+json"
# a body's media type -> the format it is read as (every workbook is read alike)
READ_AS = {
    "application/json": "json", "application/x-ndjson": "ndjson", "application/ndjson": "ndjson",
    "application/jsonl": "ndjson", "application/xml": "xml", "text/xml": "xml", "text/csv": "csv",
    XLSX: "xlsx", "application/vnd.ms-excel": "xlsx", "application/vnd.oasis.opendocument.spreadsheet": "xlsx",
}
# a file's media type by its name's ending: for dropped files and for `supex push`
FILE_TYPES = {".csv": "text/csv", ".json": "application/json", ".ndjson": "application/x-ndjson",
              ".jsonl": "application/x-ndjson", ".xml": "application/xml", ".xlsx": XLSX, ".xlsm": XLSX,
              ".xls": XLSX, ".ods": XLSX}
# a format a mapping writes -> the media type of the body written
WRITTEN_AS = {"json": "application/json", "ndjson": "application/x-ndjson", "xml": "application/xml",
              "csv": "text/csv; charset=utf-8"}
