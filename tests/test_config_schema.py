"""The config is checked before any work: keys and types by the schema as Hydra composes,
ranges and cross-key rules by validate_config, each error printed as one line."""

import os
import pydoc
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf import OmegaConf

from fmnist_lightning.analysis import run_files
from fmnist_lightning.config.messages import error_message, preflight_problem
from fmnist_lightning.config.overrides import check_overrides, command_line_problem
from fmnist_lightning.config.paths import CONFIG_DIR
from fmnist_lightning.config.schema import (
    ConfigValidationError,
    run_folder_problem,
    validate_config,
)
from fmnist_lightning.data.files import DataError
from fmnist_lightning.models import registry
from fmnist_lightning.models.checkpoint_file import CheckpointError
from fmnist_lightning.train import train
from helpers.commands import run_train
from helpers.compose import compose as compose_config
from helpers.compose import tiny


def known_models() -> list[str]:
    return sorted(path.stem for path in (Path(CONFIG_DIR) / "model").glob("*.yaml"))


TYPOS = [
    ("data.batchsize=64", "batchsize"),
    ("trainer.max_epoch=3", "max_epoch"),
    ("model.net.dropuot=0.1", "dropuot"),
    ("optimizer.learning_rate=0.1", "learning_rate"),
    ("callbacks.early_stopping.patiance=2", "patiance"),
    ("label_smothing=0.2", "label_smothing"),
]


@pytest.mark.parametrize(("override", "key"), TYPOS)
def test_the_schema_rejects_unknown_keys_with_the_key_named(override, key):
    with pytest.raises(ConfigCompositionException) as error:
        compose_config("train", [override])
    full_key = override.split("=")[0]
    assert f"Could not override '{full_key}'" in str(error.value)
    assert f"Key '{key}'" in str(error.value.__cause__)
    message = error_message(error.value)
    assert message.startswith("Error: ") and full_key in message and "\n" not in message


def test_a_typo_suggests_the_key_it_resembles():
    with pytest.raises(ConfigCompositionException) as error:
        compose_config("train", ["data.batchsize=64"])
    assert "did you mean data.batch_size?" in error_message(error.value)


def test_the_schema_also_holds_inside_an_experiment_preset():
    with pytest.raises(ConfigCompositionException) as error:
        compose_config("train", ["experiment=seed_keras", "data.batchsize=64"])
    assert "Key 'batchsize'" in str(error.value.__cause__)


# Values of the wrong type: OmegaConf refuses them as Hydra composes, naming the key.
WRONG_TYPES = [
    ("data.batch_size=2.5", "data.batch_size"),
    ("data.batch_size=abc", "data.batch_size"),
    ("data.batch_size=true", "data.batch_size"),
    ("data.mean=abc", "data.mean"),
    ("seed=abc", "seed"),
    ("model.channels_last=maybe", "model.channels_last"),
    ("~data.batch_size", "data.batch_size"),  # a key without which nothing runs
]


@pytest.mark.parametrize(("override", "key"), WRONG_TYPES)
def test_values_of_the_wrong_type_are_refused_with_the_key_named(override, key):
    with pytest.raises(ConfigCompositionException) as error:
        compose_config("train", [override])
    message = error_message(error.value)
    assert key in message and "\n" not in message


@pytest.fixture
def compose(tmp_path):
    """The training config as train() gets it, with the run folder that the CLI would set."""
    return lambda overrides: compose_config("train", [f"paths.run_dir={tmp_path}", *overrides])


