#!/usr/bin/env python3
"""A stand-in for API Gateway's Management API on 127.0.0.1, for the IAM check's scenarios
(moto's accepts every post and never answers 410 or 429).

POST, GET and DELETE /{stage}/@connections/{id}: 410 GoneException for ids starting `gone`,
429 LimitExceededException for ids starting `throttled`, 500 for `failing`, otherwise 200 (GET: the connection's
details) or 204 (DELETE). Usage: scripts/fake-management-api.py PORT_FILE   (binds a free
port, writes it to PORT_FILE, serves until killed).
"""
import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def answer(self, method):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        path = urllib.parse.urlparse(self.path).path
        if "/@connections/" not in path:
            return self.reply(404, {"message": "Not Found"})
        connection = urllib.parse.unquote(path.split("/@connections/", 1)[1])
        if connection.startswith("gone"):
            return self.reply(410, {"message": "Gone"}, "GoneException")
        if connection.startswith("throttled"):
            return self.reply(429, {"message": "Too Many Requests"}, "LimitExceededException")
        if connection.startswith("failing"):
            return self.reply(500, {"message": "Internal server error"}, "InternalServerErrorException")
        if method == "GET":
            return self.reply(200, {"connectedAt": "2026-11-22T21:00:00Z", "lastActiveAt": "2026-11-22T21:00:00Z",
                                    "identity": {"sourceIp": "203.0.113.7", "userAgent": "websocat/1.14.0"}})
        if method == "DELETE":
            return self.reply(204, None)
        return self.reply(200, None)

    def reply(self, status, body, error_type=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        self.answer("POST")

    def do_GET(self):
        self.answer("GET")

    def do_DELETE(self):
        self.answer("DELETE")

    def log_message(self, *args):
        pass


def main(port_file):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file, "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
