#!/usr/bin/env python3
"""A minimal OpenLineage receiver for benchmarks: answers 200 to POST /api/v1/lineage and counts
events. Usage: openlineage-receiver.py PORT (0: any free port; the port is printed first)."""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    count = 0

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Handler.count += 1
        self.send_response(200 if self.path == "/api/v1/lineage" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
