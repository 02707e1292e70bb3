"""Random override strings: checking, composing and validating them gives a config or a
clear error (a Hydra error or ConfigValidationError), never another exception.

The steps are those of the command line: check_overrides (the malformed group overrides
that Hydra 1.3 would crash on), Hydra's composition in struct mode, then validate_config.
"""

from pathlib import Path

from hydra.errors import HydraException
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fmnist_lightning.config.overrides import check_overrides
from fmnist_lightning.config.schema import ConfigValidationError, validate_config
from helpers.compose import compose

# Real keys (so that values reach the schema), near misses, groups and made-up names.
KEYS = [
    "seed",
    "label_smoothing",
    "ckpt_path",
    "data.batch_size",
    "data.val_fraction",
    "data.root",
    "data.mean",
    "data.augment",
    "model.net.dropout",
    "model.net._target_",
    "model.net.blocks",
    "model.channels_last",
    "model.init_from",
    "optimizer.lr",
    "optimizer.weight_decay",
    "trainer.max_epochs",
    "trainer.precision",
    "callbacks.early_stopping.patience",
    "callbacks.model_checkpoint",
    "data.batchsize",
    "trainer.max_epoch",
    "model.dropout",
    "model._target_",
    "model",
    "optimizer",
    "scheduler",
    "experiment",
    "data",
    "hydra.job.name",
]
VALUES = [
    "0",
    "-1",
    "1",
    "0.5",
    "1e-3",
    "-1e-3",
    "1e400",
    "nan",
    "inf",
    "-inf",
    "true",
    "null",
    "''",
    "abc",
    "[1,2]",
    "[]",
    "{a: 1}",
    "{}",
    "cnn",
    "adam",
    "none",
    "standard",
    "seed_keras",
    "resnet50",
    "${seed}",
    "${nope}",
    "${oc.env:FMNIST_FUZZ_UNSET}",
    "${oc.env:FMNIST_FUZZ_UNSET,3}",
    "${}",
    "torch.nn.Linear",
    "no.such.Net",
    "'quoted value'",
    "a=b",
    "\\",
]
# Mostly printable ASCII (what people type), sometimes any character that UTF-8 can carry.
SAFE_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12) | st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6
)

structured_override = st.builds(
    lambda prefix, key, value: f"{prefix}{key}={value}",
    st.sampled_from(["", "", "", "+", "++", "~"]),
    st.sampled_from(KEYS),
    st.one_of(
        st.sampled_from(VALUES),
        st.sampled_from(VALUES),
        st.floats().map(str),
        st.integers().map(str),
        SAFE_TEXT,
    ),
)
# Whole overrides of random characters, '=' or not.
random_override = SAFE_TEXT | st.builds(lambda key, value: f"{key}={value}", SAFE_TEXT, SAFE_TEXT)


FUZZ_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI never fails by chance
    database=None,  # no .hypothesis/ folder written into the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def assert_config_or_clear_error(overrides: list[str], run_dir: Path) -> None:
    """Check, compose and validate as the command line does; only clear errors may come out."""
    try:
        check_overrides(overrides)
    except ConfigValidationError as error:
        event("malformed override")
        assert str(error).startswith("Invalid override: ") and "\n" not in str(error)
        return
    try:
        cfg = compose("train", [f"paths.run_dir={run_dir}", *overrides])
    except HydraException as error:  # parse errors, unknown keys, unknown group options
        event(f"Hydra error: {type(error).__name__}")
        assert str(error).strip()
        return
    try:
        validate_config(cfg)
        event("valid config")
    except ConfigValidationError as error:
        event("invalid config")
        message = str(error)
        assert message.startswith("Invalid config: ") and "\n" not in message


@FUZZ_SETTINGS
@given(overrides=st.lists(structured_override, min_size=1, max_size=3))
def test_overrides_of_real_keys_give_a_config_or_a_clear_error(tmp_path, overrides):
    assert_config_or_clear_error(overrides, tmp_path)


@FUZZ_SETTINGS
@given(overrides=st.lists(random_override | structured_override, min_size=1, max_size=2))
def test_random_text_gives_a_config_or_a_clear_error(tmp_path, overrides):
    assert_config_or_clear_error(overrides, tmp_path)
