"""``gwalign batch``: many pairs from a manifest, one SLURM array task (or local worker) per row.

The steps: :mod:`~gwalign.batch.manifest` reads and checks the TSV manifest;
:mod:`~gwalign.batch.runner` runs one row under a :mod:`~gwalign.batch.lock` and records its
:mod:`~gwalign.batch.status` (``status.json``, written last); :mod:`~gwalign.batch.local` runs every
row on one machine, one worker per GPU; :mod:`~gwalign.batch.table` summarises an output root.
"""
