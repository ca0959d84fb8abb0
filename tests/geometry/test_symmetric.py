"""The symmetric kNN graph: the device construction against SciPy's."""

import numpy as np
import torch


def test_the_device_sort_builds_the_same_symmetric_graph_as_scipy():
    """The GPU path's construction (run here on CPU tensors) gives SciPy's arrays, duplicates and
    one-way edges included."""
    from gwalign.geometry import symmetric
    from gwalign.geometry.knn import _nearest, _positive

    gen = np.random.default_rng(3)
    points = np.vstack([gen.normal(size=(300, 4)), gen.normal(size=(20, 4)) * 5.0])
    points[10] = points[11]          # a duplicate: a zero-length edge kept tiny
    dist, idx = _nearest(torch.as_tensor(points), 7, 2048, "exact")
    lengths, neighbours = _positive(dist), idx
    host = symmetric.symmetric_graph(lengths, neighbours, torch.device("cpu"))
    device = symmetric._on_device(lengths, neighbours, torch.device("cpu"))
    for name in ("indptr", "indices", "data"):
        assert np.array_equal(getattr(host, name), getattr(device, name)), name
    assert host.indices.dtype == device.indices.dtype and device.has_sorted_indices
    assert (host != host.T).nnz == 0
