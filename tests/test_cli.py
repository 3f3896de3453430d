import pytest
from click.testing import CliRunner

from lam_platform.cli import main
from ray_jobs.training import JobConfig

COMMANDS = ["simulate", "materialize", "pretrain", "finetune", "score", "summary", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_step_has_help_that_says_what_it_does(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "--workdir" in result.output and "--json" in result.output


def test_a_step_on_an_empty_workdir_says_what_to_run_first(tmp_path):
    result = CliRunner().invoke(main, ["materialize", "--workdir", str(tmp_path)])
    assert result.exit_code != 0
    assert "lam simulate" in str(result.exception)


def test_job_config_rejects_unknown_sections(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("model: {}\npretrain: {}\nfinetune: {}\nscalling: {}\n")
    with pytest.raises(ValueError, match="scalling"):
        JobConfig.load(path)
