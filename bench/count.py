"""Benchmark `kmervae count` end to end (FASTA file → finished store) against two baselines.

Inputs (made once under --workdir from the shared genomes): every record chopped into
1 kb and into 5 kb contigs, and a file of at least --big-mbp Mbp made by repeating both
sets (IDs made unique). For each input it runs, each in a fresh process so peak RSS is
per run:

* ``kmervae``   count_fasta (all 6..1-mer groups = 2772 columns), 1 and 2 threads
* ``numpy``     a straightforward per-record numpy counter (line-by-line FASTA parse,
  encode, k-mer integers per k, bincount, fold to canonical columns: the approach of the
  original implementation), writing the same store; checked equal to kmervae's counts
* ``vamb``      VAMB 5.0.4's ``Composition.from_file`` (4-mers only, 103 columns, kept in
  memory), run by the VAMB virtual environment's python

and prints Mbp/s, contigs/s and peak RSS.

With ``--readers`` it compares FASTA readers instead: kmervae's (``read_fasta_chunks``)
against the kept libraries dnaio, needletail and pyfastx, on the 1 kb and 5 kb contigs,
plain and gzip. Each library path makes the checks kmervae's reader makes (a leading
'>', IDs present and text, only sequence characters, unique IDs, no empty file, no
truncated gzip) and yields the same ``(ids, seq, offsets)`` chunks; each feeds the same
counting kernel (6..1, one thread). Printed: the median of ``--repeats`` runs (readers in
turn, each run in a fresh process, each the best of two passes after an untimed one) of
Mbp/s, Mbp per CPU-second end to end and for reading + checking alone; the checksums of
the counts are checked equal. Times exclude interpreter start-up and
imports (each process first counts a tiny file, which also loads numba's compile cache).

VAMB pins old torch/numpy, so it lives in its own virtual environment, without its pins::

    python3.11 -m venv /tmp/kmervae-vamb-venv
    /tmp/kmervae-vamb-venv/bin/pip install --no-deps vamb==5.0.4 vambcore==0.1.2 pycoverm==0.6.2
    /tmp/kmervae-vamb-venv/bin/pip install numpy loguru pyrodigal pyhmmer scikit-learn networkx \\
        dadaptation torch==2.13.0

Usage::

    .venv/bin/python bench/count.py [--vamb-python /tmp/kmervae-vamb-venv/bin/python] [--quick]
    .venv/bin/python bench/count.py --readers --repeats 5   # needs dnaio, needletail, pyfastx

The machine is shared: note ``uptime`` (printed) next to the numbers.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
GENOMES = Path(os.environ.get("KMERVAE_GENOMES", HERE.parents[2] / "shared" / "genomes"))
DEFAULT_VAMB_PYTHON = "/tmp/kmervae-vamb-venv/bin/python"
LINE = 80


# -- inputs ----------------------------------------------------------------------------------


def genome_records(genomes: Path):
    """(name, sequence bytes) of every record of the shared .fa.gz genomes."""
    for path in sorted(genomes.glob("*.fa.gz")):
        yield from simple_fasta(path)


def write_contigs(out, records, size: int, tag: str) -> tuple[int, int]:
    """Cut every record into consecutive ``size``-bp contigs (a shorter tail is dropped)."""
    n = bases = 0
    for name, seq in records:
        for start in range(0, len(seq) - size + 1, size):
            piece = seq[start : start + size]
            out.write(b">%s_%s_%d\n" % (tag.encode(), name.encode(), start))
            out.write(b"".join(piece[a : a + LINE] + b"\n" for a in range(0, len(piece), LINE)))
            n += 1
            bases += size
    return n, bases


def make_inputs(workdir: Path, genomes: Path, big_mbp: float) -> dict[str, Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    records = list(genome_records(genomes))
    paths = {}
    for size in (1000, 5000):
        path = workdir / f"contigs_{size // 1000}kb.fa"
        if not path.exists():
            with open(path.with_suffix(".tmp"), "wb") as out:
                write_contigs(out, records, size, "c")
            path.with_suffix(".tmp").rename(path)
        paths[f"{size // 1000} kb contigs"] = path
    if big_mbp > 0:
        big = workdir / f"mixed_{int(big_mbp)}Mbp.fa"
        if not big.exists():
            bases, copy = 0, 0
            with open(big.with_suffix(".tmp"), "wb") as out:
                while bases < big_mbp * 1e6:
                    for size in (1000, 5000):
                        bases += write_contigs(out, records, size, f"r{copy}s{size // 1000}")[1]
                    copy += 1
            big.with_suffix(".tmp").rename(big)
        paths[f"{int(big_mbp)} Mbp (1+5 kb, repeated)"] = big
    return paths


# -- one measured run (in its own process) ------------------------------------------------------


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Timer:
    """Wall and CPU seconds of a block."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, cpu_seconds() - self.cpu


