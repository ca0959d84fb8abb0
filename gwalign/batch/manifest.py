"""The batch manifest: a TSV file with one pair per row.

Columns (a header line names them; ``#`` starts a comment line):

``pair_id``
    Names the pair's output folder ``OUT/<pair_id>/``: letters, digits, ``.``, ``_`` and ``-``.
``source``, ``target``
    The two .h5ad files; relative paths are read from the manifest's folder.
``config`` (optional)
    A TOML preset for this row (relative to the manifest's folder).
any ``gwalign run`` option (optional)
    Named as the option or setting (``transfer_labels`` or ``transfer-labels``, ``k``, ``device``,
    ``rep_source``, ...); an empty cell leaves it unset. Values are read as in ``--set``; several
    labels to transfer are separated by commas.

A row's settings are, from weakest to strongest: the batch's ``--config``, the row's ``config``,
the batch's ``--set``, the row's option columns.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from gwalign.config import RunConfig, load_toml
from gwalign.config.fields import parse_value
from gwalign.io.h5ad import InputError

REQUIRED = ("pair_id", "source", "target")
PAIR_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
#: Columns whose cells hold several values separated by commas.
LIST_COLUMNS = {"transfer_labels"}


@dataclass
class Pair:
    """One manifest row, resolved: its files (absolute), its settings, or why it cannot run.

    ``number`` is the row's position among the manifest's pairs (1-based): the array task id of a
    job that runs one pair per task.
    """

    number: int
    line: int
    pair_id: str
    source: Path
    target: Path
    config: Optional[RunConfig] = None
    options: dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None


def read_manifest(path: Path, base: Optional[dict[str, Any]] = None,
                  overrides: Optional[dict[str, Any]] = None) -> list[Pair]:
    """Every pair of the manifest at ``path``, each with its :class:`RunConfig` or its ``error``.

    Parameters
    ----------
    path
        The TSV manifest.
    base
        Settings of the batch's ``--config`` (weakest).
    overrides
        Settings of the batch's ``--set`` (above a row's config, below its option columns).

    Raises
    ------
    InputError
        When the manifest as a whole cannot be used (unreadable, no header, a required column
        missing, duplicate or invalid pair ids). A problem of one row is that row's ``error``.
    """
    path = Path(path)
    rows = _rows(path)
    pairs = [_pair(path, number, line, row, base or {}, overrides or {})
             for number, (line, row) in enumerate(rows, start=1)]
    seen: dict[str, int] = {}
    for pair in pairs:
        if pair.pair_id in seen:
            raise InputError(f"{path}: line {pair.line}: pair_id {pair.pair_id!r} also on line {seen[pair.pair_id]}")
        seen[pair.pair_id] = pair.line
    if not pairs:
        raise InputError(f"{path}: no pairs (a header line and one row per pair are expected)")
    return pairs


def _rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, cells by column) of every non-empty, non-comment line after the header."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such manifest") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read the manifest ({err})") from None
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise InputError(f"{path}: empty manifest (expected a header: pair_id, source, target, ...)")
    header = [name.strip().replace("-", "_") for name in next(csv.reader([lines[0][1]], delimiter="\t"))]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise InputError(f"{path}: line {lines[0][0]}: header lacks column(s) {', '.join(missing)} "
                         f"(found {', '.join(header)}; columns are separated by tabs)")
    rows = []
    for number, line in lines[1:]:
        cells = next(csv.reader([line], delimiter="\t"))
        if len(cells) > len(header):
            raise InputError(f"{path}: line {number}: {len(cells)} cells, the header has {len(header)}")
        rows.append((number, {name: cell.strip() for name, cell in zip(header, cells)}))
    return rows


def _pair(manifest: Path, number: int, line: int, row: dict[str, str], base: dict[str, Any],
          overrides: dict[str, Any]) -> Pair:
    """A row as a :class:`Pair`; a bad setting or a missing file becomes its ``error``."""
    where = f"{manifest}: line {line}"
    pair_id = row.get("pair_id", "")
    if not PAIR_ID.match(pair_id):
        raise InputError(f"{where}: pair_id {pair_id!r} is not a folder name (letters, digits, '.', '_', '-')")
    folder = manifest.resolve().parent
    files = [folder / Path(row.get(name, "")).expanduser() for name in ("source", "target")]
    pair = Pair(number, line, pair_id, files[0], files[1])
    options = {name: _cell_value(name, text) for name, text in row.items()
               if name not in (*REQUIRED, "config") and text != ""}
    try:
        values = dict(base)
        if row.get("config"):
            values.update(load_toml(folder / Path(row["config"]).expanduser()))
        values.update(overrides)
        values.update(options)
        pair.config, pair.options = RunConfig.from_flat(values, source=where), options
    except ValueError as err:
        message = str(err)
        pair.error = message if message.startswith(where) else f"{where}: {message}"
        return pair
    for name, file in zip(("source", "target"), files):
        if not row.get(name):
            pair.error = f"{where}: no {name} file given"
        elif not file.is_file():
            pair.error = f"{file}: no such file ({name} of pair {pair_id!r}, {where})"
        if pair.error:
            break
    return pair


def _cell_value(name: str, text: str) -> Any:
    if name in LIST_COLUMNS:
        return [item.strip() for item in text.split(",") if item.strip()]
    return parse_value(text)


def rows_of_task(n_pairs: int, task_id: int, tasks_per_job: int = 1) -> range:
    """Pair numbers (1-based) that array task ``task_id`` runs when each task runs
    ``tasks_per_job`` consecutive pairs.

    Raises
    ------
    InputError
        When the task id is below 1 or past the manifest's last pair.
    """
    if task_id < 1 or tasks_per_job < 1:
        raise InputError(f"task id {task_id} and tasks per job {tasks_per_job} must be at least 1")
    first = (task_id - 1) * tasks_per_job + 1
    if first > n_pairs:
        raise InputError(f"task id {task_id} is past the manifest's {n_pairs} pair(s) "
                         f"({tasks_per_job} per task: ids 1-{task_of(n_pairs, tasks_per_job)})")
    return range(first, min(first + tasks_per_job, n_pairs + 1))


def task_of(number: int, tasks_per_job: int = 1) -> int:
    """The array task id that runs pair ``number`` (1-based)."""
    return (number - 1) // tasks_per_job + 1
