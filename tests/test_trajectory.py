"""Trajectory matching (MTT): the exact constant-memory gradient against the unrolled one, the
expert buffer (round trip, resume, every bad input), the matcher's checkpoints, the entry points."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch
import torch.nn.functional as F

from dc_plugins.augment import DSAugment
from dc_plugins.condense import condense, make_condenser
from dc_plugins.config import MatchingConfig, RunConfig, TrajectoryConfig, resolve
from dc_plugins.data import ClassIndex, make_generator
from dc_plugins.fingerprint import ConfigMismatchError
from dc_plugins.matching.trajectory import (Student, TrajectoryMatcher, draw_plan, exact_trajectory_gradients,
                                            unrolled_trajectory_gradients)
from dc_plugins.models import ConvNetSpec, make_convnet
from dc_plugins.synthetic import SyntheticSet
from dc_plugins.trajectories import CorruptExpertError, ExpertTrajectories, MissingExpertsError, expert_metadata
from dc_plugins.zca import ZCA

from .conftest import make_blobs

TINY = ConvNetSpec(channels=1, num_classes=3, image_size=8, width=4, depth=1)


def _problem(seed: int = 0, n: int = 9):
    g = torch.Generator().manual_seed(seed)
    net = make_convnet(TINY, generator=g).double()
    student = Student(net)
    start = torch.nn.utils.parameters_to_vector(net.parameters()).detach()
    target = start + 0.05 * torch.randn(start.shape, generator=g, dtype=torch.float64)
    images = torch.randn(n, 1, 8, 8, generator=g, dtype=torch.float64)
    labels = torch.arange(3).repeat_interleave(n // 3)
    return student, start, target, images, labels, g


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("steps", [1, 5, 20])
@pytest.mark.parametrize("lr", [0.05, 0.5])
def test_exact_constant_memory_gradient_equals_the_unrolled_one(steps, lr):
    student, start, target, images, labels, g = _problem()
    augment = DSAugment(flip=False)
    plan = draw_plan(images.shape[0], steps, 4, g, augment)  # minibatch of 4 from a set of 9
    assert len({p.family for _, p in plan}) > 1 or steps == 1
    alpha = torch.tensor(lr, dtype=torch.float64)
    loss_e, dx_e, dlr_e = exact_trajectory_gradients(student, start, target, images, labels, alpha, plan, augment)
    loss_u, dx_u, dlr_u = unrolled_trajectory_gradients(student, start, target, images, labels, alpha, plan, augment)
    assert float(loss_e) == pytest.approx(float(loss_u), rel=1e-12)
    assert dx_u.norm() > 0 and dlr_u.abs() > 0
    assert _rel(dx_e, dx_u) < 1e-8
    assert float((dlr_e - dlr_u).abs() / dlr_u.abs()) < 1e-8
    # the images never drawn into a minibatch get no gradient (N = 1: 5 of the 9)
    drawn = torch.cat([idx for idx, _ in plan]).unique()
    untouched = torch.ones(images.shape[0], dtype=torch.bool)
    untouched[drawn] = False
    assert (dx_e[untouched] == 0).all()


def test_cross_step_terms_matter_so_a_last_batch_formula_would_not_pass():
    """Dropping the adjoint's Hessian term (what a per-batch, TESLA-style formula does) changes
    the gradient well beyond the tolerance: the exactness test above can fail."""
    student, start, target, images, labels, g = _problem(1)
    augment = DSAugment(flip=False)
    plan = draw_plan(images.shape[0], 5, 4, g, augment)
    alpha = torch.tensor(0.5, dtype=torch.float64)
    _, dx_u, _ = unrolled_trajectory_gradients(student, start, target, images, labels, alpha, plan, augment)
    # first-order: a stays 2 (theta_N - target) / D for every step
    from torch.func import grad, vjp
    thetas = [start]
    loss = lambda th, x, y, p: F.cross_entropy(student.logits(th, augment.apply(x, p)), y)  # noqa: E731
    for idx, p in plan:
        thetas.append(thetas[-1] - alpha * grad(loss)(thetas[-1], images[idx], labels[idx], p))
    a = 2 * (thetas[-1] - target) / ((start - target) ** 2).sum()
    dx = torch.zeros_like(images)
    for t, (idx, p) in enumerate(plan):
        _, pull = vjp(lambda th, x: grad(loss)(th, x, labels[idx], p), thetas[t], images[idx])
        dx.index_add_(0, idx, -alpha * pull(a)[1])
    assert _rel(dx, dx_u) > 1e-3


def test_loss_is_zero_when_the_student_takes_the_experts_own_steps():
    """Target = plain torch.optim.SGD on an nn.Module with the same minibatches and DSA draws:
    the functional student reproduces it, so the loss (and the gradient) vanish."""
    student, start, _, images, labels, g = _problem(2)
    augment = DSAugment(flip=False)
    plan = draw_plan(images.shape[0], 7, 4, g, augment)
    lr = 0.1
    net = make_convnet(TINY).double()
    torch.nn.utils.vector_to_parameters(start.clone(), net.parameters())
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    for idx, params in plan:
        opt.zero_grad()
        F.cross_entropy(net(augment.apply(images[idx], params)), labels[idx]).backward()
        opt.step()
    target = torch.nn.utils.parameters_to_vector(net.parameters()).detach()
    alpha = torch.tensor(lr, dtype=torch.float64)
    loss, dx, dlr = exact_trajectory_gradients(student, start, target, images, labels, alpha, plan, augment)
    assert float(loss) < 1e-24
    assert float(dx.abs().max()) < 1e-10 and abs(float(dlr)) < 1e-10
    # and a different step size does not reach it
    loss2, _, _ = exact_trajectory_gradients(student, start, target, images, labels, alpha * 1.5, plan, augment)
    assert float(loss2) > 1e-6


def test_nonpositive_steps_and_batchnorm_students_are_refused():
    student, start, target, images, labels, g = _problem()
    with pytest.raises(ValueError, match="syn_steps must be a positive integer, got 0"):
        draw_plan(9, 0, 4, g, None)
    with pytest.raises(ValueError, match="syn_steps must be a positive integer"):
        resolve(RunConfig(method="mtt", trajectory=TrajectoryConfig(syn_steps=-1)))
    with pytest.raises(ValueError, match="buffers"):
        Student(make_convnet(dataclasses.replace(TINY, norm="batch")))


# -- the expert buffer ---------------------------------------------------------------------------------

def _meta(**over):
    base = dict(dataset="blobs", spec=TINY, image_shape=(1, 8, 8), mean=(0.0,), std=(1.0,), epochs=4, lr=0.01,
                batch=16, augment="color_crop", seed=0, data="abc", dtype="float32")
    base.update(over)
    return expert_metadata(**base)


def _blob_data():
    data = make_blobs(n_per_class=12)
    return data.images, data.labels


def test_buffer_round_trip_and_resume_never_retrains_a_finished_expert(tmp_path, monkeypatch):
    x, y = _blob_data()
    aug = DSAugment("color_crop")
    buf = ExpertTrajectories(_meta(), 2, tmp_path).build(x, y, spec=TINY, augment=aug, progress=False)
    assert buf.trained == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["expert_0000.pt", "expert_0001.pt"]
    first = buf.expert(0).clone()
    assert first.shape == (5, Student(make_convnet(TINY)).size)
    assert not torch.equal(first[0], first[-1])  # it trained
    # round trip: a new object reads the same parameters, and they are the expert's own training
    again = ExpertTrajectories(_meta(), 2, tmp_path).check()
    assert torch.equal(again.expert(0), first)
    assert torch.equal(buf.train_expert(0, x, y, spec=TINY, augment=aug), first)
    # a larger buffer trains only the new expert; the finished files are not rewritten
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    calls = []
    original = ExpertTrajectories.train_expert
    monkeypatch.setattr(ExpertTrajectories, "train_expert",
                        lambda self, e, *a, **k: calls.append(e) or original(self, e, *a, **k))
    bigger = ExpertTrajectories(_meta(), 3, tmp_path).build(x, y, spec=TINY, augment=aug, progress=False)
    assert calls == [2] and bigger.trained == 1
    assert all(tmp_path.joinpath(n).stat().st_mtime_ns == t for n, t in mtimes.items())


def test_interrupted_build_leaves_only_whole_experts_and_resumes(tmp_path, monkeypatch):
    x, y = _blob_data()
    original = ExpertTrajectories.train_expert

    def dies_on_expert_1(self, e, *a, **k):
        if e == 1:
            raise KeyboardInterrupt
        return original(self, e, *a, **k)

    monkeypatch.setattr(ExpertTrajectories, "train_expert", dies_on_expert_1)
    with pytest.raises(KeyboardInterrupt):
        ExpertTrajectories(_meta(), 3, tmp_path).build(x, y, spec=TINY, augment=None, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["expert_0000.pt"]  # no temporary files left
    monkeypatch.setattr(ExpertTrajectories, "train_expert", original)
    buf = ExpertTrajectories(_meta(), 3, tmp_path).build(x, y, spec=TINY, augment=None, progress=False)
    assert buf.trained == 2


def test_float16_buffers_store_half_the_bytes(tmp_path):
    x, y = _blob_data()
    b32 = ExpertTrajectories(_meta(), 1, tmp_path / "a").build(x, y, spec=TINY, augment=None, progress=False)
    b16 = ExpertTrajectories(_meta(dtype="float16"), 1, tmp_path / "b").build(x, y, spec=TINY, augment=None,
                                                                             progress=False)
    assert torch.allclose(b16.expert(0), b32.expert(0), atol=1e-2, rtol=1e-3)
    payload = torch.load(tmp_path / "b" / "expert_0000.pt", weights_only=True)
    assert payload["params"].dtype == torch.float16


@pytest.mark.parametrize("change, named", [
    (dict(spec=dataclasses.replace(TINY, width=8)), "net: convnet-w4"),
    (dict(dataset="digits"), "dataset: blobs -> digits"),
    (dict(image_shape=(1, 16, 16)), "image_shape"),
    (dict(mean=(0.5,), std=(0.2,)), "mean"),
    (dict(data="other"), "data: abc -> other"),
])
def test_a_buffer_of_another_network_dataset_shape_or_normalisation_is_refused_naming_it(tmp_path, change, named):
    x, y = _blob_data()
    ExpertTrajectories(_meta(), 1, tmp_path).build(x, y, spec=TINY, augment=None, progress=False)
    with pytest.raises(ConfigMismatchError, match=named):
        ExpertTrajectories(_meta(**change), 1, tmp_path).check()


def test_missing_buffers_and_start_epochs_beyond_the_buffer_are_clear_errors(tmp_path):
    x, y = _blob_data()
    with pytest.raises(MissingExpertsError, match="does not exist.*dc-experts"):
        ExpertTrajectories(_meta(), 1, tmp_path / "nothing").check()
    buf = ExpertTrajectories(_meta(), 1, tmp_path).build(x, y, spec=TINY, augment=None, progress=False)
    with pytest.raises(MissingExpertsError, match="lacks experts 1-2 of the 3"):
        ExpertTrajectories(_meta(), 3, tmp_path).check()
    g = make_generator(0)
    with pytest.raises(ValueError, match="beyond the buffer's 4 epochs"):
        buf.sample(g, max_start_epoch=4, expert_epochs=2)   # start 3 + 2 > 4
    assert buf.sample(g, max_start_epoch=3, expert_epochs=2).start_epoch < 3
    with pytest.raises(ValueError, match="start epoch 5 .* beyond"):
        buf.at(0, 5, 1)
    with pytest.raises(ValueError, match="beyond the experts' 4 epochs"):
        resolve(RunConfig(method="mtt", trajectory=TrajectoryConfig(max_start_epoch=4, expert_epochs=2,
                                                                    expert_train_epochs=4)))


def test_a_corrupt_expert_file_is_refused_never_used(tmp_path):
    x, y = _blob_data()
    ExpertTrajectories(_meta(), 2, tmp_path).build(x, y, spec=TINY, augment=None, progress=False)
    # truncated
    p0 = tmp_path / "expert_0000.pt"
    p0.write_bytes(p0.read_bytes()[:200])
    with pytest.raises(CorruptExpertError, match="expert_0000.pt is not a valid expert-trajectory file: not a torch archive"):
        ExpertTrajectories(_meta(), 2, tmp_path).check()
    # parameters edited (a valid torch file, wrong checksum)
    p1 = tmp_path / "expert_0001.pt"
    payload = torch.load(p1, weights_only=True)
    payload["params"][2, 0] += 1.0
    torch.save(payload, p1)
    with pytest.raises(CorruptExpertError, match="checksum mismatch"):
        ExpertTrajectories(_meta(), 2, tmp_path).expert(1)
    # a resumed build refuses it too, instead of training around it
    with pytest.raises(CorruptExpertError):
        ExpertTrajectories(_meta(), 2, tmp_path).build(x, y, spec=TINY, augment=None, progress=False)


# -- ZCA -------------------------------------------------------------------------------------------------

def test_zca_whitens_and_inverts():
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(12, 12, generator=g, dtype=torch.float64)
    x = (torch.randn(4000, 12, generator=g, dtype=torch.float64) @ mix).reshape(4000, 3, 2, 2) + 3.0
    zca = ZCA.fit(x, eps=0.0)
    w = zca.transform(x).reshape(4000, -1)
    assert torch.allclose(w.mean(0), torch.zeros(12, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(w.T @ w / 3999, torch.eye(12, dtype=torch.float64), atol=1e-8)
    assert torch.allclose(zca.inverse(zca.transform(x)), x, atol=1e-10)
    with pytest.raises(ValueError, match="at least 2 images"):
        ZCA.fit(x[:1])


# -- the matcher -----------------------------------------------------------------------------------------

def _matcher(data, tmp_path=None, **traj) -> TrajectoryMatcher:
    t = dict(syn_steps=4, expert_epochs=1, max_start_epoch=2, lr_lr=1e-5, lr_teacher=0.02, batch_syn=4,
             num_experts=2, expert_train_epochs=3, expert_batch=8)
    t.update(traj)
    cfg = resolve(RunConfig(method="mtt", ipc=2, preset="cpu-quick", trajectory=TrajectoryConfig(**t),
                            matching=MatchingConfig(lr_img=10.0)))
    spec = ConvNetSpec(channels=data.channels, num_classes=data.num_classes, image_size=data.image_size, width=8,
                       depth=2)
    return TrajectoryMatcher(ClassIndex.from_dataset(data), 2, spec=spec, config=cfg.matching,
                             trajectory=cfg.trajectory, dataset=data.info.name, mean=data.info.mean,
                             std=data.info.std, flip=False, progress=False,
                             experts_dir=None if tmp_path is None else tmp_path / "experts")


def test_resume_gives_the_same_set_as_an_uninterrupted_run(tmp_path):
    data = make_blobs(n_per_class=16)
    whole = _matcher(data, tmp_path / "a")
    whole_set = whole.run(4, progress=False)
    first = _matcher(data, tmp_path / "b")
    first.run(2, checkpoint=tmp_path / "b" / "ck.pt", progress=False)
    resumed = _matcher(data, tmp_path / "b")
    resumed.load_checkpoint(tmp_path / "b" / "ck.pt")
    assert resumed.iteration == 2 and resumed.syn_lr.item() == first.syn_lr.item() != 0.02
    resumed_set = resumed.run(4, progress=False)
    assert resumed.experts.trained == 0  # the experts of the first part were reused
    assert torch.equal(resumed_set.images, whole_set.images)
    assert resumed.syn_lr.item() == whole.syn_lr.item()
    # another trajectory setting is refused, naming it
    other = _matcher(data, tmp_path / "b", syn_steps=5)
    with pytest.raises(ConfigMismatchError, match="trajectory.syn_steps: 4 -> 5"):
        other.load_checkpoint(tmp_path / "b" / "ck.pt")


def test_exact_and_unrolled_matchers_learn_the_same_set():
    data = make_blobs(n_per_class=16)
    a = _matcher(data, gradient="exact").run(3, progress=False)
    b = _matcher(data, gradient="unrolled").run(3, progress=False)
    assert torch.allclose(a.images, b.images, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a.images, _matcher(data).images)  # they moved


def test_the_matcher_refuses_a_missing_short_or_foreign_buffer(tmp_path):
    data = make_blobs(n_per_class=16)
    with pytest.raises(MissingExpertsError, match="does not exist"):
        _matcher(data, None, buffer=str(tmp_path / "none")).run(1, progress=False)
    _matcher(data, tmp_path).run(1, progress=False)  # builds tmp_path/experts with 3 epochs
    longer = _matcher(data, buffer=str(tmp_path / "experts"), expert_train_epochs=5, max_start_epoch=4)
    with pytest.raises(ConfigMismatchError, match="epochs: 3 -> 5"):
        longer.run(1, progress=False)
    more = _matcher(data, buffer=str(tmp_path / "experts"), num_experts=3)
    with pytest.raises(MissingExpertsError, match="lacks experts 2 of the 3"):
        more.run(1, progress=False)


def test_zca_matcher_returns_its_set_in_the_datasets_normalised_space():
    data = make_blobs(n_per_class=16)
    m = _matcher(data, zca=True, zca_eps=0.1)
    assert not torch.allclose(m.real.images, data.images)     # it works on whitened images
    syn = m.synthetic_set()
    # real initialisation: unwhitened, the set's images are real images of the data
    flat = data.images.reshape(len(data), -1)
    d = torch.cdist(syn.images.reshape(len(syn), -1), flat,
                    compute_mode="donot_use_mm_for_euclid_dist").min(1).values
    assert float(d.max()) < 1e-3
    assert m.expert_metadata()["zca"] is True


def test_make_condenser_and_condense_take_mtt_on_digits(digits_train, tmp_path):
    traj = TrajectoryConfig(syn_steps=5, num_experts=1, expert_train_epochs=3, max_start_epoch=2)
    m = make_condenser(digits_train, "mtt", 1, net="convnet-w8-d2", preset="cpu-quick", trajectory=traj,
                       progress=False)
    assert isinstance(m, TrajectoryMatcher) and m.trajectory.lr_teacher == 0.01 and m.trajectory.zca is False
    syn = condense(digits_train, "mtt", 1, iterations=3, net="convnet-w8-d2", preset="cpu-quick",
                   trajectory=traj, checkpoint=tmp_path / "ck.pt", progress=False)
    assert syn.method == "mtt" and syn.images.shape == (10, 1, 8, 8)
    assert syn.config["trajectory"]["syn_steps"] == 5 and syn.config["syn_lr"] != 0.01
    assert sorted(p.name for p in (tmp_path / "experts").iterdir()) == ["expert_0000.pt"]
    init = make_condenser(digits_train, "mtt", 1, net="convnet-w8-d2", preset="cpu-quick", trajectory=traj).images
    assert not torch.allclose(syn.images, init.detach())


def test_presets_fill_the_trajectory_section():
    paper = resolve(RunConfig(method="mtt", dataset="cifar10", ipc=10))
    t = paper.trajectory
    assert (t.syn_steps, t.expert_epochs, t.max_start_epoch, t.zca) == (30, 2, 20, True)
    assert paper.matching.lr_img == 1000.0 and paper.iterations == 5000
    one = resolve(RunConfig(method="mtt", dataset="cifar10", ipc=1)).trajectory
    assert (one.syn_steps, one.max_start_epoch, one.lr_lr) == (50, 2, 1e-7)
    assert resolve(RunConfig(method="mtt", dataset="mnist", ipc=10)).trajectory.zca is False
    quick = resolve(RunConfig(method="mtt", preset="cpu-quick", ipc=10))
    assert quick.trajectory.num_experts == 2 and quick.iterations == 50
    with pytest.raises(ValueError, match="trajectory.gradient must be 'exact' or 'unrolled', got 'tesla'"):
        resolve(RunConfig(method="mtt", trajectory=TrajectoryConfig(gradient="tesla")))
    # the other methods' configurations do not carry it into their fingerprints
    from dc_plugins.cli import run_fingerprint
    from dc_plugins.data import load_dataset
    d = load_dataset("digits")
    assert "trajectory" not in run_fingerprint(resolve(RunConfig(method="dm", dataset="digits")), d, d)


# -- command line ------------------------------------------------------------------------------------------

def test_cli_builds_experts_alone_and_condenses_with_mtt(tmp_path, capsys):
    from dc_plugins.cli import experts_main, main

    flags = ["--dataset", "digits", "--preset", "cpu-quick", "--ipc", "1", "--net", "convnet-w8-d2",
             "--out", str(tmp_path), "--no-progress", "--set", "trajectory.num_experts=1",
             "--set", "trajectory.expert_train_epochs=3", "--set", "trajectory.max_start_epoch=2",
             "--set", "trajectory.syn_steps=4"]
    assert experts_main(flags) == 0
    assert "1 trained now" in capsys.readouterr().out
    mtime = (tmp_path / "experts" / "expert_0000.pt").stat().st_mtime_ns
    assert main(["--method", "mtt", "--iterations", "2", "--eval-networks", "1", "--eval-epochs", "2"] + flags) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["method"] == "mtt" and result["fingerprint"]["trajectory"]["syn_steps"] == 4
    # evaluated with the step size the set learned, and the result says which
    assert result["eval_lr"] == SyntheticSet.load(tmp_path / "set.pt").config["syn_lr"] != 0.01
    assert (tmp_path / "experts" / "expert_0000.pt").stat().st_mtime_ns == mtime  # reused, not retrained
    assert (tmp_path / "set.pt").is_file()
    # a buffer of another network, named
    assert main(["--method", "mtt", "--iterations", "1", "--eval-networks", "0"] + flags
                + ["--net", "convnet-w16-d2", "--set", f"trajectory.buffer={tmp_path / 'experts'}"]) == 2
    assert "net: convnet-w8-d2-instance-relu-avg -> convnet-w16-d2" in capsys.readouterr().err
    assert experts_main(flags + ["--method", "dm"]) == 2
    assert "not 'dm'" in capsys.readouterr().err
    assert os.path.isdir(tmp_path / "experts")


def test_selmatch_result_json_records_the_window_search(tmp_path):
    from dc_plugins.cli import main

    flags = ["--dataset", "digits", "--preset", "cpu-quick", "--ipc", "2", "--net", "convnet-w8-d2",
             "--out", str(tmp_path), "--no-progress", "--set", "trajectory.num_experts=1",
             "--set", "trajectory.expert_train_epochs=3", "--set", "trajectory.max_start_epoch=2",
             "--set", "trajectory.syn_steps=2", "--set", "trajectory.selmatch.score_epochs=1",
             "--set", "trajectory.selmatch.window_epochs=2", "--set", "trajectory.selmatch.betas=[0.0,0.5]"]
    assert main(["--method", "selmatch", "--iterations", "1", "--eval-networks", "0"] + flags) == 0
    found = json.loads((tmp_path / "result.json").read_text())["selmatch"]
    kept = SyntheticSet.load(tmp_path / "set.pt").config["selmatch"]
    assert set(found) == {"beta", "window_accuracies"} and found["beta"] in (0.0, 0.5)
    assert set(found["window_accuracies"]) == {"0.0", "0.5"} and found == {k: kept[k] for k in found}
