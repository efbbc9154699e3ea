"""SelMatch: alpha = 0 is the selection, alpha = 1 is MTT from the window, the window search finds
the best window, partial update, difficulty scores, the combined evaluation augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dc_plugins.augment import CombinedAugment
from dc_plugins.config import MatchingConfig, RunConfig, SelMatchConfig, TrajectoryConfig, resolve
from dc_plugins.data import ClassIndex
from dc_plugins.matching import SelMatchMatcher, TrajectoryMatcher
from dc_plugins.matching.selmatch import load_scores, search_beta
from dc_plugins.models import ConvNetSpec

from .conftest import make_blobs

SPEC = dict(width=8, depth=2)


def _cfg(**sm):
    traj = TrajectoryConfig(syn_steps=4, expert_epochs=1, max_start_epoch=2, lr_lr=1e-5, lr_teacher=0.02,
                            batch_syn=4, num_experts=1, expert_train_epochs=3, expert_batch=8,
                            selmatch=SelMatchConfig(**{"beta": 0.5, "alpha": 0.5, **sm}))
    return resolve(RunConfig(method="selmatch", ipc=4, preset="cpu-quick", trajectory=traj,
                             matching=MatchingConfig(lr_img=10.0)))


def _matcher(data, cls=SelMatchMatcher, scores=None, ipc=4, **sm):
    cfg = _cfg(**sm)
    spec = ConvNetSpec(channels=data.channels, num_classes=data.num_classes, image_size=data.image_size, **SPEC)
    extra = {} if cls is TrajectoryMatcher else {"scores": scores}
    return cls(ClassIndex.from_dataset(data), ipc, spec=spec, config=cfg.matching, trajectory=cfg.trajectory,
               dataset=data.info.name, flip=False, progress=False, **extra)


def _ranked_scores(data):
    return torch.arange(len(data), dtype=torch.float64)  # later samples harder


def test_alpha_0_leaves_the_selected_images_untouched():
    data = make_blobs(n_per_class=20)
    m = _matcher(data, scores=_ranked_scores(data), alpha=0.0)
    syn = m.run(3, progress=False)
    window = m.selection["indices"]
    assert torch.equal(syn.images, data.images[window])
    assert not any(syn.config["distilled"]) and m.experts is None  # nothing to distil: no experts trained
    # the window: class by class, hardest first, starting at beta = 0.5 of the ranking
    per_class = window.view(3, 4)
    for c in range(3):
        ranked = torch.nonzero(data.labels == c).flatten().flip(0)   # hardest (highest score) first
        assert per_class[c].tolist() == ranked[10:14].tolist()


def test_alpha_1_is_mtt_from_the_window():
    data = make_blobs(n_per_class=20)
    sm = _matcher(data, scores=_ranked_scores(data), alpha=1.0)
    sm.prepare()
    assert bool(sm.update_mask.all())
    mtt = _matcher(data, cls=TrajectoryMatcher)
    with torch.no_grad():
        mtt.images.copy_(sm.images)
    a, b = sm.run(3, progress=False), mtt.run(3, progress=False)
    assert torch.equal(a.images, b.images) and sm.syn_lr.item() == mtt.syn_lr.item()
    assert not torch.equal(a.images, data.images[sm.selection["indices"]])


def test_partial_update_keeps_the_hardest_part_real():
    data = make_blobs(n_per_class=20)
    m = _matcher(data, scores=_ranked_scores(data), alpha=0.5)
    syn = m.run(3, progress=False)
    start = data.images[m.selection["indices"]]
    distilled = torch.tensor(syn.config["distilled"])
    assert distilled.tolist() == [False, False, True, True] * 3       # the 2 hardest of each class stay
    assert torch.equal(syn.images[~distilled], start[~distilled])
    assert (syn.images[distilled] - start[distilled]).flatten(1).norm(dim=1).min() > 0


def _window_case():
    """3 classes; per class 30 training samples ranked by score (hardest first) of which only
    ranks 15-19 show the class's pattern (every other one is blank), and 10 validation samples
    that all show it: only the window at beta = 0.5 trains a network that recognises them."""
    g = torch.Generator().manual_seed(0)
    protos = 3 * torch.randn(3, 1, 8, 8, generator=g)
    images, labels, scores, train, val = [], [], [], [], []
    for c in range(3):
        for r in range(40):
            is_val, good = r >= 30, r >= 30 or 15 <= r < 20
            (val if is_val else train).append(len(images))
            images.append(protos[c] + 0.3 * torch.randn(1, 8, 8, generator=g) if good else torch.zeros(1, 8, 8))
            labels.append(c)
            scores.append(100.0 - r)
    return (torch.stack(images), torch.tensor(labels), torch.tensor(scores, dtype=torch.float64),
            torch.tensor(train), torch.tensor(val))


def test_window_search_returns_the_best_beta_on_a_constructed_case():
    images, labels, scores, train, val = _window_case()
    spec = ConvNetSpec(channels=1, num_classes=3, image_size=8, **SPEC)
    best, accuracies = search_beta(images, labels, scores, [0, 1, 2], 5, [0.0, 0.25, 0.5, 0.75], spec=spec,
                                   epochs=30, val=val, train=train, tiebreak=torch.arange(len(labels)),
                                   generator=torch.Generator().manual_seed(0), flip=False)
    assert best == 0.5, accuracies
    assert accuracies[0.5] > 0.9 and accuracies[0.5] - max(a for b, a in accuracies.items() if b != 0.5) > 0.2


def test_the_matcher_searches_beta_on_a_validation_split_and_keeps_its_window():
    data = make_blobs(n_per_class=20)
    m = _matcher(data, scores=_ranked_scores(data), beta=None, betas=[0.0, 0.5], window_epochs=5)
    sel = m.prepare()
    assert set(sel["accuracies"]) == {0.0, 0.5} and sel["beta"] == max(sel["accuracies"],
                                                                      key=lambda b: (sel["accuracies"][b], -b))
    same = _matcher(data, scores=_ranked_scores(data), beta=sel["beta"])
    assert torch.equal(same.prepare()["indices"], sel["indices"])   # the window over all the data


def test_resume_keeps_the_selection_and_gives_the_same_set(tmp_path):
    data = make_blobs(n_per_class=20)
    whole = _matcher(data, scores=_ranked_scores(data)).run(4, progress=False)
    first = _matcher(data, scores=_ranked_scores(data))
    first.run(2, checkpoint=tmp_path / "ck.pt", progress=False)
    again = _matcher(data, scores=_ranked_scores(data))
    calls = []
    again.scores = lambda: calls.append(1)          # a resumed run never redoes the selection
    resumed = again.run(4, checkpoint=tmp_path / "ck.pt", resume=True, progress=False)
    assert calls == [] and torch.equal(resumed.images, whole.images)
    assert resumed.config["distilled"] == whole.config["distilled"]


def test_scores_files_and_their_errors(tmp_path):
    data = make_blobs(n_per_class=20)
    np.save(tmp_path / "s.npy", np.arange(60, dtype=np.float64))
    (tmp_path / "s.txt").write_text("\n".join(str(60 - i) for i in range(60)))
    torch.save(torch.arange(59.0), tmp_path / "short.pt")
    assert torch.equal(load_scores(tmp_path / "s.npy", 60), torch.arange(60, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"holds \(59,\) values; the training data has 60 samples"):
        load_scores(tmp_path / "short.pt", 60)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_scores(tmp_path / "none.npy", 60)
    # a C-score-like file (low = hard), read in reverse: the same window as the ranked scores
    a = _matcher(data, scores=_ranked_scores(data), alpha=0.0)
    cfg = _cfg(alpha=0.0, scores=str(tmp_path / "s.txt"), harder_is_higher=False)
    spec = ConvNetSpec(channels=1, num_classes=3, image_size=8, **SPEC)
    b = SelMatchMatcher(ClassIndex.from_dataset(data), 4, spec=spec, config=cfg.matching, trajectory=cfg.trajectory,
                        flip=False, progress=False)
    assert torch.equal(a.prepare()["indices"], b.prepare()["indices"])
    assert b.fingerprint()["trajectory"]["selmatch"]["scores"] == "given"


def test_forgetting_scores_are_computed_when_no_file_is_given():
    data = make_blobs(n_per_class=20)
    m = _matcher(data, alpha=0.0, score_epochs=2)
    scores = m.scores()
    assert scores.shape == (60,) and scores.dtype == torch.float64 and (scores >= 0).all()
    assert m.prepare()["indices"].shape == (12,)


def test_combined_augmentation_treats_distilled_and_selected_images_apart(digits_train, digits_test):
    aug = CombinedAugment(torch.tensor([True, False, True, False]), lambda x, g: x + 1, lambda x, g: x - 1)
    x = torch.zeros(3, 1, 2, 2)
    out = aug(x, torch.Generator(), torch.tensor([0, 1, 2]))
    assert out[:, 0, 0, 0].tolist() == [1.0, -1.0, 1.0]
    from dc_plugins.evaluation import evaluate_set
    from dc_plugins.config import EvalConfig
    m = _matcher(digits_train, scores=torch.arange(len(digits_train), dtype=torch.float64), alpha=0.0, ipc=2)
    syn = m.run(0, progress=False)
    res = evaluate_set(syn, digits_test, config=EvalConfig(networks=1, epochs=2, net="convnet-w8-d2"),
                       progress=False)
    assert res.augment == "combined"


def test_selmatch_presets_and_bad_values():
    paper = resolve(RunConfig(method="selmatch", dataset="cifar10", ipc=250)).trajectory.selmatch
    assert (paper.alpha, paper.beta) == (0.6, 0.5)
    assert resolve(RunConfig(method="selmatch", dataset="cifar10", ipc=1000)).trajectory.selmatch.beta == 0.2
    other = resolve(RunConfig(method="selmatch", dataset="cifar10", ipc=100)).trajectory.selmatch
    assert other.beta is None and len(other.betas) == 10      # searched
    with pytest.raises(ValueError, match=r"trajectory.selmatch.alpha must be in \[0, 1\], got 1.5"):
        resolve(RunConfig(method="selmatch", trajectory=TrajectoryConfig(selmatch=SelMatchConfig(alpha=1.5))))
    with pytest.raises(ValueError, match=r"selmatch.betas\[1\] must be in \[0, 1\)"):
        resolve(RunConfig(method="selmatch", trajectory=TrajectoryConfig(selmatch=SelMatchConfig(betas=[0.1, 1.0]))))
    # the section is part of selmatch's fingerprint only
    from dc_plugins.config import trajectory_fingerprint
    t = resolve(RunConfig(method="selmatch", preset="cpu-quick")).trajectory
    assert "selmatch" in trajectory_fingerprint(t, "selmatch") and "selmatch" not in trajectory_fingerprint(t, "mtt")
