"""Several values after one flag (clsctl.cli._multi_value)."""

from clsctl.cli._multi_value import expand_multi_values

OPTS = {"--keys", "-k"}


def test_values_run_until_the_next_flag() -> None:
    assert expand_multi_values(["a.jsonl", "--keys", "loss", "accuracy/top1", "--title", "t"], OPTS) == [
        "a.jsonl", "--keys", "loss", "--keys", "accuracy/top1", "--title", "t"]


def test_single_value_short_flag_and_negative_numbers() -> None:
    assert expand_multi_values(["-k", "loss", "x"], OPTS) == ["-k", "loss", "-k", "x"]
    assert expand_multi_values(["--keys", "-1", "2"], OPTS) == ["--keys", "-1", "--keys", "2"]


def test_double_dash_ends_the_values() -> None:
    assert expand_multi_values(["--keys", "loss", "--", "run.jsonl"], OPTS) == ["--keys", "loss", "run.jsonl"]
    assert expand_multi_values(["--", "--keys"], OPTS) == ["--", "--keys"]


def test_other_options_untouched() -> None:
    args = ["--title", "a b", "--keys=loss", "log"]
    assert expand_multi_values(args, OPTS) == args
    assert expand_multi_values(["--keys"], OPTS) == ["--keys"]  # click reports the missing value


def test_old_flag_spellings_are_renamed() -> None:
    from clsctl.cli._multi_value import rename_flags

    renamed = {"--save-path": "--out"}
    assert rename_flags(["img.png", "--save-path", "a.png", "--save-path=b.png", "--", "--save-path"], renamed) == [
        "img.png", "--out", "a.png", "--out=b.png", "--", "--save-path"]