def tiny_fasta(workdir: Path) -> Path:
    path = workdir / "warmup.fa"
    path.write_text(">w1\nACGTACGTTTGACNACGT\n>w2\nGGGCCCAAATTT\n")
    return path


def run_kmervae(path: Path, out: Path, threads: int):
    from kmervae.count import count_fasta
    from kmervae.io.store import KmerStore

    count_fasta([tiny_fasta(out.parent)], out.with_name("warmup.zarr"), threads=threads)
    with Timer() as timer:
        count_fasta([path], out, threads=threads)
    return timer, KmerStore(out).n


def run_kmervae_in_memory(path: Path, out: Path, threads: int):
    """Parse + count only, counts kept as arrays (what VAMB's from_file does; embed's path)."""
    from kmervae.count import count_chunks

    list(count_chunks([tiny_fasta(out.parent)], threads=threads))
    with Timer() as timer:
        n = sum(len(ids) for ids, _, _ in count_chunks([path], threads=threads))
    return timer, n


def numpy_counts(seq: bytes, layout, lut, fold) -> "np.ndarray":  # noqa: F821
    """Per-record numpy: encode, k-mer integers per k, bincount, fold to canonical columns."""
    import numpy as np

    codes = lut[np.frombuffer(seq, dtype=np.uint8)]
    row = np.zeros(layout.width, dtype=np.uint32)
    for g in layout.groups:
        n = len(codes) - g.k + 1
        if n <= 0:
            continue
        kmer = np.zeros(n, dtype=np.int64)
        bad = np.zeros(n, dtype=bool)
        for j in range(g.k):
            window = codes[j : j + n]
            kmer = kmer * 4 + (window & 3)
            bad |= window > 3
        raw = np.bincount(kmer[~bad], minlength=4**g.k)
        row[g.start : g.stop] = np.bincount(fold[g.k], weights=raw, minlength=g.width)
    return row


def simple_fasta(path: Path):
    """Line-by-line FASTA parser (what the previous tool used, like Biopython's)."""
    name, parts = None, []
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as fh:
        for line in fh:
            if line.startswith(b">"):
                if name is not None:
                    yield name, b"".join(parts)
                name, parts = line[1:].split()[0].decode(), []
            else:
                parts.append(line.strip())
    if name is not None:
        yield name, b"".join(parts)


def run_numpy(path: Path, out: Path, threads: int):
    import numpy as np

    from kmervae.count import BASE_CODE
    from kmervae.kmers import Layout, canonical_index
    from kmervae.io.store import FAST_COMPRESSOR, StoreWriter

    layout = Layout()
    fold = {k: canonical_index(k) for k in layout.ks}
    n = 0
    with Timer() as timer, StoreWriter(out, layout, compressors=FAST_COMPRESSOR) as writer:
        ids, lengths, rows = [], [], []
        for name, seq in simple_fasta(path):
            ids.append(name)
            lengths.append(len(seq))
            rows.append(numpy_counts(seq, layout, BASE_CODE, fold))
            if len(ids) == 4096:
                writer.append(ids, lengths, np.stack(rows))
                n += len(ids)
                ids, lengths, rows = [], [], []
        if ids:
            writer.append(ids, lengths, np.stack(rows))
            n += len(ids)
    return timer, n


def run_vamb(path: Path, out: Path, threads: int):
    import vamb

    with open(tiny_fasta(out.parent), "rb") as fh:
        vamb.parsecontigs.Composition.from_file(fh, None, minlength=4)
    with Timer() as timer, open(path, "rb") as fh:
        composition = vamb.parsecontigs.Composition.from_file(fh, None, minlength=4)
    return timer, int(composition.matrix.shape[0])


