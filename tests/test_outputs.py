"""Writing outputs safely: only kmervae's own output of the same kind is replaced, never the
working directory; SIGTERM and SIGKILL leave no temporaries behind for good; concurrent
publishes of one path never show a reader a missing or partial output; file system
problems are one line and exit status 2."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from store_factory import make_store

from kmervae.io.atomic import _host, publish, temporary_sibling, zarr_group
from kmervae.errors import KmervaeError
from kmervae.kmers import Layout
from kmervae.io.store import KmerStore, StoreWriter

SRC = Path(__file__).resolve().parents[1] / "src"
FASTA = ">a desc\nACGTACGTAGCTAGCTAGCATCGATN\n>b\nGGGGCCCATATATAT\n"


def kmervae(*args, cwd, env=None, prefix=()):
    """Run the CLI as a user would; return (exit status, stderr lines that are not log lines)."""
    environment = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "kmervae", *map(str, args)],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc.returncode, [line for line in proc.stderr.splitlines() if " INFO " not in line]


def temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if ".tmp-" in p.name)


@pytest.fixture
def fasta(tmp_path) -> Path:
    path = tmp_path / "a.fa"
    path.write_text(FASTA)
    return path


def big_fasta(path: Path, records=60, length=1_000_000) -> Path:
    """Random sequence that takes about a second to count."""
    rng = np.random.default_rng(0)
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)
    with open(path, "wb") as fh:
        for i in range(records):
            fh.write(f">r{i}\n".encode() + bases[rng.integers(0, 4, length)].tobytes() + b"\n")
    return path


def test_a_foreign_directory_is_refused_and_kept(tmp_path, fasta):
    important = tmp_path / "x" / "important"
    important.mkdir(parents=True)
    (important / "thesis.txt").write_text("precious\n")
    status, err = kmervae("count", fasta, "-o", important, cwd=tmp_path)
    assert status == 2
    assert len(err) == 1 and err[0].startswith("kmervae: error: ") and "x/important" in err[0]
    assert "refusing to replace it" in err[0]
    assert (important / "thesis.txt").read_text() == "precious\n"
    assert os.listdir(important) == ["thesis.txt"] and temporaries(tmp_path) == []


def test_a_store_of_another_kind_is_refused_but_one_of_the_same_kind_replaced(tmp_path, fasta):
    other = zarr.open_group(str(tmp_path / "emb.zarr"), mode="w", zarr_format=3)
    other.attrs["format"] = "kmervae-embeddings"
    status, err = kmervae("count", fasta, "-o", tmp_path / "emb.zarr", cwd=tmp_path)
    assert status == 2 and len(err) == 1 and "is not a kmervae-kmers store" in err[0]
    assert dict(zarr.open_group(str(tmp_path / "emb.zarr"), mode="r").attrs) == {
        "format": "kmervae-embeddings"
    }
    make_store(tmp_path / "s.zarr", 5)
    status, err = kmervae("count", fasta, "-o", tmp_path / "s.zarr", "--k", "2..1", cwd=tmp_path)
    assert status == 0 and err == []
    assert list(KmerStore(tmp_path / "s.zarr").ids()) == ["a", "b"]
    assert temporaries(tmp_path) == []


def test_an_empty_directory_is_replaced(tmp_path, fasta):
    (tmp_path / "s.zarr").mkdir()
    status, _ = kmervae("count", fasta, "-o", "s.zarr", cwd=tmp_path)
    assert status == 0 and KmerStore(tmp_path / "s.zarr").n == 2


@pytest.mark.parametrize("output", [".", "../inner", ".."])
def test_the_working_directory_and_its_parents_are_refused(tmp_path, fasta, output):
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "keep.txt").write_text("kept\n")
    status, err = kmervae("count", fasta, "-o", output, cwd=inner)
    assert status == 2 and len(err) == 1
    assert (
        err[0]
        == f"kmervae: error: {output}: is the working directory or one of its parents; choose another output"
    )
    assert (inner / "keep.txt").read_text() == "kept\n" and fasta.read_text() == FASTA
    assert temporaries(tmp_path) == []


def test_an_output_that_is_an_input_is_one_error(tmp_path, fasta):
    status, err = kmervae("count", fasta, "-o", "a.fa", cwd=tmp_path)
    assert status == 2
    assert err == ["kmervae: error: a.fa: is an input of this command too; choose another output path"]
    assert fasta.read_text() == FASTA and temporaries(tmp_path) == []
    make_store(tmp_path / "s.zarr", 5)
    status, err = kmervae("select", "s.zarr", "--min-length", "1", "-o", "./s.zarr", cwd=tmp_path)
    assert status == 2 and err == [
        "kmervae: error: ./s.zarr: is an input of this command too; choose another output path"
    ]
    assert KmerStore(tmp_path / "s.zarr").n == 5


def test_a_file_output_refuses_a_directory(tmp_path):
    make_store(tmp_path / "s.zarr", 5)
    (tmp_path / "out.npy").mkdir()
    (tmp_path / "out.npy" / "notes.txt").write_text("mine\n")
    status, err = kmervae("export-legacy", "s.zarr", "-o", "out.npy", "--ids", "ids.txt", cwd=tmp_path)
    assert status == 2 and len(err) == 1
    assert "out.npy: exists and is a directory, not a file; refusing to replace it" in err[0]
    assert (tmp_path / "out.npy" / "notes.txt").read_text() == "mine\n"
    assert not (tmp_path / "ids.txt").exists() and temporaries(tmp_path) == []


def test_training_refuses_a_foreign_directory_before_training(tmp_path):
    make_store(tmp_path / "ds.zarr", 20, extra_arrays={"split": np.zeros(20, np.int8)})
    important = tmp_path / "important"
    important.mkdir()
    (important / "thesis.txt").write_text("precious\n")
    for extra in ((), ("--work-dir", "work")):
        status, err = kmervae("train", "--data", "ds.zarr", "-o", "important", *extra, cwd=tmp_path)
        assert status == 2 and len(err) == 1
        assert "important: exists and is a directory that is not a kmervae model directory" in err[0]
        assert os.listdir(important) == ["thesis.txt"] and not (tmp_path / "work").exists()


def test_training_with_an_empty_split_leaves_no_model_directory(tmp_path):
    n = 40
    split = np.where(np.arange(n) % 2 == 0, 0, 2).astype(np.int8)  # no validation rows
    make_store(tmp_path / "ds.zarr", n, layout=Layout.parse("3..1"), extra_arrays={"split": split})
    tiny = ["input.ks=[3, 2, 1]", "model.hidden=[8]", "model.latent=2", "training.epochs=1"]
    sets = [a for s in tiny for a in ("--set", s)]
    status, err = kmervae(
        "train", "--data", "ds.zarr", "-o", "results/m", "--device", "cpu", *sets, cwd=tmp_path
    )
    assert status == 2 and len(err) == 1 and "the validation split is empty" in err[0]
    assert os.listdir(tmp_path / "results") == []
    status, err = kmervae(
        "train", "--data", "ds.zarr", "-o", "m2", "--work-dir", "w", "--device", "cpu", *sets, cwd=tmp_path
    )
    assert status == 2 and "the validation split is empty" in err[0]
    assert sorted(os.listdir(tmp_path)) == ["ds.zarr", "results"]


def _wait_for_temporary(proc, directory: Path) -> None:
    while not temporaries(directory):
        assert proc.poll() is None, "the count ended before its temporary output appeared"
        time.sleep(0.005)


def test_sigterm_removes_the_unfinished_output_and_exits_143(tmp_path):
    big_fasta(tmp_path / "big.fa")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kmervae", "count", "big.fa", "-o", "big.zarr"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_temporary(proc, tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143
    assert [line for line in stderr.splitlines() if " INFO " not in line] == [
        "kmervae: terminated (SIGTERM); unfinished outputs were removed"
    ]
    assert sorted(os.listdir(tmp_path)) == ["big.fa"]


def test_a_killed_writers_temporary_is_removed_by_the_next_run(tmp_path, fasta):
    big_fasta(tmp_path / "big.fa")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kmervae", "count", "big.fa", "-o", "s.zarr"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        stderr=subprocess.DEVNULL,
    )
    _wait_for_temporary(proc, tmp_path)
    proc.kill()
    proc.wait()
    (left,) = temporaries(tmp_path)
    assert left.startswith(f".s.zarr.tmp-{proc.pid}-")
    # temporaries of a live writer, of another host and of another output are not touched
    live = temporary_sibling(tmp_path / "s.zarr")
    live.mkdir()
    elsewhere = tmp_path / f".s.zarr.tmp-{proc.pid}-another-host-0123abcd"
    elsewhere.mkdir()
    unrelated = tmp_path / f".t.zarr.tmp-{proc.pid}-{_host()}-0123abcd"
    unrelated.mkdir()
    status, _ = kmervae("count", fasta, "-o", "s.zarr", cwd=tmp_path)
    assert status == 0
    assert temporaries(tmp_path) == sorted([live.name, elsewhere.name, unrelated.name])


def test_a_failed_publish_removes_its_temporary_and_keeps_what_appeared(tmp_path):
    layout = Layout.parse("2..1")
    writer = StoreWriter(tmp_path / "s.zarr", layout)
    writer.append(["a"], [3], np.ones((1, layout.width)))
    (tmp_path / "s.zarr").mkdir()  # someone else's directory appears meanwhile
    (tmp_path / "s.zarr" / "notes.txt").write_text("mine\n")
    with pytest.raises(KmervaeError, match=r"s.zarr: exists and is a directory that is not a kmervae-kmers"):
        with writer:
            pass
    assert os.listdir(tmp_path / "s.zarr") == ["notes.txt"] and temporaries(tmp_path) == []


KIND = zarr_group("kmervae-kmers")


def _publisher(out: Path, rounds: int, errors) -> None:
    for i in range(rounds):
        tmp = temporary_sibling(out)
        (tmp / "id").mkdir(parents=True)
        (tmp / "id" / "zarr.json").write_text("{}")
        (tmp / "zarr.json").write_text(json.dumps({"attributes": {"format": "kmervae-kmers", "n": i}}))
        try:
            publish(tmp, out, KIND)
        except Exception as exc:  # counted: the test asserts there are none
            errors.put(repr(exc))
            shutil.rmtree(tmp, ignore_errors=True)


def _reader(out: Path, stop, results) -> None:
    complete = incomplete = 0
    while not stop.is_set():
        try:
            meta = json.loads((out / "zarr.json").read_text())
            assert meta["attributes"]["format"] == "kmervae-kmers"
            complete += 1
        except (OSError, ValueError, KeyError, AssertionError):
            incomplete += 1
    results.put((complete, incomplete))


def test_concurrent_publishes_of_one_path_always_show_a_whole_output(tmp_path):
    out = tmp_path / "s.zarr"
    ctx = mp.get_context("fork")
    errors, results, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    _publisher(out, 1, errors)
    reader = ctx.Process(target=_reader, args=(out, stop, results))
    reader.start()
    writers = [ctx.Process(target=_publisher, args=(out, 50, errors)) for _ in range(2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=120)
    stop.set()
    complete, incomplete = results.get(timeout=60)
    reader.join(timeout=60)
    assert [w.exitcode for w in writers] == [0, 0]
    assert errors.empty()
    assert complete > 0 and incomplete == 0
    assert os.listdir(tmp_path) == ["s.zarr"]


def _without_dac_override() -> tuple[str, ...]:
    """A command prefix under which the permission bits of directories apply to this user."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be enforced")
    drop = "-dac_override,-dac_read_search"
    return (setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}", "--")