OUT_OF_RANGE = [
    ("optimizer.lr=0", "optimizer.lr=0 is out of range: it must be > 0"),
    ("optimizer.lr=-0.001", "optimizer.lr=-0.001 is out of range: it must be > 0"),
    ("optimizer.lr=nan", "optimizer.lr=nan is out of range"),
    ("optimizer.lr=inf", "optimizer.lr=inf is out of range"),
    ("data.val_fraction=0", "data.val_fraction=0.0 is out of range: it must be in (0, 1)"),
    ("data.val_fraction=1.0", "data.val_fraction=1.0 is out of range: it must be in (0, 1)"),
    ("data.batch_size=0", "data.batch_size=0 is out of range: it must be >= 1"),
    ("data.batch_size=-32", "data.batch_size=-32 is out of range: it must be >= 1"),
    ("data.eval_batch_size=0", "data.eval_batch_size=0 is out of range: it must be >= 1"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0 is out of range: it must be >= 1"),
    ("trainer.max_epochs=-1", "trainer.max_epochs=-1 is out of range: it must be >= 1"),
    ("model.net.dropout=1.0", "model.net.dropout=1.0 is out of range: it must be in [0, 1)"),
    ("model.net.dropout=-0.1", "model.net.dropout=-0.1 is out of range: it must be in [0, 1)"),
    ("label_smoothing=1", "label_smoothing=1.0 is out of range: it must be in [0, 1)"),
    ("seed=-1", "seed=-1 is out of range: it must be in [0, 4294967295]"),
    ("optimizer.lr=fast", "optimizer.lr='fast' must be a number > 0"),
    ("trainer.max_epochs=2.5", "trainer.max_epochs=2.5 must be an integer >= 1"),
    ("model.net._target_=fmnist_lightning.models.vgg.NoSuchNet", "is not a network of this"),
    ("model.net._target_=no_such_package.Net", "is not a network of this project"),
    ("model.net._target_=torch.optim.Adam", "is not a network of this project"),
    ("model.net._target_=torchvision.models.resnet18", "is not a network of this project"),
    ("model.net.kernel_size=0", "model.net.kernel_size=0 is out of range: it must be >= 1"),
    ("model.net.first_kernel_size=0", "model.net.first_kernel_size=0 is out of range"),
    ("model.net.in_channels=3", "model.net.in_channels=3: Fashion-MNIST images have 1 channel"),
    ("data.mean=2", "data.mean=2.0 is out of range: it must be in [0, 1]"),
    ("data.augment.flip_p=1.5", "data.augment.flip_p=1.5 is out of range: it must be in [0, 1]"),
    ("data.augment.erase_p=-1", "data.augment.erase_p=-1 is out of range: it must be in [0, 1]"),
    ("data.augment.crop_padding=-1", "data.augment.crop_padding=-1 is out of range"),
    ("optimizer._target_=torch.nn.Linear", "optimizer._target_='torch.nn.Linear' is not a "),
    ("+scheduler.schedule.warmup=3", "scheduler.schedule.warmup is not an argument of OneCycleLR"),
    (
        "callbacks.early_stopping.monitor=val_accuracy",
        "callbacks.early_stopping.monitor='val_accuracy' is not a metric the model logs in training",
    ),
    (
        "callbacks.model_checkpoint.monitor=test_acc",
        "callbacks.model_checkpoint.monitor='test_acc' is not a metric the model logs in training",
    ),
    ("model.weights=/w.pt", "model.weights and model.init_from are both set"),
    (
        "trainer.check_val_every_n_epoch=0",
        "trainer.check_val_every_n_epoch=0 is out of range: it must be >= 1",
    ),
]


@pytest.mark.parametrize(("override", "message"), OUT_OF_RANGE)
def test_values_out_of_range_name_the_key_the_value_and_the_range(compose, override, message):
    cfg = compose([override, *(["model.init_from=/c.ckpt"] if "weights" in override else [])])
    with pytest.raises(ConfigValidationError) as error:
        validate_config(cfg)
    assert message in str(error.value)
    assert "\n" not in str(error.value)  # one line


def test_a_validation_schedule_that_skips_the_last_epoch_is_refused(compose):
    """Validating every 3rd epoch of 4: the fourth could never be the tested checkpoint."""
    with pytest.raises(ConfigValidationError) as error:
        validate_config(compose(["experiment=speedrun", "trainer.max_epochs=4"]))
    assert (
        "trainer.check_val_every_n_epoch=3 does not divide trainer.max_epochs=4: the last 1 "
        "epoch(s) would never be validated"
    ) in str(error.value)
    assert "set trainer.max_epochs to a multiple of 3" in str(error.value)
    validate_config(compose(["experiment=speedrun", "trainer.max_epochs=9"]))


def test_an_unknown_model_lists_the_model_configs_to_choose_from(compose):
    with pytest.raises(ConfigValidationError, match="choose one of model=cnn"):
        validate_config(compose(["model.net._target_=mymodels.Net"]))


def test_every_problem_is_reported_at_once(compose):
    cfg = compose(["optimizer.lr=0", "data.batch_size=0", "model.net.dropout=1"])
    with pytest.raises(ConfigValidationError) as error:
        validate_config(cfg)
    for key in ("optimizer.lr=0", "data.batch_size=0", "model.net.dropout=1"):
        assert key in str(error.value)


@pytest.mark.parametrize("tta", [None, {"flip": True, "shift": 0}], ids=["plain", "tta"])
def test_the_monitorable_metrics_are_what_the_module_logs(synthetic_root, tmp_path, tta):
    """FashionMNISTModule.logged_metrics() (what validate_config checks monitors against)
    names exactly what a fit and a test log, with and without test-time augmentation."""
    import lightning as L

    from fmnist_lightning.models.module import FashionMNISTModule
    from helpers.data import make_datamodule
    from helpers.modules import tiny_module

    module = tiny_module(tta=tta)
    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_train_batches=2,
        limit_val_batches=1, limit_test_batches=1, num_sanity_val_steps=0,
    )  # fmt: skip
    datamodule = make_datamodule(synthetic_root)
    trainer.fit(module, datamodule=datamodule)
    fit = FashionMNISTModule.logged_metrics("fit", tta=tta is not None)
    assert set(trainer.callback_metrics) == set(fit)
    assert ("val_acc_tta" in fit) == (tta is not None)
    trainer.test(module, datamodule=datamodule)
    test = FashionMNISTModule.logged_metrics("test", tta=tta is not None)
    assert set(trainer.callback_metrics) == set(test)


