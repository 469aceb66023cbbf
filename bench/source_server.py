"""An HTTP server for image sources that counts the body bytes it sends.

    python3 bench/source_server.py DIRECTORY LOG

Serves DIRECTORY on 127.0.0.1 at a free port, prints the port on the first line of stdout,
and appends one line per answered request to LOG: `METHOD PATH BYTES` (body bytes sent).
The benchmark uses the log to check that a create reads its URL source exactly once.
"""

import functools
import http.server
import sys
import threading


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler that records how many body bytes each answer carried."""

    log_path = ""
    log_lock = threading.Lock()

    def copyfile(self, source, outputfile):
        sent = 0
        while True:
            chunk = source.read(1024 * 1024)
            if not chunk:
                break
            outputfile.write(chunk)
            sent += len(chunk)
        self.sent = sent

    def handle_one_request(self):
        self.sent = 0
        super().handle_one_request()
        if getattr(self, "command", None):
            with self.log_lock, open(self.log_path, "a") as log:
                log.write(f"{self.command} {self.path} {self.sent}\n")

    def log_message(self, format, *args):
        pass


def main():
    directory, log_path = sys.argv[1], sys.argv[2]
    CountingHandler.log_path = log_path
    handler = functools.partial(CountingHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
