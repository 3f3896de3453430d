"""Thin Ray entry points, above the library: `python -m lam_platform.ray_jobs.pretrain|finetune|score|evaluate`.

Job configs: `lam_platform/ray_jobs/configs/<name>.yaml` (`--config demo|quality|tiny|gpu|ml1m` or a path).
"""
