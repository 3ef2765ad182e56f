"""Upload latency under load: every simulated client posts a 1 MB PDF to the API, back to
back. Each body is made unique (a comment line after `%%EOF`, which PDF readers ignore), so
Lector's de-duplication cannot answer from an earlier upload: every 202 is a new document.

Run by scripts/loadtest; needs LECTOR_TOKEN (an API token) and LECTOR_LOAD_PDF (the file).
LECTOR_LOAD_RATE, when set, is each client's pace in uploads per second: it waits a random,
exponentially distributed time (mean 1/rate) between uploads, so arrivals are spread like
independent users' rather than in step, and latency is measured at a rate the server keeps up
with. Unset, each client posts again as soon as it has its answer (a closed loop: latency is
then the number of clients over the throughput).
"""

import os
import random
import time
import uuid

from locust import FastHttpUser, constant, task

PDF = open(os.environ["LECTOR_LOAD_PDF"], "rb").read()
TOKEN = os.environ["LECTOR_TOKEN"]
RATE = float(os.environ.get("LECTOR_LOAD_RATE") or 0)


def multipart(pdf: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="load.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head + pdf + tail, f"multipart/form-data; boundary={boundary}"


class Uploader(FastHttpUser):
    if RATE > 0:

        def wait_time(self):
            return random.expovariate(RATE)

        def on_start(self):
            # Independent users do not all arrive in the same instant.
            time.sleep(random.expovariate(RATE))

    else:
        wait_time = constant(0)

    @task
    def upload(self):
        body, content_type = multipart(PDF + b"\n%" + uuid.uuid4().hex.encode() + b"\n")
        with self.client.post(
            "/api/v1/documents",
            data=body,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type},
            name="POST /api/v1/documents",
            catch_response=True,
        ) as response:
            if response.status_code != 202:
                response.failure(f"{response.status_code}: {response.text[:200]}")
