"""kNN graphs, component stitching and distance providers."""


import numpy as np
import pytest
import torch
from scipy.sparse.csgraph import dijkstra

import gwalign
from gwalign.geometry.distances import DijkstraDistances, LandmarkDistances, PrecomputedDistances
from gwalign.geometry.knn import knn_graph
from gwalign.datasets.synthetic import spiral_and_roll


def test_knn_graph_is_symmetric_and_exact(rng):
    x = rng.normal(size=(300, 5))
    graph = knn_graph(torch.tensor(x), k=6)
    m = graph.matrix
    assert (abs(m - m.T) > 0).nnz == 0
    d = np.linalg.norm(x[:, None] - x[None], axis=2)
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1)[:, :6]
    for i in range(0, 300, 17):
        row = set(m[i].indices)
        assert set(nearest[i]) <= row
        assert np.allclose(m[i, nearest[i]].toarray().ravel(), d[i, nearest[i]])
    assert graph.n_components == 1 and graph.n_bridges == 0


def test_stitching_hundreds_of_components_connects_them_with_a_forest(rng):
    centres = rng.uniform(-1000, 1000, size=(300, 3))
    x = np.concatenate([c + rng.normal(size=(15, 3)) for c in centres])
    graph = knn_graph(torch.tensor(x), k=5)
    # A 15-point blob's own kNN graph can split (an outlying clique of k+1 points), so there are
    # at least 300 components; stitching adds exactly one bridge per component but one.
    assert graph.n_components >= 300
    assert graph.n_bridges == graph.n_components - 1
    assert np.isfinite(dijkstra(graph.matrix, indices=[0])).all()


def test_two_clusters_bridge_is_the_closest_pair(rng):
    a = rng.normal(size=(60, 2))
    b = rng.normal(size=(40, 2)) + np.array([50.0, 0.0])
    x = np.concatenate([a, b])
    graph = knn_graph(torch.tensor(x), k=4)
    # A blob's own kNN graph can split (an outlying clique of k+1 points): count its parts.
    # The blobs are far apart, so the union's kNN graph is the union of theirs.
    parts = knn_graph(torch.tensor(a), k=4).n_components + knn_graph(torch.tensor(b), k=4).n_components
    assert graph.n_components == parts and graph.n_bridges == parts - 1
    cross = np.linalg.norm(a[:, None] - b[None], axis=2)
    i, j = np.unravel_index(np.argmin(cross), cross.shape)
    assert graph.matrix[i, 60 + j] == pytest.approx(cross[i, j])


def test_duplicate_points_stay_connected(rng):
    x = np.repeat(rng.normal(size=(20, 3)), 4, axis=0)
    graph = knn_graph(torch.tensor(x), k=3)
    assert np.isfinite(dijkstra(graph.matrix, indices=[0])).all()


def test_providers_agree_and_are_normalised(rng):
    xs, _, _, _ = spiral_and_roll(400, 10, seed=int(rng.integers(1 << 30)))
    graph = knn_graph(torch.tensor(xs), k=8)
    exact = dijkstra(graph.matrix, directed=False)
    pre = PrecomputedDistances.from_graph(graph, torch.device("cpu"), torch.float64)
    dij = DijkstraDistances(graph, torch.device("cpu"), torch.float64, cache_rows=5)
    idx = rng.integers(0, 400, size=12)
    assert np.allclose(pre.columns(idx).numpy() * pre.scale, exact[:, idx])
    assert np.allclose(dij.columns(idx).numpy() * dij.scale, exact[:, idx], rtol=1e-6)
    assert pre.dense().mean().item() == pytest.approx(1.0)
    assert dij.scale == pytest.approx(pre.scale, rel=0.2)


@pytest.mark.parametrize("choice", ["mixed", "farthest", "uniform"])
@pytest.mark.parametrize("euclidean_landmarks", [False, True])
def test_landmark_distances_approximate_geodesics_on_a_flat_manifold(rng, euclidean_landmarks, choice):
    _, _, xt, _ = spiral_and_roll(10, 1500, seed=int(rng.integers(1 << 30)))
    graph = knn_graph(torch.tensor(xt), k=10)
    exact = dijkstra(graph.matrix, directed=False)
    land = LandmarkDistances(graph, torch.device("cpu"), torch.float64, n_landmarks=64, dim=8,
                             points=torch.tensor(xt) if euclidean_landmarks else None, choice=choice)
    assert len(np.unique(land.landmarks)) == 64
    # The kept table holds the landmarks' exact geodesic rows, whichever way they were chosen.
    assert np.allclose(land.table, exact[land.landmarks], rtol=1e-6)
    idx = rng.integers(0, 1500, size=20)
    approx = land.columns(idx).numpy() * land.scale
    rel_err = np.linalg.norm(approx - exact[:, idx]) / np.linalg.norm(exact[:, idx])
    assert rel_err < 0.1


