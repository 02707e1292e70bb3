import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import FashionMNIST

from fmnist_lightning import Classifier, Predictions, load_classifier
from fmnist_lightning.data.datamodule import FashionMNISTDataModule
from fmnist_lightning.data.files import CLASS_NAMES
from fmnist_lightning.inference.images import ImageReadError
from fmnist_lightning.models.checkpoint_file import CheckpointError

ATOL = 1e-5


@pytest.fixture(scope="module")
def classifier(tiny_checkpoint) -> Classifier:
    return load_classifier(tiny_checkpoint)


@pytest.fixture(scope="module")
def test_set(synthetic_root) -> tuple[torch.Tensor, torch.Tensor]:
    """The synthetic test split as torchvision reads it: uint8 (N, 28, 28) images and labels."""
    dataset = FashionMNIST(str(synthetic_root), train=False)
    return dataset.data, dataset.targets


@pytest.fixture(scope="module")
def reference(classifier, test_set) -> Predictions:
    return classifier.predict(test_set[0])


def test_predictions_hold_indices_names_and_probabilities(classifier, test_set, reference):
    images, labels = test_set
    assert isinstance(reference, Predictions) and len(reference) == len(images) == 100
    assert reference.indices.shape == (100,) and reference.indices.dtype == torch.int64
    assert reference.probabilities.shape == (100, 10)
    assert torch.allclose(reference.probabilities.sum(1), torch.ones(100), atol=ATOL)
    assert reference.names == [CLASS_NAMES[i] for i in reference.indices]
    assert torch.equal(reference.confidences, reference.probabilities.max(1).values)
    # The tiny model has learnt the synthetic classes, though with modest confidence.
    assert (reference.indices == labels).float().mean() > 0.9
    assert reference.confidences.max() < 0.99


def test_preprocessing_is_the_training_one(classifier, synthetic_root, reference):
    """Raw uint8 through predict == the datamodule's normalised tensors through the module."""
    datamodule = FashionMNISTDataModule(
        root=str(synthetic_root), batch_size=32, eval_batch_size=64, val_fraction=0.2,
        split_seed=0, shuffle_seed=0, mean=classifier.mean, std=classifier.std,
        download=False, on_device=False,
    )  # fmt: skip
    datamodule.setup("test")
    normalised, _ = datamodule.tensors["test"].tensors
    with torch.no_grad():
        expected = classifier.module.predict_step(normalised, 0)
    assert (classifier.mean, classifier.std) == (0.286, 0.353)  # read from the checkpoint
    assert torch.equal(reference.probabilities, expected)


@pytest.mark.parametrize(
    "convert",
    [
        lambda x: x.unsqueeze(1),  # (N, 1, 28, 28) uint8 tensor
        lambda x: x.numpy(),  # (N, 28, 28) uint8 ndarray
        lambda x: x.unsqueeze(1).numpy(),  # (N, 1, 28, 28) uint8 ndarray
        lambda x: x.float() / 255,  # float tensor in [0, 1]
        lambda x: (x.numpy() / 255).astype(np.float64),  # float64 ndarray in [0, 1]
        lambda x: x.long(),  # int64 tensor in [0, 255]
        lambda x: list(x.numpy()),  # a list of (28, 28) arrays
    ],
    ids=["tensor-n1hw", "ndarray-nhw", "ndarray-n1hw", "float", "float64", "int64", "list"],
)
def test_every_array_input_gives_the_same_prediction(classifier, test_set, reference, convert):
    result = classifier.predict(convert(test_set[0]))
    assert torch.equal(result.indices, reference.indices)
    assert torch.allclose(result.probabilities, reference.probabilities, atol=ATOL, rtol=0)


def test_a_single_28x28_image_is_a_batch_of_one(classifier, test_set, reference):
    result = classifier.predict(test_set[0][3])
    assert len(result) == 1
    assert torch.allclose(result.probabilities[0], reference.probabilities[3], atol=ATOL)


def test_pil_images_and_paths_of_any_kind(classifier, test_set, reference, tmp_path):
    images = test_set[0][:6].numpy()
    pil = [Image.fromarray(image) for image in images]
    for index, image in enumerate(pil[:3]):
        image.save(tmp_path / f"{index}.png")
    inputs = [str(tmp_path / "0.png"), tmp_path / "1.png", pil[2], pil[3].convert("RGB"), *pil[4:]]
    result = classifier.predict(inputs)
    assert torch.equal(result.indices, reference.indices[:6])
    assert torch.allclose(result.probabilities, reference.probabilities[:6], atol=ATOL, rtol=0)
    one = classifier.predict(tmp_path / "2.png")  # a lone path
    assert torch.allclose(one.probabilities[0], reference.probabilities[2], atol=ATOL, rtol=0)


def test_png_round_trip_matches_the_dataset_tensor(classifier, test_set, reference, tmp_path):
    """Dataset tensor → PNG file → predict: same class, probabilities within 1e-5."""
    paths = []
    for index, image in enumerate(test_set[0][:20]):
        path = tmp_path / f"item{index}.png"
        Image.fromarray(image.numpy()).save(path)
        paths.append(path)
    result = classifier.predict(paths)
    assert result.names == reference.names[:20]
    assert torch.allclose(result.probabilities, reference.probabilities[:20], atol=ATOL, rtol=0)


def test_light_background_images_are_inverted(classifier, test_set, reference, tmp_path):
    """A dark garment on white (the dataset inverted), as RGB, is classified like the original."""
    path = tmp_path / "light.png"
    Image.fromarray(255 - test_set[0][5].numpy()).convert("RGB").save(path)
    result = classifier.predict([path])
    assert result.names == reference.names[5:6]
    assert torch.allclose(result.probabilities[0], reference.probabilities[5], atol=ATOL, rtol=0)
    not_inverted = classifier.predict([path], invert=False)
    assert not torch.allclose(not_inverted.probabilities[0], reference.probabilities[5], atol=1e-2)