def test_a_monitor_on_the_tta_accuracy_is_accepted_only_with_tta(compose):
    monitor = "callbacks.model_checkpoint.monitor=val_acc_tta"
    validate_config(compose([monitor, "tta=flip"]))
    with pytest.raises(ConfigValidationError, match="val_acc_tta' is not a metric the model logs"):
        validate_config(compose([monitor, "tta=none"]))


PRESETS = {
    "typo": ("# @package _global_\nlabel_smothing: 0.0\n", "Key 'label_smothing' not in"),
    "no_package": ("trainer:\n  max_epochs: 3\n", "needs '# @package _global_'"),
    "bad_argument": (
        "# @package _global_\ncallbacks:\n  early_stopping:\n    patiance: 2\n",
        "callbacks.early_stopping.patiance is not an argument of EarlyStopping",
    ),
}


@pytest.fixture
def presets(tmp_path) -> str:
    """A config folder of experiment presets, for hydra.searchpath; see PRESETS."""
    folder = tmp_path / "my_conf" / "experiment"
    folder.mkdir(parents=True)
    for name, (text, _) in PRESETS.items():
        (folder / f"{name}.yaml").write_text(text)
    (folder / "broken.yaml").write_text("# @package _global_\ntrainer:\n  max_epochs: [3\n")
    return f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]"


def problem(compose, overrides: list[str]) -> str:
    """The one line the command line prints for a config refused composing or validating."""
    with pytest.raises(Exception) as error:  # Hydra's, OmegaConf's, YAML's or ours
        validate_config(compose(overrides))
    return error_message(error.value)


@pytest.mark.parametrize("name", PRESETS)
def test_a_mistake_inside_a_preset_file_is_caught(compose, presets, name):
    message = problem(compose, [presets, f"experiment={name}"])
    assert PRESETS[name][1] in message and "\n" not in message


