"""The output contract: `gwalign run` writes exactly the files and keys that docs/outputs.md lists.

docs/outputs.md marks each of its tables with an HTML comment (``<!-- contract: NAME -->``); this
test parses those tables and compares them with a real run on a small example pair. The run uses
``--transfer-labels cell_type`` and ``--no-figures``, so every documented row applies except those
written only with figures ("unless `--no-figures`"), which must then be absent.
"""

import json
import re
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from gwalign.cli import app

DOC = Path(__file__).resolve().parent.parent / "docs" / "outputs.md"
LABEL = "cell_type"
CELLS = 200   # per file: small enough for a short run, large enough for every default stage
SLOTS = ("obs", "obsm", "obsp", "var", "varm", "varp", "layers", "uns")
runner = CliRunner()


def contract_tables(text: str) -> dict[str, list[dict[str, str]]]:
    """Each ``<!-- contract: NAME -->`` table as a list of rows (column header -> cell text)."""
    tables = {}
    for match in re.finditer(r"<!-- contract: (\w+) -->[ \t]*\n((?:[ \t]*\|.*(?:\n|$))+)", text):
        lines = match.group(2).strip().splitlines()
        split = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
        header = split[0]
        tables[match.group(1)] = [dict(zip(header, cells)) for cells in split[2:]]
    return tables


def documented(rows: list[dict[str, str]], figures: bool = False) -> dict[str, dict[str, str]]:
    """Rows by their key (the first column's code span, ``<label>`` filled in), leaving out the rows
    written only with figures when the run had none."""
    out = {}
    for row in rows:
        first = next(iter(row.values()))
        key = re.match(r"`([^`]+)`", first).group(1).replace("<label>", LABEL)
        if not figures and "--no-figures" in row.get("written", ""):
            continue
        out[key] = row
    return out


def slot_key(key: str) -> tuple[str, str]:
    """``obsm["X_gw"]`` -> ("obsm", "X_gw")."""
    match = re.fullmatch(r'(\w+)\["([^"]+)"\]', key)
    assert match, f"docs/outputs.md: {key!r} is not of the form slot[\"key\"]"
    assert match.group(1) in SLOTS, f"docs/outputs.md: unknown AnnData slot in {key!r}"
    return match.group(1), match.group(2)


def keys_of(adata) -> set[tuple[str, str]]:
    return {(slot, str(key)) for slot in SLOTS for key in getattr(adata, slot).keys()}


def dtype_of(value) -> str:
    return str(value.dtype)


def check_row(adata, slot: str, key: str, row: dict[str, str], sizes: dict[str, int]) -> None:
    """The documented type, dtype and shape of one key."""
    value = getattr(adata, slot)[key]
    assert dtype_of(value) == row["dtype"], f"{slot}[{key!r}]: dtype {dtype_of(value)}, documented {row['dtype']}"
    if "csr_matrix" in row["type"]:
        assert sp.issparse(value) and value.format == "csr", f"{slot}[{key!r}] is not CSR"
    elif "ndarray" in row["type"]:
        assert isinstance(value, np.ndarray), f"{slot}[{key!r}] is {type(value).__name__}"
    shape = tuple(eval(part, {}, dict(sizes)) for part in row["shape"].strip("()").split(",") if part.strip())
    assert tuple(value.shape) == shape, f"{slot}[{key!r}]: shape {value.shape}, documented {row['shape']}"


@pytest.fixture(scope="module")
def tables():
    found = contract_tables(DOC.read_text())
    assert set(found) == {"files", "side", "uns", "joint", "report"}, f"contract tables in {DOC}: {sorted(found)}"
    return found


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data = tmp_path_factory.mktemp("example")
    result = runner.invoke(app, ["example", "--out-dir", str(data), "--cells", str(CELLS)])
    assert result.exit_code == 0, result.output
    out = tmp_path_factory.mktemp("run")
    result = runner.invoke(app, ["run", str(data / "rna.h5ad"), str(data / "atac.h5ad"), "--out-dir", str(out),
                                 "--transfer-labels", LABEL, "--device", "cpu", "--no-figures", "--quiet"])
    assert result.exit_code == 0, result.output
    return data, out


def test_files(tables, run):
    _, out = run
    expected = {name.replace("A.", "rna.").replace("B.", "atac.") for name in documented(tables["files"])}
    assert {path.name for path in out.iterdir()} == expected


def test_keys_added_to_each_file(tables, run):
    data, out = run
    rows = {slot_key(key): row for key, row in documented(tables["side"]).items()}
    for own, other in (("rna", "atac"), ("atac", "rna")):
        before = ad.read_h5ad(data / f"{own}.h5ad")
        after = ad.read_h5ad(out / f"{own}.gwalign.h5ad")
        partner = ad.read_h5ad(out / f"{other}.gwalign.h5ad")
        assert keys_of(before) <= keys_of(after), f"{own}: input keys removed"
        assert keys_of(after) - keys_of(before) == set(rows), f"{own}: written keys differ from docs/outputs.md"
        sizes = {"n": after.n_obs, "m": partner.n_obs, "d": after.obsm["X_gw"].shape[1]}
        for (slot, key), row in rows.items():
            if row["dtype"] not in ("", "(mixed)"):
                check_row(after, slot, key, row, sizes)


def test_uns_gwalign(tables, run):
    _, out = run
    expected = set(documented(tables["uns"]))
    for name in ("rna", "atac"):
        info = ad.read_h5ad(out / f"{name}.gwalign.h5ad").uns["gwalign"]
        assert set(info) == expected, f"{name}: uns['gwalign'] keys differ from docs/outputs.md"


def test_joint_file(tables, run):
    _, out = run
    rows = {slot_key(key): row for key, row in documented(tables["joint"]).items()}
    joint = ad.read_h5ad(out / "joint.gwalign.h5ad")
    rna, atac = (ad.read_h5ad(out / f"{name}.gwalign.h5ad") for name in ("rna", "atac"))
    assert keys_of(joint) == set(rows)
    sizes = {"n": rna.n_obs, "m": atac.n_obs, "d": joint.obsm["X_gw"].shape[1]}
    for (slot, key), row in rows.items():
        check_row(joint, slot, key, row, sizes)


def test_report(tables, run):
    _, out = run
    report = json.loads((out / "report.json").read_text())
    assert set(report) == set(documented(tables["report"]))
