import pytest
from click.testing import CliRunner

from lam_platform.cli import main
from lam_platform.ray_jobs.training import JobConfig

COMMANDS = ["simulate", "ingest", "materialize", "pretrain", "finetune", "score", "evaluate", "summary", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_step_has_help_that_says_what_it_does(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "--workdir" in result.output and "--json" in result.output


@pytest.mark.parametrize("command", ["ingest", "materialize", "pretrain", "finetune", "evaluate"])
def test_a_step_on_a_workdir_without_lam_yaml_points_to_lam_init(command, tmp_path):
    result = CliRunner().invoke(main, [command, "--workdir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "lam init" in result.output and "lam simulate" not in result.output
    assert "Traceback" not in result.output


def test_job_config_rejects_unknown_sections(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("model: {}\npretrain: {}\nfinetune: {}\nscalling: {}\n")
    with pytest.raises(ValueError, match="scalling"):
        JobConfig.load(path)


def test_simulate_refuses_a_workdir_holding_a_teams_own_data_unless_forced(tmp_path):
    events = tmp_path / "w" / "feature_repo" / "data" / "events"
    events.mkdir(parents=True)
    (events / "part-0.parquet").write_bytes(b"ingested")
    result = CliRunner().invoke(main, ["simulate", "--workdir", str(tmp_path / "w"), "--customers", "10"])
    assert result.exit_code == 2 and "--force" in result.output and "did not come from the simulator" in result.output
    assert (events / "part-0.parquet").read_bytes() == b"ingested"  # nothing lost


def test_a_workdir_refuses_a_key_other_than_the_one_it_was_created_with(tmp_path, monkeypatch):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.csv").write_text("member,at,sku\nc1,2026-01-01T10:00:00Z,s\n")
    (tmp_path / "lam.yaml").write_text("events:\n  channels:\n    shop: {files: [raw/a.csv], who: member, when: at, "
                                       "what: sku, how_value: view}\nconsent: analysis_only\n")
    monkeypatch.setenv("LAM_PSEUDONYM_KEY", "a" * 64)
    first = CliRunner().invoke(main, ["ingest", "--workdir", str(tmp_path)])
    assert first.exit_code == 0, first.output
    monkeypatch.setenv("LAM_PSEUDONYM_KEY", "b" * 64)  # rotated, or another team's
    for args in (["ingest"], ["forget", "c1"], ["consent", "--withdraw", "c1"]):
        result = CliRunner().invoke(main, [*args, "--workdir", str(tmp_path)])
        assert result.exit_code == 2 and "not the key" in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_lam_version_names_the_installed_package():
    from importlib.metadata import version

    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and version("lam-platform") in result.output


def test_destructive_commands_need_a_named_workdir_and_json_errors_are_json(tmp_path, monkeypatch):
    import json

    monkeypatch.delenv("LAM_WORKDIR", raising=False)
    for args in (["forget", "--pseudonymous", "0" * 32], ["purge", "--retention-days", "30"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and "--workdir" in result.output, result.output
    monkeypatch.setenv("LAM_WORKDIR", str(tmp_path))
    result = CliRunner().invoke(main, ["evaluate", "--as-of", "2010-10-01T00:00:00+00:00", "--json"])
    assert result.exit_code == 2
    error = json.loads(result.output.strip().splitlines()[-1])
    assert "lam init" in error["error"] and error["kind"]
