"""The streamed GW engine: implicit plans, streamed operations, Sinkhorn and the GW solver."""
