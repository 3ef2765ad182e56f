"""Upload latency under load: every simulated client posts a 1 MB PDF to the API, back to
back. Each body is made unique (a comment line after `%%EOF`, which PDF readers ignore), so
Lector's de-duplication cannot answer from an earlier upload: every 202 is a new document.

Run by scripts/loadtest; needs LECTOR_TOKEN (an API token) and LECTOR_LOAD_PDF (the file).
"""

import os
import uuid

from locust import FastHttpUser, constant, task

PDF = open(os.environ["LECTOR_LOAD_PDF"], "rb").read()
TOKEN = os.environ["LECTOR_TOKEN"]


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
