"""The pseudonymization key: where it comes from, what happens without it, and that it never shows."""

import pandas as pd
import pytest
from click.testing import CliRunner

from lam_platform.cli.main import main
from lam_platform.data.pseudonyms import KEY_ENV, KEY_FILE_ENV, Pseudonymizer, PseudonymKeyError, check_pseudonyms

KEY = "a-key-of-at-least-sixteen-bytes"


def test_the_key_comes_from_the_environment_or_a_secret_file(monkeypatch, tmp_path):
    monkeypatch.setenv(KEY_ENV, KEY)
    from_env = Pseudonymizer.from_env()
    monkeypatch.delenv(KEY_ENV)
    (tmp_path / "key").write_text(KEY + "\n")
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "key"))
    from_file = Pseudonymizer.from_env()
    assert from_env.pseudonym("CUST-1") == from_file.pseudonym("CUST-1")
    assert from_env.pseudonym("CUST-1") != Pseudonymizer(b"another-key-of-16-bytes").pseudonym("CUST-1")
    assert len(from_env.pseudonym("CUST-1")) == 32 and KEY not in repr(from_env)
    column = from_env.column(pd.Series(["CUST-1", None, "CUST-1"]))
    assert column[0] == column[2] == from_env.pseudonym("CUST-1") and pd.isna(column[1])


def test_a_missing_or_short_key_is_refused_naming_where_to_put_it(monkeypatch, tmp_path):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    with pytest.raises(PseudonymKeyError, match=KEY_ENV):
        Pseudonymizer.from_env()
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "absent"))
    with pytest.raises(PseudonymKeyError, match="not a readable file"):
        Pseudonymizer.from_env()
    with pytest.raises(PseudonymKeyError, match="at least 16"):
        Pseudonymizer(b"short")


def test_commands_that_take_raw_ids_need_the_key_and_keep_raw_tables_out_of_the_workdir(monkeypatch, tmp_path):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    runner = CliRunner()
    no_key = runner.invoke(main, ["simulate", "--workdir", str(tmp_path / "w"), "--customers", "10"])
    assert no_key.exit_code != 0 and KEY_ENV in no_key.output and not (tmp_path / "w").exists()
    monkeypatch.setenv(KEY_ENV, KEY)
    inside = runner.invoke(
        main,
        ["simulate", "--workdir", str(tmp_path / "w"), "--customers", "10", "--sources", str(tmp_path / "w" / "raw")],
    )
    assert inside.exit_code != 0 and "outside the workdir" in inside.output


def test_non_pseudonyms_are_refused_by_position_without_echoing_the_value():
    good = Pseudonymizer(KEY.encode()).pseudonym("CUST-1")
    assert check_pseudonyms([good]) == [good]
    with pytest.raises(ValueError, match="position 1") as error:
        check_pseudonyms([good, "CUST-000042"])
    assert "CUST-000042" not in str(error.value)