def test_mixed_landmarks_cover_a_remote_group_and_the_dense_interior(rng):
    from gwalign.geometry.landmarks import choose_landmarks

    big = rng.normal(size=(1000, 3))
    remote = 50.0 + 0.1 * rng.normal(size=(8, 3))
    points = torch.tensor(np.concatenate([big, remote]))
    radius = np.linalg.norm(big, axis=1)
    seed = int(rng.integers(1 << 30))
    chosen = {c: choose_landmarks(points, 40, seed, c) for c in ("mixed", "farthest", "uniform")}
    for landmarks in chosen.values():
        assert len(np.unique(landmarks)) == 40 and landmarks.min() >= 0 and landmarks.max() < 1008
    # Farthest points find the remote group but crowd the big group's edge ...
    assert (chosen["farthest"] >= 1000).any()
    far_in_big = chosen["farthest"][chosen["farthest"] < 1000]
    assert np.median(radius[far_in_big]) > np.quantile(radius, 0.9)
    # ... the mixture keeps the remote group and puts its uniform half where the cells are.
    assert (chosen["mixed"] >= 1000).any()
    uniform_half = chosen["mixed"][20:]
    assert np.median(radius[uniform_half[uniform_half < 1000]]) < np.quantile(radius, 0.75)


def test_mixed_landmarks_fit_clustered_geodesics_better_than_farthest_points(rng):
    """Nyström factors (what low-rank GW uses) of a clustered kNN geodesic matrix, against the
    exact matrix: mixed landmarks fit it better than farthest points (three fresh draws)."""
    from gwalign.geometry.landmarks import choose_landmarks
    from gwalign.geometry.factors import factor_nystrom

    errors = {"mixed": 0.0, "farthest": 0.0}
    for _ in range(3):
        sizes = [600, 300, 150, 80, 40, 20]
        centres = rng.normal(scale=4.0, size=(len(sizes), 10))
        x = np.concatenate([c + 0.7 * rng.standard_t(3, size=(size, 10)) for c, size in zip(centres, sizes)])
        points = torch.tensor(x)
        exact = dijkstra(knn_graph(points, k=10).matrix, directed=False)
        scale = exact.mean()
        seed = int(rng.integers(1 << 30))
        for choice in errors:
            landmarks = choose_landmarks(points, 64, seed, choice)
            f = factor_nystrom(exact[landmarks], landmarks, scale, 16, torch.device("cpu"), torch.float64)
            approx = ((f.phi * f.lam) @ f.phi.T).numpy()
            errors[choice] += np.linalg.norm(approx - exact / scale) / np.linalg.norm(exact / scale)
    assert errors["mixed"] < errors["farthest"]


def test_landmark_choice_is_validated(rng):
    from gwalign.geometry.landmarks import choose_landmarks

    with pytest.raises(ValueError, match="landmark choice"):
        choose_landmarks(torch.tensor(rng.normal(size=(50, 2))), 5, 0, "kmeans")
    with pytest.raises(ValueError, match="landmark_choice"):
        gwalign.GWConfig(landmark_choice="kmeans")


def test_parallel_shortest_paths_equal_sequential(rng, monkeypatch):
    import gwalign.geometry.shortest_paths as distances

    xs, _, _, _ = spiral_and_roll(1200, 10, seed=int(rng.integers(1 << 30)))
    graph = knn_graph(torch.tensor(xs), k=6).matrix
    sources = rng.choice(1200, size=7, replace=False)
    monkeypatch.setattr(distances, "PARALLEL_MIN_WORK", 0)
    parallel = distances.shortest_paths(graph, sources, workers=3)
    assert np.array_equal(parallel, dijkstra(graph, directed=False, indices=sources))
    # Two graphs in one pool: each table belongs to its own graph.
    xt = spiral_and_roll(10, 900, seed=int(rng.integers(1 << 30)))[2]
    other = knn_graph(torch.tensor(xt), k=6).matrix
    other_sources = rng.choice(900, size=5, replace=False)
    both = distances.shortest_paths_many([(graph, sources), (other, other_sources)], workers=4)
    assert np.array_equal(both[0], parallel)
    assert np.array_equal(both[1], dijkstra(other, directed=False, indices=other_sources))