def kernel_only(path: Path) -> dict:
    """Where one thread's time goes (CPU seconds): parsing, counting (kmervae's kernel vs
    the per-record numpy counter on the same records), writing the store (compression,
    chunk files, IDs and lengths) and hashing the input, each stage alone."""
    import numpy as np

    from kmervae.count import BASE_CODE, count_buffer, count_fasta
    from kmervae.io.fasta import read_fasta_chunks
    from kmervae.kmers import Layout, canonical_index
    from kmervae.io.store import DEFAULT_CHUNK_ROWS, FAST_COMPRESSOR, StoreWriter, source_entry

    layout = Layout()
    fold = {k: canonical_index(k) for k in layout.ks}
    count_fasta([tiny_fasta(path.parent)], path.with_name("warmup.zarr"))  # loads the compiled code
    start = cpu_seconds()
    chunks = list(read_fasta_chunks(path))
    parse = cpu_seconds() - start
    out = np.empty((max(len(c) for c in chunks), layout.width), dtype=np.uint32)
    start = cpu_seconds()
    for c in chunks:  # into one reused matrix, as count_fasta does
        count_buffer(c.seq, c.offsets, layout, out=out)
    kernel = cpu_seconds() - start
    first = chunks[0]
    first_counts = count_buffer(first.seq, first.offsets, layout)
    rows = DEFAULT_CHUNK_ROWS  # whole store chunks, the last one zero-padded, as count_fasta writes them
    assert all(len(c) == rows for c in chunks[:-1])
    counts = [np.zeros((rows, layout.width), dtype=np.uint32) for _ in chunks]
    for c, m in zip(chunks, counts):
        count_buffer(c.seq, c.offsets, layout, out=m)
    start = cpu_seconds()
    with StoreWriter(path.with_name("stages.zarr"), layout, compressors=FAST_COMPRESSOR) as writer:
        for c, m in zip(chunks, counts):
            writer.append_padded(c.ids, c.lengths, m)
    store = cpu_seconds() - start
    start = cpu_seconds()
    source_entry(path)
    sha256 = cpu_seconds() - start
    start = cpu_seconds()
    records = [first.seq[first.offsets[i] : first.offsets[i + 1]].tobytes() for i in range(len(first))]
    theirs = np.stack([numpy_counts(r, layout, BASE_CODE, fold) for r in records])
    numpy_seconds = (cpu_seconds() - start) * sum(c.bases for c in chunks) / first.bases
    np.testing.assert_array_equal(theirs, first_counts)
    return {
        "parse": parse,
        "kernel": kernel,
        "store": store,
        "sha256": sha256,
        "numpy": numpy_seconds,
        "bases": sum(c.bases for c in chunks),
    }


# -- FASTA readers: kmervae's scanner against kept libraries, same checks, same kernel ------------------

READERS = ("kmervae", "dnaio", "needletail", "pyfastx")


def library_records(reader: str, path: Path):
    """(ID, sequence) pairs from a library reader, ID = the header's first word."""
    if reader == "dnaio":
        import dnaio

        with dnaio.open(path, fileformat="fasta") as records:
            for r in records:
                yield r.id, r.sequence
    elif reader == "needletail":
        import needletail

        for r in needletail.parse_fastx_file(str(path)):
            yield r.id.split(None, 1)[0] if r.id else "", r.seq
    else:
        import pyfastx

        yield from pyfastx.Fastx(str(path), format="fasta")


