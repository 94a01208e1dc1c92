"""The reference FASTA reading the tests compare kmervae's parser and counter against."""


def naive_parse(text: str) -> list[tuple[str, str]]:
    """Line-by-line reference parser: the obvious reading of the FASTA rules.

    (ID = first word of the header, `;`/`#` lines and blank lines skipped, whitespace
    inside sequence lines dropped.)
    """
    records = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(">"):
            records.append([line[1:].split()[0], ""])
        elif line and not line.startswith((";", "#")):
            records[-1][1] += "".join(line.split())
    return [tuple(r) for r in records]
