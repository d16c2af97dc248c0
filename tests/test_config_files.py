"""Config files and config values nobody vouched for (issue 17, findings 1, 3, 10, 11): bounded YAML,
numbers read as meant, every value checked where declared, sizes checked before anything is allocated."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from gymnasium import spaces

from trpo.cli.main import main
from trpo.config.safe_yaml import MAX_NODES, load_yaml_text
from trpo.config.schema import TRPOConfig, load_yaml_config
from trpo.errors import ConfigError
from trpo.run import resources
from trpo.run.resources import check_fits

ALIAS_BOMB = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
)


def one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str], *fragments: str) -> str:
    """Run `trpo argv`; assert exit 2 and exactly one stderr line, an error containing `fragments`."""
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# --- finding 1: a 444-byte alias bomb, a non-UTF-8 file


def test_alias_bomb_in_config_is_refused_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 450  # the 444-byte class of file that ran 60 s and took 4 GB
    start = time.perf_counter()
    line = one_error_line(capsys, ["train", "CartPole-v1", "--config", str(path)], "bomb.yaml", "aliases")
    assert time.perf_counter() - start < 5 and len(line) < 300


def test_alias_bomb_as_a_value_is_refused(tmp_path: Path) -> None:
    bomb = ALIAS_BOMB + "\nhidden_sizes: *i\n"
    with pytest.raises(ConfigError, match="aliases"):
        load_yaml_text(bomb, "x.yaml")


def test_moderate_aliases_are_still_read() -> None:
    assert load_yaml_text("a: &s [64, 64]\nhidden_sizes: *s\n", "x")["hidden_sizes"] == [64, 64]


def test_self_referencing_alias_and_deep_nesting_are_refused() -> None:
    with pytest.raises(ConfigError, match="refers to itself"):
        load_yaml_text("a: &a [*a]", "x")
    with pytest.raises(ConfigError, match="too deeply"):
        load_yaml_text("[" * 10_000 + "]" * 10_000, "x")


def test_an_oversized_config_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="at most"):
        load_yaml_config(path)


def test_non_utf8_config_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("max_kl: 0.01 # d\xe9faut\n".encode("latin-1"))
    one_error_line(capsys, ["train", "CartPole-v1", "--config", str(path)], "not UTF-8", "latin1.yaml")


def test_expanding_value_in_an_error_is_quoted_short() -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml_config_text("max_kl: " + "[" + ", ".join(["1"] * 5000) + "]")
    assert len(str(info.value)) < 300


def load_yaml_config_text(text: str) -> TRPOConfig:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.yaml"
        path.write_text(text)
        return load_yaml_config(path)


def test_scientific_notation_is_the_number_it_looks_like() -> None:
    config = load_yaml_config_text("vf_lr: 1e-2\ncg_tol: 1E-8\ntotal_steps: 100000\n")
    assert config.vf_lr == 0.01 and config.cg_tol == 1e-8


def test_a_quoted_number_is_refused_with_the_hint() -> None:
    with pytest.raises(ConfigError, match="without quotes"):
        load_yaml_config_text('vf_lr: "1e-2"\n')


# --- finding 10: NaN / inf / absurd values refused where declared


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--log-std-init", "nan"], "log_std_init must be a finite number"),
        (["--vf-lr", "inf"], "vf_lr must be a finite number"),
        (["--torch-threads", "100000"], "torch_threads must be"),
        (["--seed", "-1"], "seed must be"),
        (["--seed", str(2**64 + 1)], "seed must be"),
    ],
)
def test_values_refused_where_declared(flags: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    one_error_line(capsys, ["train", "CartPole-v1", *flags], fragment)


def test_nan_in_a_config_file_is_refused() -> None:
    with pytest.raises(ConfigError, match="finite"):
        load_yaml_config_text("vf_lr: .inf\n").validate()


# --- finding 3: sizes before allocation (command line and YAML)


def test_huge_batch_from_the_command_line_is_refused_before_allocating(capsys: pytest.CaptureFixture[str]) -> None:
    start = time.perf_counter()
    one_error_line(
        capsys, ["train", "CartPole-v1", "--n-envs", "100000000", "--n-steps", "100000"], "needs about", "available"
    )
    assert time.perf_counter() - start < 10


def test_huge_networks_are_refused_before_allocating(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "wide.yaml"
    path.write_text("hidden_sizes: [8000, 8000]\n")
    start = time.perf_counter()
    one_error_line(capsys, ["train", "CartPole-v1", "--config", str(path)], "parameters", "hidden sizes")
    assert time.perf_counter() - start < 10  # it used to initialise 64M weights for 34 s first


def test_memory_estimate_against_what_is_available(monkeypatch: pytest.MonkeyPatch) -> None:
    box, discrete = spaces.Box(-1, 1, (4,)), spaces.Discrete(2)
    small = TRPOConfig(n_envs=4, n_steps=32)
    estimate = check_fits(small, box, discrete)
    assert 0 < estimate.total < 64 << 20
    monkeypatch.setattr(resources, "available_memory", lambda: estimate.total - 1)
    with pytest.raises(ConfigError, match="needs about"):
        check_fits(small, box, discrete)
    monkeypatch.setattr(resources, "available_memory", lambda: None)  # unknown: only the hard caps apply
    assert check_fits(small, box, discrete).total == estimate.total


def test_process_workers_are_capped() -> None:
    many = resources.MAX_PROCESS_WORKERS * 2
    config = TRPOConfig(sampler="process", workers=many, n_envs=many)
    with pytest.raises(ConfigError, match="workers="):
        check_fits(config, spaces.Box(-1, 1, (4,)), spaces.Discrete(2))


def test_limits_are_far_above_what_real_configs_use() -> None:
    assert MAX_NODES >= 10_000
    big_but_real = TRPOConfig(n_envs=64, n_steps=2048, hidden_sizes=(400, 300))
    check_fits(big_but_real, spaces.Box(-1, 1, (376,)), spaces.Box(-1, 1, (17,)))
