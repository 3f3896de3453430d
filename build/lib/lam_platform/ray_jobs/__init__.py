"""Thin Ray entry points: `python -m lam_platform.ray_jobs.pretrain|finetune --config lam_platform/ray_jobs/configs/<name>.yaml`."""
