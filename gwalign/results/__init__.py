"""From an alignment to what a user keeps: joint embedding, transferred labels, AnnData keys, report."""
