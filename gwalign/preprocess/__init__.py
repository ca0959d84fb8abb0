"""From an AnnData file to the per-cell representation the geometry is built on."""
