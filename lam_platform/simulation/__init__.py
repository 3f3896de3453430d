"""The simulator: one source system among others, plus the evaluation only a simulated world allows.

`world_writer` generates a 4W1H world (configured by `world`; drawn by `customers`, `campaign_waves`
and `touchpoints`, priced by `catalogue`) with known ground truth (`ground_truth`), a legacy segment
policy and random exploration (`policies`), and writes it as raw source tables (`raw_export`) that
`lam ingest` takes like any team's data. `evaluation` and `evaluation_report` score policies against
the ground truth (the oracle rows of `lam summary`, the policy table of `lam evaluate` on a simulated
world).

Nothing outside this package imports it except the entry points that run the simulator (the CLI's
simulate, demo, summary and simulate-loop commands, the demo pipeline): an import-linter contract in
CI (pyproject.toml) holds that line.
"""