def test_batches_give_the_same_result_as_one_pass(classifier, test_set, reference):
    result = classifier.predict(test_set[0], batch_size=7)
    assert torch.allclose(result.probabilities, reference.probabilities, atol=ATOL, rtol=0)


def test_predict_runs_in_eval_mode_without_gradients_and_restores_the_mode(
    tiny_checkpoint, test_set, reference, tmp_path
):
    checkpoint = torch.load(tiny_checkpoint, weights_only=True)
    checkpoint["hyper_parameters"]["net"]["dropout"] = 0.5  # same weights, now with dropout
    path = tmp_path / "dropout.ckpt"
    torch.save(checkpoint, path)
    classifier = load_classifier(path)
    classifier.module.train()  # as if a notebook had left it in training mode
    result = classifier.predict(test_set[0])
    assert torch.allclose(result.probabilities, reference.probabilities, atol=ATOL, rtol=0)
    assert not result.probabilities.requires_grad
    assert classifier.module.training
    with torch.no_grad():  # the same module in training mode really is random
        dropped = classifier.module.predict_step(classifier.normalised(test_set[0]), 0)
    assert not torch.allclose(dropped, reference.probabilities, atol=1e-3)


def test_empty_input_gives_empty_predictions(classifier):
    result = classifier.predict(np.zeros((0, 28, 28), dtype=np.uint8))
    assert len(result) == 0 and result.probabilities.shape == (0, 10) and result.names == []
    assert len(classifier.predict([])) == 0


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((2, 32, 32), np.uint8), r"Expected images of shape .* got \(2, 32, 32\)"),
        (np.zeros((2, 3, 28, 28), np.uint8), r"got \(2, 3, 28, 28\)"),
        (torch.full((1, 28, 28), -0.4), r"floats in \[0, 1\], got .* \[-0.4, -0.4\].*normalised"),
        (torch.full((1, 28, 28), 300), r"uint8 pixels in \[0, 255\].*torch.int64"),
        (np.ones((1, 28, 28), bool), r"got torch.bool"),
        (np.full((1, 28, 28), 1000, np.uint16), r"uint8 pixels in \[0, 255\].*torch.uint16"),
        (torch.full((1, 28, 28), 70000, dtype=torch.uint32), r"got torch.uint32 with values"),
    ],
)
def test_wrong_arrays_get_a_clear_error(classifier, images, message):
    with pytest.raises(ValueError, match=message):
        classifier.predict(images)


def test_wider_unsigned_pixels_in_range_are_taken_as_uint8(classifier, test_set, reference):
    wide = test_set[0].numpy().astype(np.uint16)
    assert torch.equal(classifier.predict(wide).indices, reference.indices)


@pytest.mark.parametrize("device", ["foo", "cuda:x", "cpu:0:1"])
def test_a_device_that_is_no_device_is_named(tiny_checkpoint, device):
    with pytest.raises(ValueError, match=f"Unknown device '{device}'.*cpu, cuda, cuda:1 or auto"):
        load_classifier(tiny_checkpoint, device=device)


def test_wrong_types_get_a_clear_error(classifier):
    with pytest.raises(TypeError, match="Cannot classify a int"):
        classifier.predict(3)
    with pytest.raises(TypeError, match="Cannot classify a dict: pass file paths"):
        classifier.predict([{}])


def test_unreadable_image_path_names_the_file(classifier, tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("shopping list")
    with pytest.raises(ImageReadError, match="notes.png'.*not an image"):
        classifier.predict([path])


def test_a_file_that_is_no_checkpoint_names_the_path_and_what_was_expected(tmp_path):
    image = tmp_path / "shirt.png"
    Image.new("L", (28, 28)).save(image)
    with pytest.raises(
        CheckpointError, match=r"shirt.png' could not be read as a PyTorch checkpoint"
    ) as error:
        load_classifier(image)
    assert "not the zip archive that torch.save writes" in str(error.value)
    assert "weights_only" not in str(error.value)  # torch's advice to turn safety off
    foreign = tmp_path / "weights.pt"
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 0.1}}, foreign)
    with pytest.raises(
        CheckpointError, match="weights.pt' is not a checkpoint of fmnist-lightning"
    ):
        load_classifier(foreign)


def test_checkpoint_with_weights_of_another_shape_is_named(tiny_checkpoint, tmp_path):
    checkpoint = torch.load(tiny_checkpoint, weights_only=True)
    checkpoint["hyper_parameters"]["net"]["dense"] = [64]
    path = tmp_path / "edited.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError) as error:
        load_classifier(path)
    assert str(error.value).startswith(
        f"'{path}' does not fit the network its hyperparameters build "
        "(net.classifier.1.weight is (32, 784) in the file but (64, 784) in the network; "
    )
    assert "\n" not in str(error.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the error on machines without CUDA")
def test_asking_for_a_missing_gpu_says_so(tiny_checkpoint):
    with pytest.raises(ValueError, match="'cuda' was requested but CUDA is not available"):
        load_classifier(tiny_checkpoint, device="cuda")
    assert load_classifier(tiny_checkpoint, device="auto").device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_predicts_on_the_gpu(tiny_checkpoint, test_set, reference):
    gpu = load_classifier(tiny_checkpoint, device="cuda")
    assert gpu.device.type == "cuda"
    result = gpu.predict(test_set[0])
    assert result.probabilities.device.type == "cpu"
    assert torch.equal(result.indices, reference.indices)
    assert torch.allclose(result.probabilities, reference.probabilities, atol=1e-4, rtol=0)
