"""The Flight peer: a pyarrow Flight server in its own process, serving
Parquet files from memory (read once at start).

    python pyarrow_flight_server.py NAME=PATH ...

Prints `port N` once it listens, then serves `do_get(NAME)` until killed. In
its own process it has a GIL of its own, unlike a server in the client's
process, so it is the stronger of the two pyarrow setups.
"""
import sys

import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq


def plain_strings(table: pa.Table) -> pa.Table:
    """The types Basin sends: string views (as tpchgen-cli writes) become strings."""
    fields = [
        pa.field(f.name, pa.string(), f.nullable) if f.type == pa.string_view() else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields))


class MemoryServer(flight.FlightServerBase):
    def __init__(self, tables):
        super().__init__("grpc://127.0.0.1:0")
        self.tables = tables

    def do_get(self, context, ticket):
        return flight.RecordBatchStream(self.tables[ticket.ticket.decode()])


def main():
    tables = {}
    for argument in sys.argv[1:]:
        name, _, path = argument.partition("=")
        tables[name] = plain_strings(pq.read_table(path))
    server = MemoryServer(tables)
    print(f"port {server.port}", flush=True)
    server.serve()


if __name__ == "__main__":
    main()
