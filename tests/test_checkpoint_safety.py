"""A checkpoint's hyperparameters are data: loading one never calls code the project did not choose.

Every way in is tried with hyperparameters that hold ``_target_`` dicts pointing at
``helpers.recording.record``: the project's loaders, Lightning's own
``LightningModule.load_from_checkpoint``, the module's constructor, the commands, and
``ckpt_path=`` / ``resume=`` / ``model.init_from`` / ``model.weights`` of training. Each
must refuse the file with an error that names the key, and the recorder must never run.
"""

import copy
import inspect
from pathlib import Path
from typing import Any

import lightning
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lightning.pytorch.core.saving import _load_from_checkpoint

from fmnist_lightning import cli, load_classifier
from fmnist_lightning.config.schema import ConfigValidationError
from fmnist_lightning.models.checkpoint_file import CheckpointError, read_checkpoint
from fmnist_lightning.models.hparams import HParams, HyperparameterError
from fmnist_lightning.models.module import FashionMNISTModule, load_module
from fmnist_lightning.predict import main as predict_main
from fmnist_lightning.train import train
from helpers import recording
from helpers.compose import tiny

CLASS_NAMES = [str(i) for i in range(10)]
RECORD = {"_target_": recording.TARGET}
SMALL_MODEL = ["model.net.blocks=[[8],[16]]", "model.net.dense=[16]"]


def valid_hparams() -> dict[str, Any]:
    return {
        "net": {
            "_target_": "fmnist_lightning.models.vgg.VGGStyleCNN",
            "blocks": [[4], [8]],
            "dense": [16],
            "dropout": 0.0,
        },
        "optimizer": {"_target_": "torch.optim.AdamW", "lr": 1e-3, "weight_decay": 0.0},
        "scheduler": {
            "interval": "step",
            "schedule": {
                "_target_": "torch.optim.lr_scheduler.OneCycleLR",
                "max_lr": 1e-3,
                "total_steps": "auto",
                "pct_start": 0.2,
            },
        },
        "label_smoothing": 0.0,
        "class_names": list(CLASS_NAMES),
        "mean": 0.286,
        "std": 0.353,
        "channels_last": False,
        "compile": False,
        "head_lr": None,
    }


# The state dict of a module built from ``valid_hparams``.
WEIGHTS = FashionMNISTModule(**valid_hparams()).state_dict()


@pytest.fixture
def weights() -> dict[str, torch.Tensor]:
    return WEIGHTS


@pytest.fixture(autouse=True)
def no_calls_recorded():
    recording.CALLS.clear()
    yield
    assert recording.CALLS == [], "a _target_ from a checkpoint was called"


