import pytest
import torch

from dc_plugins.data import ClassIndex, DatasetNotFoundError, convert_images, load_dataset, make_generator

from .conftest import shared_data_or_skip


def test_digits_ship_offline_with_train_test_split(digits_train, digits_test):
    assert digits_train.images.shape == (1437, 1, 8, 8)
    assert digits_test.images.shape == (360, 1, 8, 8)
    assert digits_train.labels.bincount().min() > 130
    # normalised with the dataset's constants: roughly zero mean, unit-ish std
    assert abs(digits_train.images.mean().item()) < 0.1


def test_resize_pad_and_channel_conversion():
    x = torch.randn(2, 1, 28, 28)
    padded = convert_images(x, image_size=32)
    assert padded.shape == (2, 1, 32, 32) and torch.equal(padded[:, :, 2:30, 2:30], x)
    rgb = convert_images(x, channels=3)
    assert rgb.shape == (2, 3, 28, 28) and torch.equal(rgb[:, 0], rgb[:, 2])
    assert convert_images(torch.randn(2, 3, 16, 16), image_size=32, channels=1).shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="cannot convert 2 channels to 3"):
        convert_images(torch.randn(1, 2, 8, 8), channels=3)


def test_class_index_samples_distinct_images_of_one_class(digits_train):
    idx = ClassIndex.from_dataset(digits_train)
    g = make_generator(0)
    x = idx.sample(3, 20, g)
    assert x.shape == (20, 1, 8, 8)
    ids = idx.sample_indices(3, 20, make_generator(0))
    assert (digits_train.labels[ids] == 3).all() and ids.unique().numel() == 20
    assert idx.sample(3, 10_000, g).shape[0] == idx.count(3)


def test_missing_files_name_dataset_and_root(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"mnist: files not found under root .*" + tmp_path.name):
        load_dataset("mnist", tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"usps: files not found under root .*usps\.bz2"):
        load_dataset("usps", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet", tmp_path)


def test_real_mnist10k_and_usps_from_shared_data():
    root = shared_data_or_skip()
    mnist = load_dataset("mnist", root, train=False, image_size=32)
    assert mnist.images.shape == (2000, 1, 32, 32) and mnist.labels.bincount().tolist() == [200] * 10
    usps = load_dataset("usps", root, train=True, image_size=28, channels=3)
    assert usps.images.shape == (7291, 3, 28, 28)
