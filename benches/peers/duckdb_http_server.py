"""The REST peer: a small Python HTTP server answering SQL with DuckDB, in its
own process, the way a team would put DuckDB behind an endpoint.

    python duckdb_http_server.py TABLE=PATH ...

Each Parquet file becomes a DuckDB table in memory (loaded once, as Basin
reads a dataset it has stored). `POST /query` with `{"sql": ...}` answers
`{"data": {"columns": [...], "rows": [...]}}` like Basin's `/query`. Prints
`port N` once it listens. Threads share one database; each request has its
own cursor, as DuckDB's docs ask for concurrent use from Python.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import duckdb

DATABASE = duckdb.connect()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        cursor = DATABASE.cursor()
        try:
            result = cursor.sql(body["sql"])
            answer = {
                "data": {
                    "columns": [{"name": n, "type": str(t)} for n, t in zip(result.columns, result.types)],
                    "rows": result.fetchall(),
                }
            }
        finally:
            cursor.close()
        payload = json.dumps(answer, default=str).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_):
        pass


def main():
    for argument in sys.argv[1:]:
        table, _, path = argument.partition("=")
        DATABASE.sql(f"CREATE TABLE {table} AS SELECT * FROM read_parquet('{path}')")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
