import pytest
import torch
from PIL import Image

from dc_plugins.synthetic import CorruptSetError, SyntheticSet


def make_set(ipc=3, classes=4, channels=1, size=8):
    g = torch.Generator().manual_seed(0)
    return SyntheticSet(torch.randn(classes * ipc, channels, size, size, generator=g),
                        torch.arange(classes).repeat_interleave(ipc), "dc", "digits", ipc, seed=7,
                        config={"matching": {"lr_img": 0.1}, "iterations": 5}, mean=(0.3,), std=(0.4,))


def test_round_trip_keeps_everything(tmp_path):
    s = make_set()
    path = s.save(tmp_path / "set.pt")
    t = SyntheticSet.load(path)
    assert torch.equal(s.images, t.images) and torch.equal(s.labels, t.labels)
    assert (t.method, t.dataset, t.ipc, t.seed, t.config, t.mean, t.std) == \
           ("dc", "digits", 3, 7, s.config, (0.3,), (0.4,))
    assert t.version == s.version
    assert [p.name for p in tmp_path.iterdir()] == ["set.pt"]  # no temporary file left


def test_flipped_byte_fails_checksum(tmp_path):
    path = make_set().save(tmp_path / "set.pt")
    s2 = make_set()
    s2.images[0, 0, 0, 0] += 1.0
    # same container, other numbers, original checksum: write it by hand
    payload = torch.load(path, weights_only=True)
    payload["images"] = s2.images
    torch.save(payload, path)
    with pytest.raises(CorruptSetError, match=r"set.pt is not a synthetic-set file: checksum mismatch"):
        SyntheticSet.load(path)


class _NotATensor:
    pass


def _one_line_error(path, **kwargs) -> str:
    with pytest.raises(CorruptSetError) as info:
        SyntheticSet.load(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "weights_only" not in message, message
    return message


def test_truncated_and_foreign_files_are_one_line_errors(tmp_path):
    path = make_set().save(tmp_path / "set.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert _one_line_error(path) == f"{path} is not a synthetic-set file: not a torch archive (truncated, or not written by torch.save)"
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    assert "not a torch archive" in _one_line_error(text)
    # A torch archive with arbitrary Python objects: weights_only refuses it; torch's own message
    # is many lines and advises weights_only=False, which would run the file's code.
    evil = tmp_path / "evil.pt"
    torch.save({"format": "dc-plugins/synthetic-set", "payload": _NotATensor()}, evil)
    assert _one_line_error(evil).startswith(f"{evil} is not a synthetic-set file: it holds Python objects")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    assert "no 'dc-plugins/synthetic-set' format tag" in _one_line_error(other)
    payload = torch.load(make_set().save(tmp_path / "v2.pt"), weights_only=True)
    payload["format_version"] = 2
    torch.save(payload, tmp_path / "v2.pt")
    assert _one_line_error(tmp_path / "v2.pt").endswith("wrong format version 2 (this library reads version 1)")
    with pytest.raises(FileNotFoundError, match="no synthetic set"):
        SyntheticSet.load(tmp_path / "missing.pt")


def test_failed_save_leaves_no_file(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        make_set().save(tmp_path / "set.pt")
    assert list(tmp_path.iterdir()) == []


def test_compatibility_check_names_both_shapes():
    s = make_set(channels=1, size=8)
    s.check_compatible(1, 8, 4)
    with pytest.raises(ValueError, match=r"1 channel\(s\) at 8x8 px; the model expects 3 channel\(s\) at 32x32"):
        s.check_compatible(3, 32)
    with pytest.raises(ValueError, match="label 3; the model has 2 classes"):
        s.check_compatible(1, 8, 2)


def test_grid_has_one_row_per_class(tmp_path):
    s = make_set(ipc=3, classes=4, size=8)
    path = s.save_grid(tmp_path / "grid.png", scale=1)
    w, h = Image.open(path).size
    # torchvision's grid: padding 2 around every cell
    assert (w, h) == (3 * (8 + 2) + 2, 4 * (8 + 2) + 2)