def library_chunks(reader: str, path: Path, chunk_records: int = 4096):
    """(ids, seq, offsets) chunks from a library, with the checks kmervae's reader makes:
    a leading '>' (only comment lines before it; binary vs text told apart), an ID on every
    header, text headers, only sequence characters, unique IDs, no empty file, no truncated
    gzip (pyfastx does not notice one: its gzip stream is verified by a second pass)."""
    import itertools
    import zlib

    import numpy as np

    from kmervae.errors import KmervaeError
    from kmervae.io.fasta import _BYTE_CLASS, _SeenIds, open_fasta

    with open_fasta(path) as fh:  # the preamble check on the head, as kmervae's reader makes it
        head = fh.read(1 << 16)
    if head[:1] != b">" and b"\n>" not in head:
        raise KmervaeError(f"{path}: not FASTA")
    seen = _SeenIds([path])
    records = library_records(reader, path)
    first = 1
    while True:
        batch = list(itertools.islice(records, chunk_records))
        if not batch:
            break
        ids, seqs = zip(*batch)
        if "" in ids:
            raise KmervaeError(f"{path}: record {first + ids.index('')}: the header line has no ID")
        if "\ufffd" in "".join(ids):  # needletail replaces bytes that are not UTF-8
            raise KmervaeError(f"{path}: the header is not text (a binary file?)")
        text = "".join(seqs).encode()
        lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        seq = np.frombuffer(text, dtype=np.uint8)
        if len(seq) != offsets[-1] or _BYTE_CLASS[seq].any():  # not ASCII, or not a sequence character
            raise KmervaeError(f"{path}: unexpected character in the sequence")
        ids = np.array(ids, dtype=str)
        seen.check(0, first, ids)
        yield ids, seq, offsets
        first += len(ids)
    if first == 1:
        raise KmervaeError(f"{path}: no FASTA records (an empty file?)")
    if reader == "pyfastx" and open(path, "rb").read(2) == b"\x1f\x8b":
        with open(path, "rb") as fh:
            inflate = zlib.decompressobj(31)
            while block := fh.read(1 << 20):
                inflate.decompress(block, 1 << 24)
                while inflate.unconsumed_tail:
                    inflate.decompress(inflate.unconsumed_tail, 1 << 24)
            if not inflate.eof:
                raise KmervaeError(f"{path}: truncated or corrupt gzip data")


def reader_chunks(reader: str, path: Path):
    if reader == "kmervae":
        from kmervae.io.fasta import read_fasta_chunks

        return ((c.ids, c.seq, c.offsets) for c in read_fasta_chunks(path, chunk_records=4096))
    return library_chunks(reader, path)


def run_reader(reader: str, path: Path) -> dict:
    """CPU and wall seconds of reading + checking alone, and of reading + checking + counting
    (1 thread, 6..1 into one reused matrix, as count_fasta does), each the best of two passes
    after an untimed one (first-touch costs are the same for every reader); also a checksum
    of the counts."""
    import numpy as np

    from kmervae.count import count_buffer
    from kmervae.kmers import Layout

    layout = Layout()
    out = np.empty((4096, layout.width), dtype=np.uint32)

    def read() -> int:
        return sum(len(ids) for ids, _, _ in reader_chunks(reader, path))

    def read_and_count() -> int:
        total = 0
        for ids, seq, offsets in reader_chunks(reader, path):
            total += int(count_buffer(seq, offsets, layout, out=out)[: len(ids)].sum(dtype=np.uint64))
        return total

    checksum = read_and_count()  # imports, numba's cache, the matrix's pages
    reads, both = [], []
    for _ in range(2):
        with Timer() as timer:
            records = read()
        reads.append(timer)
        with Timer() as timer:
            assert read_and_count() == checksum
        both.append(timer)
    return {
        "read_cpu": min(t.cpu for t in reads), "cpu": min(t.cpu for t in both),
        "seconds": min(t.wall for t in both), "records": records, "checksum": checksum,
    }  # fmt: skip


def reader_inputs(workdir: Path, genomes: Path) -> dict[str, Path]:
    """1 kb and 5 kb contigs, plain and gzip (level 6, gzip's default)."""
    paths = {}
    for label, plain in list(make_inputs(workdir, genomes, big_mbp=0).items())[:2]:
        packed = plain.with_name(plain.name + ".gz")
        if not packed.exists():
            packed.with_suffix(".tmp").write_bytes(gzip.compress(plain.read_bytes(), compresslevel=6))
            packed.with_suffix(".tmp").rename(packed)
        paths[f"{label}, plain"] = plain
        paths[f"{label}, gzip"] = packed
    return paths


