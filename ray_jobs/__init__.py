"""Thin Ray entry points: `python -m ray_jobs.pretrain|finetune --config ray_jobs/configs/<name>.yaml`."""