def test_a_typo_in_a_preset_suggests_the_key_it_resembles(compose, presets):
    assert "did you mean label_smoothing" in problem(compose, [presets, "experiment=typo"])


def test_a_yaml_error_in_a_preset_is_one_line_naming_the_file_and_line(presets, tmp_path):
    found = problem(lambda o: compose_config("train", o), [presets, "experiment=broken"])
    assert "\n" not in found and "broken.yaml" in found and "line 4" in found
    assert preflight_problem("train", [presets, "experiment=broken"]) is None  # not a folder


def test_a_run_folder_that_cannot_be_created_is_caught_before_hydra_runs(tmp_path, compose):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    problem = preflight_problem("train", [f"paths.root={blocker}"])
    assert problem is not None and "paths.root" in problem and "a-file" in problem
    with pytest.raises(ConfigValidationError, match="cannot be created"):
        validate_config(compose_config("train", [f"paths.run_dir={blocker / 'run'}"]))
    assert preflight_problem("train", [f"paths.root={tmp_path}"]) is None


def test_a_read_only_run_folder_is_named(tmp_path, monkeypatch):
    import tempfile

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    problem = run_folder_problem(tmp_path / "runs" / "x", "paths.root")
    assert f"'{tmp_path}' is not writable" in problem and "paths.root=" in problem


def test_an_unresolvable_interpolation_is_reported_with_its_key():
    cfg = compose_config("train", ["data.root=${oc.env:FMNIST_NO_SUCH_VARIABLE}"])
    with pytest.raises(
        ConfigValidationError, match=r"data\.root cannot be resolved.*FMNIST_NO_SUCH"
    ):
        validate_config(cfg)


def test_composing_in_python_without_a_run_folder_says_what_to_pass():
    with pytest.raises(ConfigValidationError, match="pass paths.run_dir=<folder>"):
        validate_config(compose_config("train", []))


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["experiment=seed_keras"],
        ["optimizer=adam", "scheduler=none"],
        ["optimizer=sgd"],
        # The edges of each range are allowed.
        [
            "model.net.dropout=0",
            "data.val_fraction=0.999",
            "data.batch_size=1",
            "trainer.max_epochs=1",
        ],
        ["label_smoothing=0", "optimizer.lr=1e-9", "optimizer.weight_decay=0"],
        # Keys without a range are not the schema's business: adding one is allowed.
        ["data/augment=standard", "+trainer.strategy=ddp"],
        # Every network of the registry, and the experiments that need no extra argument.
        ["model=resnet18", "model.net.freeze_backbone=true", "model.head_lr=0.01"],
        ["experiment=best"],
        ["experiment=resnet18"],
        ["experiment=finetune", "model.init_from=/some/run/checkpoints/last.ckpt"],
        # Monitors of the metrics the model logs while it trains.
        ["callbacks.early_stopping.monitor=train_loss_epoch"],
        ["callbacks.model_checkpoint.monitor=null"],
        # Every debug preset.
        ["debug=tiny"],
        ["debug=fast_dev_run"],
        ["debug=overfit"],
        ["debug=limit"],
        ["debug=benchmark"],
        # Quick checks of the speedrun validate every epoch (it validates every third).
        ["experiment=speedrun", "debug=limit"],
        ["experiment=speedrun", "debug=benchmark"],
        ["experiment=speedrun", "debug=fast_dev_run"],
    ],
)
def test_valid_configs_pass(compose, overrides):
    validate_config(compose(overrides))


@pytest.mark.parametrize("model", known_models())
def test_every_shipped_model_config_passes(compose, model):
    validate_config(compose([f"model={model}"]))


def test_train_rejects_a_bad_config_before_reading_data_or_writing(tmp_path):
    run_dir = tmp_path / "run"
    # With the data missing too, the config error must come first: nothing was read.
    with pytest.raises(ConfigValidationError, match="optimizer.lr=0"):
        train(tiny(tmp_path / "no-data-here", run_dir, "optimizer.lr=0"))
    assert not run_dir.exists()


