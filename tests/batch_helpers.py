"""Helpers of the batch tests: manifests and checksums."""

import hashlib
from pathlib import Path

#: Settings that keep each pair to a few seconds on two CPU cores.
FAST_COLUMNS = {"device": "cpu", "figures": "false", "transfer_labels": "cell_type", "n_starts": "2", "threads": "1"}


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_manifest(path: Path, rows: list[dict[str, str]]) -> Path:
    """A TSV manifest with the union of the rows' columns (pair_id, source, target first)."""
    columns = ["pair_id", "source", "target"]
    columns += sorted({name for row in rows for name in row} - set(columns))
    lines = ["\t".join(columns)] + ["\t".join(row.get(name, "") for name in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path