def test_farthest_points_match_a_brute_force_greedy(rng):
    from gwalign.geometry.landmarks import farthest_points

    x = rng.normal(size=(300, 5))
    got = farthest_points(torch.tensor(x), 12, seed=3)
    chosen = [int(got[0])]
    nearest = ((x - x[chosen[0]]) ** 2).sum(1)
    for _ in range(11):
        chosen.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, ((x - x[chosen[-1]]) ** 2).sum(1))
    assert got.tolist() == chosen


def test_parallel_paths_fall_back_to_disk_when_shared_memory_is_small(rng, monkeypatch):
    import collections

    import gwalign.geometry.shortest_paths as paths

    xs = spiral_and_roll(600, 10, seed=int(rng.integers(1 << 30)))[0]
    graph = knn_graph(torch.tensor(xs), k=6).matrix
    sources = rng.choice(600, size=6, replace=False)
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(paths.shutil, "disk_usage", lambda path: usage(1 << 20, 1 << 20, 0))
    monkeypatch.setattr(paths, "PARALLEL_MIN_WORK", 0)
    assert paths._scratch_dir([(graph, sources)]) is None
    table = paths.shortest_paths(graph, sources, workers=2)
    assert np.array_equal(table, dijkstra(graph, directed=False, indices=sources))


def _paths_in_child(args):
    import gwalign.geometry.shortest_paths as paths

    graph, sources = args
    paths.PARALLEL_MIN_WORK = 0
    return paths.shortest_paths(graph, sources, workers=2)


def test_parallel_paths_work_in_forked_and_daemonic_children(rng, monkeypatch):
    """A child forked after the parent made its worker pool, and a daemonic pool worker (which may
    not fork), both get correct tables instead of hanging on the parent's pool or failing."""
    import multiprocessing

    import gwalign.geometry.shortest_paths as paths

    xs = spiral_and_roll(500, 10, seed=int(rng.integers(1 << 30)))[0]
    graph = knn_graph(torch.tensor(xs), k=6).matrix
    sources = rng.choice(500, size=4, replace=False)
    monkeypatch.setattr(paths, "PARALLEL_MIN_WORK", 0)
    expected = dijkstra(graph, directed=False, indices=sources)
    assert np.array_equal(paths.shortest_paths(graph, sources, workers=2), expected)   # parent's pool exists
    with multiprocessing.get_context("fork").Pool(1) as pool:                          # daemonic child
        got = pool.apply_async(_paths_in_child, ((graph, sources),)).get(timeout=120)
    assert np.array_equal(got, expected)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=lambda: queue.put(_paths_in_child((graph, sources))))   # non-daemonic
    child.start()
    got = queue.get(timeout=120)
    child.join(timeout=60)
    assert np.array_equal(got, expected)


def test_cpu_search_is_exact_with_its_distances_sorted(rng):
    from gwalign.geometry.knn import cpu_topk

    train = rng.normal(size=(500, 12)) + 100.0   # far from the origin: the search centres the points
    query = np.concatenate([rng.normal(size=(40, 12)) + 100.0, train[:5]])
    dist, idx = cpu_topk(torch.tensor(train), torch.tensor(query), 9)
    exact = np.linalg.norm(query[:, None] - train[None], axis=2)
    assert np.all(np.diff(dist, axis=1) >= 0)
    assert np.allclose(dist, np.take_along_axis(exact, idx, axis=1), rtol=1e-12)
    assert np.allclose(dist, np.sort(exact, axis=1)[:, :9], rtol=1e-12)
    assert np.array_equal(idx[-5:, 0], np.arange(5)) and np.all(dist[-5:, 0] == 0)


