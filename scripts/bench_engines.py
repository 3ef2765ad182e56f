"""Engine throughput, side by side in one run: `lector extract` against poppler's `pdftotext`,
PDFium (pypdfium2) and pdfminer.six on the same PDFs, on 1 worker and on all cores.

Run by scripts/bench (which makes the virtual environment); on its own:
    python scripts/bench_engines.py LECTOR_BINARY CORPUS_DIR

Every tool gets the same files and the same number of workers. The command-line tools
(lector, pdftotext) start one process per file, as a service calling them would; the Python
libraries run in a pool of long-lived worker processes, which favours them (no start-up per
file). Pages/s counts the pages of the files (from the corpus's expected JSON), whatever each
tool managed to read. Ratios are Lector's pages/s over the other tool's, measured in the same
run (the machine is shared: compare ratios, not absolute numbers, across runs).
"""

import json
import multiprocessing
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def pypdfium2_text(path):
    import pypdfium2

    try:
        pdf = pypdfium2.PdfDocument(path)
    except pypdfium2.PdfiumError:  # a file PDFium cannot open counts as read, with no text
        return 0
    try:
        out = []
        for page in pdf:
            textpage = page.get_textpage()
            out.append(textpage.get_text_bounded())
            textpage.close()
            page.close()
        return sum(len(t) for t in out)
    finally:
        pdf.close()


def pdfminer_text(path):
    from pdfminer.high_level import extract_text

    try:
        return len(extract_text(path))
    except Exception:  # a file pdfminer cannot read counts as read, with no text
        return 0


def run_library(function, files, workers):
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        start = time.perf_counter()
        pool.map(function, files, chunksize=1)
        return time.perf_counter() - start


def run_commands(make_command, files, workers):
    def one(path):
        subprocess.run(
            make_command(path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as executor:
        list(executor.map(one, files))
    return time.perf_counter() - start


def run_batch(lector, files, workers):
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run(
            [lector, "extract", "--ocr", "off", "--jobs", str(workers), "--out", out, *files],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        return time.perf_counter() - start


def peak_rss_mib(command):
    """Peak RSS of a command and its children, from GNU time."""
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M"] + command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    return int(result.stderr.strip().splitlines()[-1]) / 1024


def library_peak_rss_mib(function, path):
    """Peak RSS of a fresh process that runs `function(path)`."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_rss_child, args=(queue, function.__name__, path))
    process.start()
    rss = queue.get()
    process.join()
    return rss / 1024


def _rss_child(queue, name, path):
    globals()[name](path)
    queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main():
    lector, corpus = sys.argv[1], Path(sys.argv[2])
    text = corpus / "text"
    files = sorted(str(p) for p in text.glob("*.pdf") if not p.name.startswith("syn"))
    pages = 0
    for f in files:
        expected = text / "expected" / (Path(f).name + ".json")
        pages += int(json.loads(expected.read_text())["pages"]) if expected.exists() else 0
    large = str(text / "syn_large_500p.pdf")
    cores = os.cpu_count() or 1

    tools = {
        # One `lector extract` for the whole set: a child reads one file after another, as a
        # batch is meant to be run (`--jobs` of them at once).
        "lector batch": lambda fs, n: run_batch(lector, fs, n),
        "lector": lambda fs, n: run_commands(
            lambda p: [lector, "extract", "--ocr", "off", p], fs, n
        ),
        "pdftotext": lambda fs, n: run_commands(
            lambda p: ["pdftotext", "-q", "-enc", "UTF-8", p, "-"], fs, n
        ),
        "pypdfium2": lambda fs, n: run_library(pypdfium2_text, fs, n),
        "pdfminer.six": lambda fs, n: run_library(pdfminer_text, fs, n),
    }
    # Warm the page cache and the tools once.
    for name, run in tools.items():
        run(files[:5], 1)

    print(f"engine throughput: {len(files)} real-world files, {pages} pages; "
          f"the 500-page file apart")
    print(f"{'tool':<14}{'1 worker':>14}{f'{cores} workers':>14}{'500 pages':>14}"
          f"{'peak RSS 500p':>16}")
    results = {}
    for name, run in tools.items():
        one = pages / run(files, 1)
        many = pages / run(files, cores)
        big = 500 / run([large], 1)
        results[name] = (one, many, big)
        if name.startswith("lector"):
            rss = peak_rss_mib([lector, "extract", "--ocr", "off", large])
        elif name == "pdftotext":
            rss = peak_rss_mib(["pdftotext", "-q", large, "-"])
        else:
            function = pypdfium2_text if name == "pypdfium2" else pdfminer_text
            rss = library_peak_rss_mib(function, large)
        print(f"{name:<14}{one:>10.1f} p/s{many:>10.1f} p/s{big:>10.1f} p/s{rss:>12.1f} MiB")
    for mine in ["lector batch", "lector"]:
        for name, result in results.items():
            if name.startswith("lector"):
                continue
            ratios = "  ".join(f"{a / b:5.2f}x" for a, b in zip(results[mine], result))
            print(f"{mine + ' / ' + name:<28} {ratios}   (1 worker, {cores} workers, 500 pages)")


if __name__ == "__main__":
    main()
