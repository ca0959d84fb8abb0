"""The geometry of each data set: kNN graphs, geodesic distances and their low-rank factors."""
