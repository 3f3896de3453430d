import pytest
from click.testing import CliRunner

from lam_platform.cli.main import main
from lam_platform.ray_jobs.job_config import JobConfig

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
    (tmp_path / "lam.yaml").write_text(
        "events:\n  channels:\n    shop: {files: [raw/a.csv], who: member, when: at, "
        "what: sku, how_value: view}\nconsent: analysis_only\n"
    )
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
    for args in (
        ["forget", "--pseudonymous", "0" * 32],
        ["purge", "--retention-days", "30"],
        ["consent", "--withdraw", "c1"],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and "--workdir" in result.output, result.output
    monkeypatch.setenv("LAM_WORKDIR", str(tmp_path))
    result = CliRunner().invoke(main, ["evaluate", "--as-of", "2010-10-01T00:00:00+00:00", "--json"])
    assert result.exit_code == 2
    error = json.loads(result.output.strip().splitlines()[-1])
    assert "lam init" in error["error"] and error["hint"]


def _mistake_workdirs(root):
    """Workdirs a newcomer gets wrong: empty, a lam.yaml that is not YAML, a channel with an unknown key."""
    empty, bad_yaml, bad_key = root / "empty", root / "bad-yaml", root / "bad-key"
    for folder in (empty, bad_yaml, bad_key / "raw"):
        folder.mkdir(parents=True)
    (bad_yaml / "lam.yaml").write_text("events:\n  channels: [shop\n")
    (bad_key / "raw" / "a.csv").write_text("member,at,sku\nc1,2026-01-01T10:00:00Z,s\n")
    (bad_key / "lam.yaml").write_text(
        "events:\n  channels:\n    shop: {files: [raw/a.csv], who: member, when: at, "
        "what: sku, how_value: view, colour: sku}\nconsent: analysis_only\n"
    )
    (root / "not-parquet.parquet").write_text("id\n")
    return {"empty": empty, "bad-yaml": bad_yaml, "bad-key": bad_key, "root": root}


AS_OF = ["--as-of", "2010-10-01T00:00:00+00:00"]
# (command line with {placeholders}, what the one line must name)
MISTAKES = {
    "missing workdir": (["score", "--workdir", "{root}/typo"], "does not exist"),
    "YAML syntax error": (["ingest", "--workdir", "{bad-yaml}"], "not valid YAML at line 3"),
    "unknown channel key": (["ingest", "--workdir", "{bad-key}"], "unknown keys ['colour']"),
    "--as-of yesterday": (["materialize", "--workdir", "{empty}", "--as-of", "yesterday"], "'yesterday' is not a time"),
    "summary, empty workdir": (["summary", "--workdir", "{empty}"], "run `lam score"),
    "report, empty workdir": (["report", "--workdir", "{empty}"], "pass --as-of T"),
    "rollout, empty workdir": (["rollout", "--workdir", "{empty}", "--customer", "c1"], "run `lam pretrain`"),
    "pretrain, empty workdir": (["pretrain", "--workdir", "{empty}", *AS_OF], "lam init"),
    "finetune, empty workdir": (["finetune", "--workdir", "{empty}", *AS_OF], "lam init"),
    "score, empty workdir": (["score", "--workdir", "{empty}", *AS_OF], "lam init"),
    "unknown job config": (["pretrain", "--workdir", "{empty}", "--config", "fast"], "shipped names"),
    "unknown store profile": (["materialize", "--workdir", "{empty}", "--profile", "prod"], "shipped names"),
    "unreadable events file": (
        ["push", "--workdir", "{empty}", "--events", "{root}/not-parquet.parquet"],
        "not a readable Parquet file",
    ),
    "misspelled option": (["score", "--workdir", "{empty}", "--capacty", "5"], "No such option"),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_a_common_mistake_is_one_line_naming_the_input_and_exit_2(mistake, tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("LAM_PSEUDONYM_KEY", "a" * 64)
    places = {name: str(path) for name, path in _mistake_workdirs(tmp_path).items()}
    args, named = MISTAKES[mistake]
    args = [arg.format(**places) for arg in args]
    text = CliRunner().invoke(main, args)
    lines = [line for line in text.output.splitlines() if line.strip()]
    assert text.exit_code == 2 and len(lines) == 1 and named in lines[0], text.output
    as_json = CliRunner().invoke(main, [*args, "--json"])
    assert as_json.exit_code == 2, as_json.output
    error = json.loads(as_json.stdout.strip().splitlines()[-1])
    assert named in error["error"] and error["hint"], error
    assert not (tmp_path / "typo").exists()  # a mistyped workdir leaves nothing behind


def test_debug_shows_the_traceback_a_plain_run_hides(tmp_path):
    plain = CliRunner().invoke(main, ["summary", "--workdir", str(tmp_path)])
    assert plain.exit_code == 2 and "Traceback" not in plain.output
    debug = CliRunner().invoke(main, ["--debug", "summary", "--workdir", str(tmp_path)])
    assert isinstance(debug.exception, FileNotFoundError)  # raised, not turned into a line
