"""OCR of one multi-page scan through the service (benchmark 5, all cores on one document).

    python scripts/bench_scan.py LECTOR_BINARY OUT_PDF SCAN.pdf...

Joins the scans into one PDF (with pypdfium2), uploads it to a fresh `lector serve` (OCR auto,
workers on every core) and prints the seconds per page until it is done, on one line:
`PAGES SECONDS`. scripts/bench runs the tesseract CLI on the same page images beside it.
"""

import sys
import time

import pypdfium2

from bench_service import Server


def main():
    lector, out, scans = sys.argv[1], sys.argv[2], sys.argv[3:]
    joined = pypdfium2.PdfDocument.new()
    for scan in scans:
        joined.import_pages(pypdfium2.PdfDocument(scan))
    joined.save(out)
    pages = len(joined)
    server = Server(lector, ocr="auto")
    start = time.perf_counter()
    ids = [server.upload(out)]
    server.wait_all(ids)
    seconds = time.perf_counter() - start
    server.stop()
    print(pages, f"{seconds:.2f}")


if __name__ == "__main__":
    main()
