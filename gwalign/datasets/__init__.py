"""Data made by gwalign itself: the bundled RNA/ATAC example and synthetic test shapes."""