def save(path: Path, hparams: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> Path:
    # The version key: Lightning's own loader migrates checkpoints by it.
    checkpoint = {"state_dict": state_dict, "hyper_parameters": hparams}
    torch.save({**checkpoint, "pytorch-lightning_version": lightning.__version__}, path)
    return path


def changed(path: str, value: Any) -> dict[str, Any]:
    """``valid_hparams`` with the value at a dotted path (``net.blocks.0``) replaced."""
    hparams = valid_hparams()
    *parents, last = path.split(".")
    node: Any = hparams
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[int(last) if isinstance(node, list) else last] = value
    return hparams


# (where, what): each a hyperparameter that would call something, and the key the error names.
HOSTILE = [
    ("net.dropout", RECORD, "net.dropout"),
    ("net.blocks.0", [RECORD], "net.blocks[0][0]"),
    ("net.dense", {"_target_": "builtins.list", "_args_": [[RECORD]]}, "net.dense"),
    ("net._target_", recording.TARGET, "net._target_"),
    ("net._args_", [1], "net._args_"),
    ("net._partial_", True, "net._partial_"),
    ("optimizer._target_", recording.TARGET, "optimizer._target_"),
    ("optimizer._target_", "torch.optim.lr_scheduler.OneCycleLR", "optimizer._target_"),
    ("optimizer.lr", RECORD, "optimizer.lr"),
    ("scheduler.schedule._target_", recording.TARGET, "scheduler.schedule._target_"),
    ("scheduler.schedule._target_", "torch.optim.AdamW", "scheduler.schedule._target_"),
    ("scheduler.schedule.max_lr", {**RECORD, "_partial_": True}, "scheduler.schedule.max_lr"),
    ("scheduler.schedule._convert_", "all", "scheduler.schedule._convert_"),
    ("class_names.0", RECORD, "class_names[0]"),
    ("label_smoothing", RECORD, "label_smoothing"),
    ("head_lr", {"_recursive_": False}, "head_lr"),
]


@pytest.mark.parametrize(("where", "value", "key"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_every_loader_refuses_hyperparameters_that_would_call_something(
    where, value, key, weights, tmp_path
):
    path = save(tmp_path / "hostile.ckpt", changed(where, value), weights)
    loaders = {
        "read_checkpoint": read_checkpoint,
        "load_module": load_module,
        "load_classifier": load_classifier,
        "FashionMNISTModule.load_from_checkpoint": FashionMNISTModule.load_from_checkpoint,
    }
    for name, load in loaders.items():
        with pytest.raises(CheckpointError) as refused:
            load(path)
        message = str(refused.value)
        assert str(path) in message and key in message, (name, message)
    # Lightning's own loader calls the constructor with the stored hyperparameters.
    with pytest.raises(HyperparameterError, match=key.replace("[", r"\[").replace(".", r"\.")):
        _load_from_checkpoint(FashionMNISTModule, path)
    with pytest.raises(HyperparameterError):
        FashionMNISTModule(**changed(where, value))


def test_the_reported_exploit_no_longer_truncates_a_file(weights, tmp_path, capsys):
    """A network argument that Hydra would build recursively: len([open(FILE, "w")])."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    opener = {"_target_": "builtins.open", "_args_": [str(victim), "w"]}
    hostile = changed("net.dropout", {"_target_": "builtins.len", "_args_": [[opener]]})
    path = save(tmp_path / "exploit.ckpt", hostile, weights)
    image = tmp_path / "image.png"
    from PIL import Image

    Image.new("L", (28, 28)).save(image)
    with pytest.raises(SystemExit, match="2"):  # through the front: one line, exit status 2
        cli.run(lambda: predict_main([str(path), str(image), "-o", str(tmp_path / "out.csv")]))
    assert "net.dropout" in capsys.readouterr().err
    assert victim.read_text() == "precious"
    assert not (tmp_path / "out.csv").exists()


def test_a_checkpoint_of_the_legacy_layout_is_checked_after_its_upgrade(weights, tmp_path):
    legacy = valid_hparams()
    legacy["model"] = {**legacy.pop("net"), "dropout": RECORD}
    legacy["model"]["_target_"] = "fmnist_lightning.network.VGGStyleCNN"
    legacy["scheduler"] = {**legacy["scheduler"]["schedule"], "interval": "step"}
    for key in ("channels_last", "compile", "head_lr"):
        legacy["model"][key] = legacy.pop(key)
    path = save(tmp_path / "legacy.ckpt", legacy, weights)
    with pytest.raises(CheckpointError, match="net.dropout"):
        load_module(path)


@pytest.mark.parametrize(
    ("hparams", "message"),
    [
        ({**valid_hparams(), "extra": 1}, "extra is not a hyperparameter of FashionMNISTModule"),
        ({k: v for k, v in valid_hparams().items() if k != "std"}, "std is missing"),
        ({**valid_hparams(), "mean": "abc"}, "mean='abc' must be a number"),
        ({**valid_hparams(), "compile": "yes"}, "compile='yes' must be true or false"),
        ({**valid_hparams(), "class_names": "abc"}, "class_names must be a list of strings"),
        (changed("net.no_such_argument", 1), "net.no_such_argument is not an argument of"),
        (changed("optimizer.no_such_argument", 1), "optimizer.no_such_argument is not an arg"),
        (changed("scheduler.interval", "often"), "scheduler.interval='often' must be one of"),
        (changed("net.blocks", {1: 2}), "net.blocks has a key that is not a string"),
        (changed("net.dropout", torch.tensor(0.5)), "net.dropout holds a Tensor"),
    ],
)
def test_hyperparameters_outside_the_schema_are_refused_by_name(hparams, message):
    with pytest.raises(HyperparameterError, match=message.replace("(", r"\(")):
        HParams.of(hparams)


def test_valid_hyperparameters_build_the_module_without_hydra(monkeypatch):
    import hydra.utils

    def no_instantiate(*args, **kwargs):
        raise AssertionError("the module must not build anything through hydra.utils.instantiate")

    monkeypatch.setattr(hydra.utils, "instantiate", no_instantiate)
    module = FashionMNISTModule(**valid_hparams())
    assert module(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


# --- Training: ckpt_path=, resume=, model.init_from, model.weights -----------------------


@pytest.fixture(scope="module")
def finished_run(synthetic_root, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    train(tiny(synthetic_root, run_dir, *SMALL_MODEL, "trainer.max_epochs=1", "~analysis"))
    return run_dir


def hostile_copy(source: Path, target: Path) -> Path:
    """``source`` (a full training checkpoint) with a network argument that would call the recorder."""
    checkpoint = torch.load(source, weights_only=True)
    checkpoint["hyper_parameters"]["net"]["dropout"] = RECORD
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, target)
    return target


def test_ckpt_path_is_checked_before_lightning_reads_it(finished_run, synthetic_root, tmp_path):
    hostile = hostile_copy(finished_run / "checkpoints" / "last.ckpt", tmp_path / "loose.ckpt")
    run_dir = tmp_path / "new-run"
    with pytest.raises(CheckpointError, match="net.dropout"):
        train(tiny(synthetic_root, run_dir, *SMALL_MODEL, f"ckpt_path={hostile}"))
    assert not (run_dir / "checkpoints").exists()


def test_resume_checks_the_runs_checkpoint(finished_run, synthetic_root, tmp_path):
    run_dir = tmp_path / "copy"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text((finished_run / "config.yaml").read_text())
    hostile_copy(finished_run / "checkpoints" / "last.ckpt", run_dir / "checkpoints" / "last.ckpt")
    with pytest.raises(CheckpointError, match="last.ckpt.*net.dropout"):
        train(tiny(synthetic_root, run_dir, f"resume={run_dir}"))


def test_init_from_checks_the_checkpoint(finished_run, synthetic_root, tmp_path):
    hostile = hostile_copy(finished_run / "checkpoints" / "last.ckpt", tmp_path / "start.ckpt")
    with pytest.raises(CheckpointError, match="start.ckpt.*net.dropout"):
        train(tiny(synthetic_root, tmp_path / "run", *SMALL_MODEL, f"model.init_from={hostile}"))


@pytest.mark.parametrize(
    "content",
    [{"conv1.weight": {"_target_": recording.TARGET}}, {"conv1.weight": [torch.zeros(1)]}],
    ids=["target", "list"],
)
def test_model_weights_must_be_a_dict_of_tensors(content, synthetic_root, tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(content, path)
    cfg = tiny(synthetic_root, tmp_path / "run", "model=resnet18", f"model.weights={path}")
    with pytest.raises((ValueError, ConfigValidationError), match="not a state dict"):
        train(cfg)


# --- Fuzz: _target_s anywhere --------------------------------------------------------------

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples on every run
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
RESERVED = ["_target_", "_args_", "_partial_", "_recursive_", "_convert_"]
# Callables outside the allowlist, and allowlisted names in the wrong place.
TARGETS = [
    recording.TARGET,
    "builtins.open",
    "builtins.eval",
    "os.system",
    "torch.load",
    "torch.optim.lr_scheduler.OneCycleLR",
    "torch.optim.Adam",
    "fmnist_lightning.models.vgg.conv_block",
    "fmnist_lightning.models.vgg.VGGStyleCNN",
]
plain = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.floats(-2, 2) | st.text(max_size=4),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)
call = st.fixed_dictionaries(
    {"_target_": st.sampled_from(TARGETS)},
    optional={"_args_": st.lists(plain, max_size=2), "_partial_": st.booleans()},
)
payload = st.recursive(
    call,
    lambda children: (
        st.lists(children, min_size=1, max_size=2)
        | st.dictionaries(st.sampled_from(["a", "_target_", "_args_"]), children, min_size=1)
    ),
    max_leaves=4,
)


def inject(hparams: dict[str, Any], data: st.DataObject) -> None:
    """Put a payload (or a reserved key) somewhere in the hyperparameters, at any depth."""
    node: Any = hparams
    while True:
        if isinstance(node, dict):
            key = data.draw(st.sampled_from([*node, "extra", *RESERVED]))
        else:
            key = data.draw(st.integers(0, max(len(node) - 1, 0)))
            if not node:
                node.append(None)
        child = node[key] if isinstance(node, list) or key in node else None
        if isinstance(child, (dict, list)) and data.draw(st.booleans()):
            node = child
            continue
        if isinstance(key, str) and key in RESERVED:
            node[key] = data.draw(st.sampled_from(TARGETS) | payload)
        else:
            node[key] = data.draw(payload)
        return


def construct(hparams: dict[str, Any]) -> FashionMNISTModule:
    """The constructor called directly; a top-level key it does not take, Python itself refuses."""
    if not set(hparams) <= set(inspect.signature(FashionMNISTModule).parameters):
        raise HyperparameterError("Python refuses an unknown keyword argument", "")
    return FashionMNISTModule(**copy.deepcopy(hparams))


@FUZZ
@given(data=st.data())
def test_fuzz_targets_anywhere_never_reach_a_call_outside_the_allowlist(data, tmp_path):
    hparams = valid_hparams()
    for _ in range(data.draw(st.integers(0, 3))):
        inject(hparams, data)
    path = save(tmp_path / "fuzz.ckpt", copy.deepcopy(hparams), WEIGHTS)
    outcomes = []
    for load in (
        lambda: construct(hparams),
        lambda: _load_from_checkpoint(FashionMNISTModule, path),
        lambda: load_module(path),
    ):
        try:
            outcomes.append(type(load()).__name__)
        except (CheckpointError, HyperparameterError) as error:
            assert "\n" not in str(error)
            outcomes.append("refused")
    assert recording.CALLS == []
    if recording.TARGET in repr(hparams):  # Lightning's loader drops unknown top-level keys
        assert outcomes[0] == outcomes[2] == "refused"
    assert set(outcomes) <= {"FashionMNISTModule", "refused"}
