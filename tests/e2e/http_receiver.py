#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""A webhook receiver for the alert tests (tests/e2e/70-alerts.sh).

Listens on 127.0.0.1 (an ephemeral port, written to --port-file once bound)
and appends one JSON line per request to --log, at arrival:

    {"time": <epoch seconds>, "mode": "ok", "method": "POST", "path": "/",
     "content_type": "application/json", "body": "<request body>"}

How it answers is read from --mode-file on every request (default "ok"):

    ok     200
    fail   500, with --fail-body's bytes as the body if given
    hang   answers nothing while the mode file says "hang" (at most 120 s),
           then 503: the client's timeout is what ends the request

Switching the file back to "ok" is the recovery.
"""
import argparse
import http.server
import json
import os
import threading
import time

LOCK = threading.Lock()


def read_mode(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip() or "ok"
    except FileNotFoundError:
        return "ok"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as libcurl would like

    def log_message(self, fmt, *args):  # quiet: the log file is the record
        pass

    def _answer(self, code, text):
        body = text if isinstance(text, bytes) else (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body, utf8 = raw.decode("utf-8"), True
        except UnicodeDecodeError:
            body, utf8 = raw.decode("utf-8", "replace"), False
        mode = read_mode(self.server.mode_file)
        rec = {
            "time": time.time(),
            "mode": mode,
            "method": self.command,
            "path": self.path,
            "content_type": self.headers.get("Content-Type", ""),
            "body": body,
            "utf8": utf8,
        }
        with LOCK:
            with open(self.server.log_file, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
        if mode == "fail":
            fail_body = self.server.fail_body
            self._answer(500, fail_body if fail_body is not None else "receiver told to fail")
        elif mode == "hang":
            end = time.time() + 120
            while time.time() < end and read_mode(self.server.mode_file) == "hang":
                time.sleep(0.05)
            try:
                self._answer(503, "receiver stopped hanging")
            except OSError:
                pass  # the client gave up long ago
            self.close_connection = True
        else:
            self._answer(200, "ok")

    do_PUT = do_POST


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--mode-file", required=True)
    ap.add_argument("--fail-body", help="file whose bytes a failing answer carries")
    args = ap.parse_args()

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.log_file = args.log
    srv.mode_file = args.mode_file
    srv.fail_body = None
    if args.fail_body:
        with open(args.fail_body, "rb") as f:
            srv.fail_body = f.read()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{srv.server_address[1]}\n")
    os.rename(tmp, args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