def compare_readers(args) -> None:
    """The reader table: median of --repeats runs, each reader in a fresh process per run."""
    import statistics

    inputs = reader_inputs(args.workdir, args.genomes)
    print(f"# readers, {os.uname().nodename}, {os.cpu_count()} cores; load before: {os.getloadavg()}")
    print(
        f"# median of {args.repeats} runs (each in a fresh process, best of 2 passes); "
        "counting: 6..1, 1 thread"
    )
    header = (
        f"{'input':<24} {'reader':<11} {'Mbp/s':>7} {'Mbp/CPU-s':>9} {'read only Mbp/CPU-s':>19}"
        f" {'kmervae CPU / its CPU':>22}"
    )
    print(header)
    print("-" * len(header))
    for label, path in inputs.items():
        plain = path.with_suffix("") if path.suffix == ".gz" else path
        bases = sum(len(line) - 1 for line in open(plain, "rb") if not line.startswith(b">"))
        runs = {reader: [] for reader in READERS}
        for _ in range(args.repeats):  # round robin: a change in the machine's load hits every reader
            for reader in READERS:
                runs[reader].append(measure(sys.executable, "reader:" + reader, path, 1, args.workdir))
        results = {
            reader: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
            for reader, rs in runs.items()
        }
        for reader, r in results.items():
            assert r["checksum"] == results["kmervae"]["checksum"], f"{reader} counts differ on {path}"
            print(
                f"{label:<24} {reader:<11} {bases / r['seconds'] / 1e6:>7.1f} {bases / r['cpu'] / 1e6:>9.1f}"
                f" {bases / r['read_cpu'] / 1e6:>19.1f} {results['kmervae']['cpu'] / r['cpu']:>21.2f}x",
                flush=True,
            )
        best = min(READERS[1:], key=lambda reader: results[reader]["cpu"])
        print(
            f"{'':<24} kmervae's reader vs the best library ({best}), end to end: "
            f"{results[best]['cpu'] / results['kmervae']['cpu']:.2f}x CPU, "
            f"{results[best]['seconds'] / results['kmervae']['seconds']:.2f}x wall"
        )
    print(f"# load after: {os.getloadavg()}")


RUNNERS = {"kmervae": run_kmervae, "kmervae-mem": run_kmervae_in_memory, "numpy": run_numpy, "vamb": run_vamb}