def test_a_split_without_a_batch_stops_before_training(synthetic_root, tmp_path):
    with pytest.raises(DataError, match="data.val_fraction=0.999999 leaves 0 of the 400"):
        train(tiny(synthetic_root, tmp_path, "data.val_fraction=0.999999"))
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing trained, nothing written


@pytest.mark.parametrize("content", [None, b"not a checkpoint"], ids=["missing", "garbage"])
def test_a_missing_or_bad_ckpt_path_stops_before_training(synthetic_root, tmp_path, content):
    path = tmp_path / "start.ckpt"
    if content is not None:
        path.write_bytes(content)
    expected = "No checkpoint file at" if content is None else "could not be read"
    with pytest.raises(CheckpointError, match=expected):
        train(tiny(synthetic_root, tmp_path / "run", f"ckpt_path={path}"))
    assert not (tmp_path / "run").exists()


# Hydra 1.3 answers these with a stack trace from its internals; check_overrides answers first.
MALFORMED_OVERRIDES = [
    ("model=0", "group 'model' takes the name of one of its configs, not 0 (quote a name"),
    ("~model=1.5", "group 'model' takes the name of one of its configs, not 1.5"),
    ("scheduler=[1,2]", "group 'scheduler' takes the name of one of its configs, not 1"),
    ("experiment=null", "'experiment=null' is not a config name; to drop the config of group"),
    ("=0", "'=0' has no key; write key=value"),
    ("+=", "'+=' has no key"),
]

# Well-formed, but not what they look like: answered before Hydra runs.
MISREAD_OVERRIDES = [
    (
        "data.augment=standard",
        "sets data.augment to a string; to pick the preset write data/augment=standard",
    ),
    ("hydra.launcher=joblib", "to pick the preset write hydra/launcher=joblib"),
    (
        "model.dropout=0.3",
        "the network's arguments are under model.net; write model.net.dropout=0.3",
    ),
    ("~model.blocks", "write ~model.net.blocks"),
]


@pytest.mark.parametrize(("override", "message"), MISREAD_OVERRIDES)
def test_overrides_that_hydra_would_misread_get_a_message(override, message):
    with pytest.raises(ConfigValidationError) as error:
        check_overrides([override])
    assert str(error.value).startswith("Invalid override: ") and message in str(error.value)


@pytest.mark.parametrize(("override", "message"), MALFORMED_OVERRIDES)
def test_overrides_hydra_would_crash_on_get_a_message(compose, override, message):
    with pytest.raises(Exception) as crash:
        compose([override])
    assert not isinstance(crash.value, HydraException)  # ValueError, TypeError, AssertionError
    with pytest.raises(ConfigValidationError) as error:
        check_overrides(["trainer.max_epochs=1", override])
    assert str(error.value).startswith("Invalid override: ") and message in str(error.value)


@pytest.mark.parametrize(
    "override",
    [
        "model=cnn",
        "~experiment",
        "experiment=seed_keras",
        "model='0'",
        "hydra/launcher=basic",
        "data.batch_size=0",
        "model.net.dropout=null",
        "+model.extra=1",
        "model.channels_last=false",
        "data.augment.erase=true",
        "~model",
        "model=cnn,cnn",
        "not [valid",
    ],
)
def test_well_formed_overrides_are_left_to_hydra_and_the_schema(override):
    check_overrides([override])


def test_the_command_line_check_skips_flags_and_says_one_line():
    assert command_line_problem(["-m", "--cfg", "job", "model=cnn"]) is None
    problem = command_line_problem(["--multirun", "experiment=null"])
    assert problem.startswith("Invalid override: 'experiment=null'")
    # Each job of a sweep would crash in Hydra the same way.
    problem = command_line_problem(["-m", "model=cnn,3"])
    assert "group 'model' takes the name of one of its configs, not 3" in problem


def run_cli(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "fmnist_lightning.train", f"paths.root={cwd}", *overrides]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