def test_cpu_search_blocks_and_scikit_learn_find_the_same_neighbours(rng, monkeypatch):
    from gwalign.geometry import knn

    x = torch.tensor(rng.normal(size=(700, 6)))
    whole = knn.exact_knn(x, x, 8)
    monkeypatch.setattr(knn, "CPU_KNN_BLOCK_ELEMENTS", 700 * 64)   # 64 rows a block, a short last one
    blocks = knn.exact_knn(x, x, 8)
    monkeypatch.setattr(knn, "CPU_BRUTE_MAX_POINTS", 100)          # scikit-learn's search
    monkeypatch.setattr(knn, "CPU_BRUTE_MAX_POINTS_COLD", 100)
    tree = knn.exact_knn(x, x, 8)
    assert np.array_equal(blocks[1], whole[1]) and np.array_equal(blocks[0], whole[0])
    # scikit-learn's distances come from |q|² + |t|² - 2 q·t: equal up to its rounding.
    assert np.array_equal(tree[1], whole[1]) and np.allclose(tree[0], whole[0], atol=1e-6)


def test_scikit_learn_is_imported_only_where_its_search_pays_for_it():
    """Up to CPU_BRUTE_MAX_POINTS_COLD points a process without scikit-learn keeps searching by
    blocks; once it is imported, its search takes over above CPU_BRUTE_MAX_POINTS."""
    import subprocess
    import sys
    import textwrap

    from gwalign.geometry import knn

    between = (knn.CPU_BRUTE_MAX_POINTS + knn.CPU_BRUTE_MAX_POINTS_COLD) // 2
    probe = textwrap.dedent(f"""
        import sys
        from unittest import mock
        import torch
        from gwalign.geometry.knn import exact_knn, knn_graph
        knn_graph(torch.randn(300, 10, dtype=torch.float64), 15)
        small = "sklearn" in sys.modules
        x = torch.randn({between}, 3, dtype=torch.float64)
        exact_knn(x, x, 5)
        between = "sklearn" in sys.modules
        import sklearn.neighbors
        with mock.patch.object(sklearn.neighbors, "NearestNeighbors", side_effect=RuntimeError):
            try:
                exact_knn(x, x, 5)
                warm = False
            except RuntimeError:
                warm = True
        print(small, between, warm)
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False", "True"]


@pytest.mark.parametrize("overlap", [True, False])
def test_overlapped_landmark_paths_equal_one_call_and_dijkstra(rng, monkeypatch, overlap):
    """Each side's paths searched while the other side's graph is built (the GPU order) are the
    tables of one shared call, and exact geodesics from each side's own landmarks."""
    from gwalign.geometry import shortest_paths
    from gwalign.geometry.build import graphs_and_paths

    monkeypatch.setattr(shortest_paths, "PARALLEL_MIN_WORK", 0)     # use the worker pool
    xs, _, xt, _ = spiral_and_roll(700, 500, seed=int(rng.integers(1 << 30)))
    points = (torch.tensor(xs), torch.tensor(xt))
    config = gwalign.GWConfig(device="cpu", n_landmarks=24)
    graphs, paths = graphs_and_paths(points, (700, 500), config, "landmark", overlap=overlap)
    tables = paths.result()
    assert [graph.n_points for graph in graphs] == [700, 500]
    for graph, (landmarks, table, timings) in zip(graphs, tables):
        assert table.shape == (24, graph.n_points) and "paths" in timings
        assert np.allclose(table, dijkstra(graph.matrix, directed=False, indices=landmarks))
    _, none = graphs_and_paths(points, (700, 500), config, "dijkstra", overlap=overlap)
    assert none.result() == [None, None]


def test_all_pairs_paths_of_both_sides_equal_dijkstra(rng, monkeypatch):
    """Exact runs search both sides' all-pairs paths in the worker pool: the tables equal one
    Dijkstra per graph; a side with given distances, or above precomputed_max_points, gets none."""
    from scipy.sparse.csgraph import dijkstra

    from gwalign.geometry import shortest_paths
    from gwalign.geometry.build import all_pairs_paths

    monkeypatch.setattr(shortest_paths, "PARALLEL_MIN_WORK", 0)     # use the worker pool
    xs, _, xt, _ = spiral_and_roll(300, 200, seed=int(rng.integers(1 << 30)))
    graphs = (knn_graph(torch.tensor(xs), 10), knn_graph(torch.tensor(xt), 10))
    config = gwalign.GWConfig(device="cpu")
    tables = all_pairs_paths(graphs, (None, None), config)
    for graph, table in zip(graphs, tables):
        assert np.array_equal(table, dijkstra(graph.matrix, directed=True))
    given = np.zeros((200, 200))
    assert all_pairs_paths(graphs, (None, given), config)[1] is None
    small = gwalign.GWConfig(device="cpu", precomputed_max_points=250)
    assert [table is None for table in all_pairs_paths(graphs, (None, None), small)] == [True, False]