def peak_rss_mb() -> float:
    """This process's peak RSS. /proc's VmHWM, not ru_maxrss: on Linux ru_maxrss carries the
    parent's peak over fork + exec."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(method: str, path: Path, out: Path, threads: int) -> None:
    if method == "kernel":
        print(json.dumps(kernel_only(path)))
        return
    if method.startswith("reader:"):
        print(json.dumps(run_reader(method.split(":", 1)[1], path)))
        return
    timer, n = RUNNERS[method](path, out, threads)
    print(json.dumps({"seconds": timer.wall, "cpu": timer.cpu, "records": n, "rss_mb": peak_rss_mb()}))


# -- driver --------------------------------------------------------------------------------------


def measure(python: str, method: str, path: Path, threads: int, workdir: Path) -> dict:
    out = workdir / f"out-{method}-{threads}.zarr"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(max(threads, 1)))
    cmd = [python, str(HERE), "--one", method, str(path), str(out), str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{method} failed on {path}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_numpy_equals_kmervae(workdir: Path) -> None:
    """The baseline must compute the same numbers, or the comparison means nothing."""
    import numpy as np

    from kmervae.io.store import KmerStore

    ours, theirs = KmerStore(workdir / "out-kmervae-1.zarr"), KmerStore(workdir / "out-numpy-1.zarr")
    assert ours.n == theirs.n and list(ours.ids(0, 2000)) == list(theirs.ids(0, 2000))
    np.testing.assert_array_equal(ours.rows(0, 2000), theirs.rows(0, 2000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--one", nargs=4, metavar=("METHOD", "FASTA", "OUT", "THREADS"), help=argparse.SUPPRESS
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/kmervae-bench"))
    parser.add_argument("--genomes", type=Path, default=GENOMES)
    parser.add_argument("--vamb-python", default=DEFAULT_VAMB_PYTHON)
    parser.add_argument("--big-mbp", type=float, default=100)
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs per measurement; the best is shown (--readers: the median)",
    )
    parser.add_argument("--quick", action="store_true", help="skip the big file")
    parser.add_argument(
        "--readers", action="store_true", help="compare FASTA readers (kmervae, dnaio, needletail, pyfastx)"
    )
    args = parser.parse_args()
    if args.one:
        method, fasta, out, threads = args.one
        one(method, Path(fasta), Path(out), int(threads))
        return
    if args.readers:
        compare_readers(args)
        return

    inputs = make_inputs(args.workdir, args.genomes, args.big_mbp)
    if args.quick:
        inputs = dict(list(inputs.items())[:2])
    have_vamb = Path(args.vamb_python).exists()
    if not have_vamb:
        print(f"# no VAMB python at {args.vamb_python}: skipping VAMB (see this script's docstring)")
    plan = [
        ("kmervae", 1, sys.executable),
        ("kmervae", 2, sys.executable),
        ("kmervae-mem", 1, sys.executable),
        ("kmervae-mem", 2, sys.executable),
        ("numpy", 1, sys.executable),
    ]
    if have_vamb:
        plan.append(("vamb", 1, args.vamb_python))
    print(f"# {os.uname().nodename}, {os.cpu_count()} cores; load before: {os.getloadavg()}")
    header = (
        f"{'input':<30} {'method':<16} {'threads':>7} {'Mbp/s':>8} {'contigs/s':>10} {'peak RSS MB':>11}"
        f" {'Mbp/CPU-s':>10}"
    )
    print(header)
    print("-" * len(header))
    for label, path in inputs.items():
        bases = sum(len(line) - 1 for line in open(path, "rb") if not line.startswith(b">"))
        results = {}
        for method, threads, python in plan:
            runs = [measure(python, method, path, threads, args.workdir) for _ in range(args.repeats)]
            best = min(runs, key=lambda r: r["seconds"])
            best["rss_mb"] = max(r["rss_mb"] for r in runs)
            results[(method, threads)] = best
            name = {
                "kmervae": "kmervae 6..1",
                "kmervae-mem": "kmervae no store",
                "numpy": "numpy 6..1",
                "vamb": "vamb 4-mers",
            }[method]
            print(
                f"{label:<30} {name:<16} {threads:>7} {bases / best['seconds'] / 1e6:>8.1f} "
                f"{best['records'] / best['seconds']:>10,.0f} {best['rss_mb']:>11.0f} "
                f"{bases / best['cpu'] / 1e6:>10.1f}",
                flush=True,
            )
        check_numpy_equals_kmervae(args.workdir)
        if "repeated" not in label:
            k = measure(sys.executable, "kernel", path, 1, args.workdir)
            print(
                f"{'':<30} counting only (records in memory, 1 thread): kmervae kernel "
                f"{k['bases'] / k['kernel'] / 1e6:.0f} Mbp/CPU-s, numpy {k['bases'] / k['numpy'] / 1e6:.1f} "
                f"Mbp/CPU-s ({k['numpy'] / k['kernel']:.0f}x)"
            )
            print(
                f"{'':<30} stages alone (1 thread, CPU-s): parse {k['parse']:.3f}, count {k['kernel']:.3f}, "
                f"store write {k['store']:.3f} (compress + chunk files + IDs), sha256 {k['sha256']:.3f}"
            )
        base = results[("kmervae", 1)]["seconds"]
        fastest = min(results[("kmervae", t)]["seconds"] for t in (1, 2))
        ratios = [
            f"kmervae is {results[('numpy', 1)]['seconds'] / base:.1f}x (1 thread) and "
            f"{results[('numpy', 1)]['seconds'] / fastest:.1f}x (best) as fast as numpy"
        ]
        if have_vamb:
            vamb = results[("vamb", 1)]["seconds"]
            no_store = min(results[("kmervae-mem", t)]["seconds"] for t in (1, 2))
            ratios.append(
                f"Mbp/s vs VAMB: store {vamb / fastest:.2f}x, no store {vamb / no_store:.2f}x "
                "(best of 1/2 threads)"
            )
        print(f"{'':<30} " + "; ".join(ratios))
    print(f"# load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