@pytest.mark.slow
def test_cli_reports_a_typo_and_a_bad_value_without_a_stack_trace(
    tmp_path, presets, monkeypatch, capsys
):
    # A real process once (the command line's own output); the other refusals in-process.
    typo = run_cli("data.batchsize=64", cwd=tmp_path)
    assert typo.returncode == 2
    assert "Key 'batchsize' not in" in typo.stderr and "did you mean data.batch_size" in typo.stderr
    assert len(typo.stderr.strip().splitlines()) == 1

    def run(*overrides: str) -> tuple[int, str]:
        root = f"paths.root={tmp_path}"
        return run_train(root, *overrides, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)

    # data.augment.flip_p: refused by the schema's ranges, not by BatchAugment's traceback
    status, stderr = run(
        "optimizer.lr=0",
        "model.net.dropout=1.5",
        "data.augment.flip_p=1.5",
        f"data.root={tmp_path}",
    )
    assert status == 2
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert lines == [
        "Error: Invalid config: data.augment.flip_p=1.5 is out of range: it must be in [0, 1]; "
        "model.net.dropout=1.5 is out of range: it must be in [0, 1); "
        "optimizer.lr=0 is out of range: it must be > 0"
    ]
    assert list((tmp_path / "runs").glob("*")) == []  # refused: no run folder left behind

    status, stderr = run(presets, "experiment=broken")  # YAML syntax
    assert status == 2
    assert stderr.strip().startswith("Error: ") and "broken.yaml" in stderr
    assert len(stderr.strip().splitlines()) == 1

    status, stderr = run("experiment=null")
    assert status == 2
    assert stderr.startswith("Error: Invalid override: 'experiment=null'")
    assert "Traceback" not in stderr


# --- The config agrees with the code ----------------------------------------------------


def yaml_files() -> list[Path]:
    return sorted(Path(CONFIG_DIR).rglob("*.yaml"))


def targets(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["_target_"]] if isinstance(node.get("_target_"), str) else []
        return found + [t for value in node.values() for t in targets(value)]
    if isinstance(node, list):
        return [t for value in node for t in targets(value)]
    return []


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(CONFIG_DIR)))
def test_every_target_of_the_project_in_conf_can_be_imported(path):
    for target in targets(OmegaConf.to_container(OmegaConf.load(path))):
        if target.startswith("fmnist_lightning."):
            assert pydoc.locate(target) is not None, f"{path.name}: {target}"


def test_checkpoint_paths_come_from_one_value_that_the_code_agrees_with(tmp_path):
    cfg = compose_config("train", [f"paths.run_dir={tmp_path}"])
    assert cfg.paths.checkpoint_dir == str(tmp_path / run_files.CHECKPOINT_DIR)
    raw = OmegaConf.to_container(cfg.callbacks, resolve=False)
    dirpaths = {name: c["dirpath"] for name, c in raw.items() if c and "dirpath" in c}
    assert set(dirpaths) == {"model_checkpoint", "last_checkpoint", "graceful_interrupt"}
    assert set(dirpaths.values()) == {"${paths.checkpoint_dir}"}
    last = cfg.callbacks.last_checkpoint.filename
    assert last == cfg.callbacks.graceful_interrupt.filename == run_files.LAST_CHECKPOINT


@pytest.mark.parametrize("model", known_models())
def test_every_model_config_declares_the_network_and_its_run_time_keys(model, tmp_path):
    cfg = compose_config("train", [f"paths.run_dir={tmp_path}", f"model={model}"])
    assert set(cfg.model) == {"net", "channels_last", "compile", "weights", "init_from", "head_lr"}
    assert cfg.model.net._target_ in registry.NETWORKS


def test_keys_the_code_reads_are_declared(tmp_path):
    cfg = compose_config("train", [f"paths.run_dir={tmp_path}"])
    assert "float32_matmul_precision" in cfg and cfg.float32_matmul_precision is None
    assert set(cfg.scheduler) == {"interval", "schedule"}
    none = compose_config("train", [f"paths.run_dir={tmp_path}", "scheduler=none"]).scheduler
    assert (none.interval, none.schedule) == ("epoch", None)
