"""TrainConfig: checked fields with help text, presets, and exact round trips through dicts and the command line."""
import argparse
import dataclasses

import pytest
from transformers import HfArgumentParser

from llmcourse import CourseError
from llmcourse.cli import train as train_command
from llmcourse.training.config import TrainConfig, config_from_args, field_help, field_names

CHANGED = TrainConfig(learning_rate=3e-4, lr_scheduler_type="warmup_stable_decay", warmup_ratio=0.25, max_steps=17,
                      per_device_train_batch_size=4, gradient_accumulation_steps=3, lora=True, lora_r=8,
                      answer_only=False, max_eval_samples=None, precision="fp32", run_name="x-1", save_model=False)


def parse(argv):
    parser = argparse.ArgumentParser(parents=train_command.parents())  # as the CLI builds `llmcourse train`
    train_command.add_arguments(parser)
    return config_from_args(parser.parse_args(argv))


def test_every_field_has_help_text():
    for f in dataclasses.fields(TrainConfig):
        assert len(f.metadata["help"]) > 15, f.name


def test_field_names_follow_training_arguments():
    from transformers import TrainingArguments

    shared = {"learning_rate", "lr_scheduler_type", "num_train_epochs", "max_steps", "per_device_train_batch_size",
              "gradient_accumulation_steps", "weight_decay", "max_grad_norm", "seed", "eval_steps", "save_steps",
              "save_total_limit", "output_dir", "run_name"}
    assert shared <= set(field_names())
    assert shared <= {f.name for f in dataclasses.fields(TrainingArguments)}


def test_cli_round_trip_is_exact():
    small = TrainConfig(answer_only=False, max_eval_samples=None, learning_rate=3e-4, lora=True)
    assert small.to_args() == ["--no-answer-only", "--max-eval-samples", "None", "--learning-rate", "0.0003", "--lora"]
    assert parse(CHANGED.to_args()) == CHANGED
    assert parse([]) == TrainConfig()


def test_underscore_and_dash_flags_both_work():
    a = parse(["--learning-rate", "2e-5", "--lora", "--max-steps", "5"])
    b = parse(["--learning_rate", "2e-5", "--lora", "--max_steps", "5"])
    assert a == b == TrainConfig(learning_rate=2e-5, lora=True, max_steps=5)


def test_hf_argument_parser_reads_the_same_flags():
    (cfg,) = HfArgumentParser(TrainConfig).parse_args_into_dataclasses(
        ["--learning_rate", "3e-4", "--lora", "--lora_r", "8", "--max_steps", "17"])
    assert cfg == TrainConfig(learning_rate=3e-4, lora=True, lora_r=8, max_steps=17)
    assert "--learning_rate" in HfArgumentParser(TrainConfig).format_help()


def test_bad_choice_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        parse(["--lr-scheduler-type", "cosine_annealing"])
    assert "invalid choice" in capsys.readouterr().err


def test_dict_round_trip_and_unknown_keys():
    assert TrainConfig.from_dict(CHANGED.to_dict()) == CHANGED
    with pytest.raises(CourseError, match="lerning_rate"):
        TrainConfig.from_dict({"lerning_rate": 1e-4})
    with pytest.raises(CourseError, match="no field"):
        CHANGED.replace(epochs=3)


@pytest.mark.parametrize("field, value, says", [
    ("learning_rate", 0.0, "positive"), ("learning_rate", float("nan"), "positive"),
    ("lr_scheduler_type", "cosine_annealing", "one of"), ("warmup_ratio", 1.0, "below 1"),
    ("max_steps", 0, "-1"), ("per_device_train_batch_size", 0, "at least 1"), ("precision", "int8", "one of"),
])
def test_invalid_values_name_the_field(field, value, says):
    with pytest.raises(CourseError, match=f"TrainConfig.{field}=.*{says}"):
        TrainConfig(**{field: value})


def test_fast_preset_and_overrides():
    fast = TrainConfig.fast(lora=True)
    assert (fast.model, fast.max_steps, fast.lora) == ("tiny-random", 6, True)
    assert TrainConfig.laptop().lora and TrainConfig.laptop(lora=False).lora is False


def test_run_name_comes_from_the_settings():
    assert TrainConfig(learning_rate=2.5e-4).name == "full-lr2.5e-04-cosine-1ep"
    assert TrainConfig(lora=True, lora_r=64, learning_rate=1e-3, lr_scheduler_type="linear", max_steps=30).name == \
        "lora-r64-lr1e-03-linear-30steps"
    assert TrainConfig(run_name="mine").name == "mine"


def test_field_help_is_what_the_widgets_show():
    assert field_help("learning_rate").startswith("Peak learning rate")
