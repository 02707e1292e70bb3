import pytest
import torch

from fmnist_lightning.models.checkpoint_file import CheckpointError, read_checkpoint
from fmnist_lightning.models.module import FashionMNISTModule, load_module
from fmnist_lightning.models.vgg import VGGStyleCNN
from helpers.modules import tiny_module


def small_classifier() -> FashionMNISTModule:
    return tiny_module(
        blocks=[[4], [8]], dense=[16], class_names=[str(i) for i in range(10)], mean=0.5, std=0.25
    )


def test_round_trip_restores_weights_and_hyperparameters(tmp_path):
    original = small_classifier()
    path = tmp_path / "model.ckpt"
    torch.save(
        {"state_dict": original.state_dict(), "hyper_parameters": dict(original.hparams)}, path
    )
    loaded = load_module(path)
    assert not loaded.training
    assert loaded.hparams.mean == 0.5 and loaded.class_names == [str(i) for i in range(10)]
    images = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(images), original.eval()(images))


def test_missing_path_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint file at .*nothing.ckpt"):
        load_module(tmp_path / "nothing.ckpt")


def test_garbage_file_is_named(tmp_path):
    path = tmp_path / "notes.ckpt"
    path.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.ckpt' could not be read"):
        load_module(path)


def test_foreign_checkpoint_is_named(tmp_path):
    path = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": VGGStyleCNN().state_dict()}, path)
    with pytest.raises(
        CheckpointError, match="foreign.ckpt' is not a checkpoint of fmnist-lightning"
    ):
        load_module(path)


def test_a_network_that_is_not_the_projects_is_refused_before_anything_is_built(tmp_path):
    module = small_classifier()
    hparams = {**module.hparams, "net": {"_target_": "torch.nn.Identity"}}
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": hparams}, path)
    with pytest.raises(CheckpointError, match="other.ckpt' cannot be loaded: net._target_="):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="is not a network of this project"):
        FashionMNISTModule.load_from_checkpoint(path)