def test_an_unwritable_or_impossible_output_directory_is_one_line(tmp_path, fasta):
    prefix = _without_dac_override()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        status, err = kmervae("count", fasta, "-o", "locked/s.zarr", cwd=tmp_path, prefix=prefix)
        assert status == 2
        assert err == ["kmervae: error: locked/s.zarr: cannot write here: locked is not writable"]
        status, err = kmervae("count", fasta, "-o", "locked/sub/s.zarr", cwd=tmp_path, prefix=prefix)
        assert status == 2
        assert err == [
            "kmervae: error: locked/sub/s.zarr: cannot create its directory locked/sub (Permission denied)"
        ]
        assert os.listdir(locked) == []
    finally:
        locked.chmod(0o755)
    status, err = kmervae("count", fasta, "-o", "a.fa/s.zarr", cwd=tmp_path)
    assert status == 2 and err == ["kmervae: error: a.fa/s.zarr: cannot write here: a.fa is not a directory"]


def test_numba_caches_somewhere_writable_when_the_package_and_home_are_not(tmp_path, fasta):
    """An installed package (no writable __pycache__) and a HOME that is a file: numba has no
    cache location of its own, so kmervae points it under the temporary directory."""
    package = tmp_path / "site" / "kmervae"
    shutil.copytree(SRC / "kmervae", package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "__pycache__").write_text("")  # a file: no cache directory can be made there
    (tmp_path / "home").write_text("")
    (tmp_path / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path / "tmp"), PYTHONPATH=str(tmp_path / "site"))
    proc = subprocess.run(
        [sys.executable, "-m", "kmervae", "count", fasta, "-o", "s.zarr"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert KmerStore(tmp_path / "s.zarr").n == 2
    (cache,) = (tmp_path / "tmp").iterdir()
    assert cache.name.startswith("kmervae-numba-") and any(cache.rglob("*.nbi"))


def test_an_unreadable_input_is_one_line(tmp_path, fasta):
    prefix = _without_dac_override()
    fasta.chmod(0)
    try:
        status, err = kmervae("count", "a.fa", "-o", "s.zarr", cwd=tmp_path, prefix=prefix)
    finally:
        fasta.chmod(0o644)
    assert status == 2 and err == ["kmervae: error: a.fa: Permission denied"]
    assert sorted(os.listdir(tmp_path)) == ["a.fa"]
