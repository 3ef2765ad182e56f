"""Through the service (benchmark 2) and memory against page count (benchmark 4).

    python scripts/bench_service.py LECTOR_BINARY CORPUS_DIR

2. Every real-world file of the corpus is uploaded over HTTP to a fresh `lector serve`
   (SQLite, or Postgres with BACKEND=postgres; workers on every core) and the clock stops when every document is done or
   failed: pages/s end to end. In the same run, `lector extract` on the same files with as
   many parallel processes as cores gives the engine's own pages/s; the ratio is printed.
4. The 500-page corpus file is cut to 100 and doubled to 1,000 pages (with pypdfium2); each is
   uploaded to a fresh server and extracted, while the resident memory of the server and its
   sandbox children is sampled every 20 ms: the peak, per page count.

Needs pypdfium2 (scripts/bench makes the virtual environment).
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_rss_kib(root_pid):
    """Resident memory of a process and all its descendants, in KiB."""
    children = {}
    rss = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ppid = int(fields[1])
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss[int(entry)] = int(line.split()[1])
            children.setdefault(ppid, []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


class Server:
    """A release `lector serve` on a fresh SQLite database, with an API token."""

    def __init__(self, lector, workers=None, ocr="off"):
        self.dir = tempfile.TemporaryDirectory()
        env = dict(os.environ)
        self.pg_database = None
        if os.environ.get("BACKEND") == "postgres":
            # A fresh database on the local server (trust auth), dropped in stop().
            self.pg_database = f"lector_bench_{uuid.uuid4().hex[:12]}"
            subprocess.run(["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "test",
                            "-c", f"create database {self.pg_database}"], check=True)
            env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{self.pg_database}"
            # Postgres refuses to start without the key that seals stored secrets.
            env.setdefault("LECTOR_SECRET_KEY", os.urandom(32).hex())
        else:
            env["DATABASE_URL"] = f"sqlite://{self.dir.name}/lector.db"
        env["LECTOR_RATE_UPLOADS_PER_USER"] = "0"
        # The text layer only, like `lector extract --ocr off` beside it (with OCR on, the
        # few pages of the set without a text layer would be OCRed by the service alone).
        env["LECTOR_OCR"] = ocr
        env["LECTOR_POLL_INTERVAL_MS"] = "100"
        if workers is not None:
            env["LECTOR_WORKERS"] = str(workers)
        run = lambda *args, stdin=None: subprocess.run(  # noqa: E731
            [lector, *args], env=env, input=stdin, capture_output=True, text=True, check=True
        ).stdout
        run("migrate")
        run("user", "add", "bench@example.com", "--password-stdin", stdin="quartz lantern meadow 4471\n")
        self.token = run("token", "create", "bench@example.com").strip()
        port = free_port()
        env["LECTOR_BIND"] = f"127.0.0.1:{port}"
        self.base = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [lector, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(400):
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        self.peak_kib = 0
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self):
        while self._sampling:
            self.peak_kib = max(self.peak_kib, tree_rss_kib(self.process.pid))
            time.sleep(0.02)

    def request(self, method, path, body=None, content_type=None):
        request = urllib.request.Request(self.base + path, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if content_type:
            request.add_header("Content-Type", content_type)
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())

    def upload(self, path):
        boundary = uuid.uuid4().hex
        body = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{Path(path).name}\"\r\nContent-Type: application/pdf\r\n\r\n"
        ).encode() + Path(path).read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        try:
            return self.request(
                "POST", "/api/v1/documents", body, f"multipart/form-data; boundary={boundary}"
            )["id"]
        except urllib.error.HTTPError:  # refused at upload (counted, not waited for)
            return None

    def wait_all(self, ids):
        # One list request per 100 ms (all documents fit in one page of 200): polling each
        # document would load the same cores the service runs on.
        pending = set(ids)
        while pending:
            listed = self.request("GET", "/api/v1/documents?limit=200")["documents"]
            pending -= {d["id"] for d in listed if d["status"] in ("done", "failed")}
            if pending:
                time.sleep(0.1)

    def stop(self):
        self._sampling = False
        self._sampler.join()
        self.process.terminate()
        self.process.wait()
        self.dir.cleanup()
        if self.pg_database:
            subprocess.run(["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-c",
                            f"drop database if exists {self.pg_database} with (force)"], check=False)


def extract_all(lector, files, workers):
    def one(path):
        subprocess.run([lector, "extract", "--ocr", "off", path],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, files))
    return time.perf_counter() - start


def main():
    lector, corpus = sys.argv[1], Path(sys.argv[2])
    text = corpus / "text"
    files = sorted(str(p) for p in text.glob("*.pdf") if not p.name.startswith("syn"))
    pages = sum(
        int(json.loads((text / "expected" / (Path(f).name + ".json")).read_text())["pages"])
        for f in files
    )
    cores = os.cpu_count() or 1

    # 2. Through the service, against the engine alone on the same files.
    extract_all(lector, files[:5], 1)  # warm the page cache
    engine = pages / extract_all(lector, files, cores)
    server = Server(lector)
    start = time.perf_counter()
    ids = [id for id in (server.upload(f) for f in files) if id]
    uploaded = time.perf_counter() - start
    server.wait_all(ids)
    service = pages / (time.perf_counter() - start)
    peak = server.peak_kib / 1024
    server.stop()
    backend = os.environ.get("BACKEND", "sqlite")
    print(f"through the service ({backend}): {len(files)} files, {pages} pages, uploaded one after another "
          f"in {uploaded:.2f} s, {len(files) - len(ids)} refused")
    print(f"  end to end {service:.1f} pages/s; lector extract on {cores} cores {engine:.1f} "
          f"pages/s; service / engine = {service / engine:.2f}; peak RSS (server + children) "
          f"{peak:.1f} MiB")

    # 4. Memory against page count.
    import pypdfium2

    large = pypdfium2.PdfDocument(str(text / "syn_large_500p.pdf"))
    with tempfile.TemporaryDirectory() as work:
        made = {}
        for count in (100, 1000):
            pdf = pypdfium2.PdfDocument.new()
            remaining = count
            while remaining > 0:
                take = min(remaining, len(large))
                pdf.import_pages(large, list(range(take)))
                remaining -= take
            path = Path(work) / f"pages_{count}.pdf"
            pdf.save(str(path))
            made[count] = path
        print("memory against page count (one upload, extracted to the end; server + sandbox "
              "children, sampled every 20 ms):")
        for count, path in made.items():
            server = Server(lector, workers=1)
            start = time.perf_counter()
            id = server.upload(path)
            server.wait_all([id])
            secs = time.perf_counter() - start
            status = server.request("GET", f"/api/v1/documents/{id}")["status"]
            peak = server.peak_kib / 1024
            server.stop()
            print(f"  {count:>5} pages ({path.stat().st_size / 1e6:.1f} MB): {status} in "
                  f"{secs:.2f} s, peak RSS {peak:.1f} MiB")


if __name__ == "__main__":
    main()
