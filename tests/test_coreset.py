import pytest
import torch

from dc_plugins.config import SelectionConfig
from dc_plugins.coreset import CoresetSelector, ForgettingTracker, herding, k_center, most_forgotten
from dc_plugins.data import ClassIndex
from dc_plugins.models import ConvNetSpec


def brute_herding(f: torch.Tensor, n: int) -> list[int]:
    mu = f.mean(0)
    chosen: list[int] = []
    for k in range(1, n + 1):
        best, best_d = None, float("inf")
        for i in range(f.shape[0]):
            if i in chosen:
                continue
            mean = sum((f[j] for j in chosen), torch.zeros_like(mu)) + f[i]
            d = float(((mu - mean / k) ** 2).sum())
            if d < best_d:
                best, best_d = i, d
        chosen.append(best)
    return chosen


def brute_k_center(f: torch.Tensor, n: int) -> list[int]:
    mu = f.mean(0)
    first = min(range(f.shape[0]), key=lambda i: float(((f[i] - mu) ** 2).sum()))
    chosen = [first]
    while len(chosen) < n:
        def gap(i):
            return min(float(((f[i] - f[j]) ** 2).sum()) for j in chosen)
        chosen.append(max((i for i in range(f.shape[0]) if i not in chosen), key=gap))
    return chosen


@pytest.mark.parametrize("seed", range(5))
def test_herding_matches_brute_force(seed):
    f = torch.randn(25, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert herding(f, 7).tolist() == brute_herding(f, 7)


@pytest.mark.parametrize("seed", range(5))
def test_k_center_matches_brute_force(seed):
    f = torch.randn(25, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert k_center(f, 6).tolist() == brute_k_center(f, 6)


def test_k_center_covers_far_clusters_first():
    # three tight clusters far apart: the first three picks land in three different clusters
    centers = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    f = centers.repeat_interleave(5, 0) + 0.01 * torch.randn(15, 2, generator=torch.Generator().manual_seed(0))
    picks = k_center(f, 3).tolist()
    assert sorted(p // 5 for p in picks) == [0, 1, 2]


def test_forgetting_tracker_counts_correct_to_wrong_transitions():
    t = ForgettingTracker(3)
    seq = [[True, False, True], [False, False, True], [True, True, False], [False, True, False]]
    for correct in seq:
        t.update(torch.arange(3), torch.tensor(correct))
    assert t.counts.tolist() == [2, 0, 1]
    picks = most_forgotten(t.counts, 2, torch.Generator().manual_seed(0))
    assert picks.tolist() == [0, 2]


def test_selection_errors_name_the_bad_value(blobs):
    idx = ClassIndex.from_dataset(blobs)
    spec = ConvNetSpec(channels=1, num_classes=3, image_size=8, width=8, depth=1)
    with pytest.raises(ValueError, match="ipc=21 real images of class 0, which has only 20"):
        CoresetSelector("herding", idx, 21, spec=spec)
    with pytest.raises(ValueError, match="unknown selection method 'median'"):
        CoresetSelector("median", idx, 1, spec=spec)
    with pytest.raises(ValueError, match="cannot select 0 of"):
        herding(torch.randn(4, 2), 0)


@pytest.mark.parametrize("method", ["random", "herding", "kcenter", "forgetting"])
def test_selectors_return_ipc_real_images_per_class(blobs, method):
    idx = ClassIndex.from_dataset(blobs)
    spec = ConvNetSpec(channels=1, num_classes=3, image_size=8, width=8, depth=1)
    sel = CoresetSelector(method, idx, 4, spec=spec, config=SelectionConfig(reference_epochs=1), seed=3)
    syn = sel.run(progress=False)
    assert syn.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # every image is a distinct real image of its own class
    for img, c in zip(syn.images, syn.labels.tolist()):
        matches = (blobs.images == img).flatten(1).all(1).nonzero().flatten()
        assert matches.numel() == 1 and blobs.labels[matches[0]] == c
    assert len({tuple(img.flatten().tolist()) for img in syn.images}) == 12


def test_the_reference_network_is_shared_by_content_across_reloads(monkeypatch):
    # The suite loads the dataset again for each run; the shared reference network of herding,
    # k-center and forgetting must be found again for an equal copy of the data, and not for
    # other data.
    import dc_plugins.coreset as coreset
    from dc_plugins.config import SelectionConfig
    from dc_plugins.data import ClassIndex, load_dataset
    from dc_plugins.models import ConvNetSpec

    calls = []
    real_train = coreset.train_reference

    def counting(*args, **kwargs):
        calls.append(1)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(coreset, "train_reference", counting)
    coreset._REFERENCE_CACHE.clear()
    data = load_dataset("digits", train=True)
    spec = ConvNetSpec.parse("convnet-w16-d2").with_data(1, 10, 8)
    cfg = SelectionConfig(reference_epochs=1)
    for method, images in (("herding", data.images), ("kcenter", data.images.clone()),
                           ("forgetting", data.images.clone())):
        coreset.CoresetSelector(method, ClassIndex(images, data.labels, 10), 2, spec=spec, config=cfg).select()
    assert len(calls) == 1
    other = data.images.clone()
    other[0] += 1.0
    coreset.CoresetSelector("herding", ClassIndex(other, data.labels, 10), 2, spec=spec, config=cfg).select()
    assert len(calls) == 2
