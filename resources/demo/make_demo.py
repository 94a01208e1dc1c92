"""Rebuild the demo genomes in this directory from the full genomes they were cut from.

Run once by the maintainers (users do not need it: the outputs are committed):

    python resources/demo/make_demo.py /path/to/genomes   # the team's shared/genomes

It keeps a contiguous slice of each large chromosome and whole small replicons, so the
demo stays under 3 MB; it writes gzip -9 files with mtime 0 (byte-reproducible) and
``provenance.tsv`` with accession, slice, length and GC % of every record written.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SLICE_BP = 1_500_000

#: output file, organism, sample, {source record id: (new id, replicon type, keep bp or None for whole)}
PLAN = [
    (
        "ecoli_mg1655.fa.gz",
        "Escherichia coli K-12 MG1655",
        "terrestrial",
        {"K-12-MG1655": ("K-12-MG1655", "chromosome", SLICE_BP)},
    ),
    (
        "saureus_col.fa.gz",
        "Staphylococcus aureus COL",
        "terrestrial",
        {"gi|57650036|ref|NC_002951.2|": ("NC_002951.2", "chromosome", SLICE_BP)},
    ),
    (
        "kpneumoniae_hs11286.fa.gz",
        "Klebsiella pneumoniae HS11286",
        "aquatic",
        {
            "CP003200.1": ("CP003200.1", "chromosome", SLICE_BP),
            **{f"CP0032{n}.1": (f"CP0032{n}.1", "plasmid", None) for n in range(23, 29)},
        },
    ),
    (
        "cdiphtheriae_nctc11397.fa.gz",
        "Corynebacterium diphtheriae NCTC11397",
        "aquatic",
        {"NZ_LN831026.1": ("NZ_LN831026.1", "chromosome", SLICE_BP)},
    ),
    (
        "lambda.fa.gz",
        "Enterobacteria phage lambda",
        "aquatic",
        {"gi|9626243|ref|NC_001416.1|": ("NC_001416.1", "phage", None)},
    ),
    (
        "kutzneria_sp744_scaffold.fa.gz",
        "Kutzneria sp. 744",
        "aquatic",
        {"KK037166.1": ("KK037166.1", "chromosome", None)},
    ),
]


def read_records(path: Path):
    header, parts = None, []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            line = line.rstrip("\r\n")
            if line.startswith(">"):
                if header is not None:
                    yield header, "".join(parts)
                header, parts = line[1:], []
            elif line:
                parts.append(line.strip())
    if header is not None:
        yield header, "".join(parts)


def main(source_dir: str) -> None:
    rows = [
        "file\tsample\torganism\trecord_id\tsource_header\treplicon_type\tslice\tbp\tsource_bp\tgc_percent"
    ]
    for name, organism, sample, records in PLAN:
        out = []
        for header, seq in read_records(Path(source_dir) / name):
            source_id, _, description = header.partition(" ")
            new_id, replicon, keep = records[source_id]
            piece = seq if keep is None else seq[:keep]
            gc = sum(piece.upper().count(b) for b in "GC") / max(len(piece), 1)
            where = "whole" if keep is None or keep >= len(seq) else f"1-{len(piece)}"
            note = "" if where == "whole" else f" [bases {where} of {len(seq)}]"
            desc = description or organism
            out.append(
                f">{new_id} {desc}{note}\n"
                + "".join(piece[i : i + 80] + "\n" for i in range(0, len(piece), 80))
            )
            rows.append(
                "\t".join(
                    [
                        name,
                        sample,
                        organism,
                        new_id,
                        header,
                        replicon,
                        where,
                        str(len(piece)),
                        str(len(seq)),
                        f"{100 * gc:.2f}",
                    ]
                )
            )
        with (
            open(HERE / name, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz,
        ):
            gz.write("".join(out).encode())
    (HERE / "provenance.tsv").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(HERE.parents[2] / "shared" / "genomes"))
