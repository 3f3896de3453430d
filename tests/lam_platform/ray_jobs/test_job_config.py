"""Job YAML is typed: every shipped config loads, and a typo fails at load with the key named."""

import pytest
import yaml

from lam_platform.core.errors import UserError
from lam_platform.core.packaged import job_config_path
from lam_platform.ray_jobs.job_config import JobConfig


@pytest.mark.parametrize("name", ["demo", "quality", "tiny", "gpu", "ml1m"])
def test_every_shipped_config_loads(name):
    job = JobConfig.load(name)
    assert job.pretrain.epochs >= 1 and job.scaling.num_workers >= 1


def _with(tmp_path, edit) -> str:
    values = yaml.safe_load(job_config_path("tiny").read_text())
    edit(values)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


@pytest.mark.parametrize(
    "edit, named",
    [
        (lambda v: v["pretrain"].update(epoch=v["pretrain"].pop("epochs")), "pretrain.epoch"),
        (lambda v: v["finetune"].update(learning_rate="fast"), "finetune.learning_rate"),
        (lambda v: v["model"].update(d_modle=16), "d_modle"),
        (lambda v: v.update(target={"snapshot": 3}), "snapshot"),
        (lambda v: v.update(scalling={"num_workers": 1}), "scalling"),
        (lambda v: v["pretrain"].update(target_sampling="newest"), "pretrain.target_sampling"),
    ],
)
def test_a_typo_fails_at_load_and_names_the_key(tmp_path, edit, named):
    with pytest.raises(UserError, match=named):
        JobConfig.load(_with(tmp_path, edit))


def test_update_defaults_to_the_finetune_stage_and_a_missing_finetune_is_named():
    assert JobConfig.load("tiny").update_stage == JobConfig.load("tiny").finetune
    with pytest.raises(UserError, match="no `finetune:` section"):
        _ = JobConfig.load("ml1m").finetune_stage
