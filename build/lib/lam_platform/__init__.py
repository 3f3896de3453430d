"""LAM platform: 4W1H events, simulator, sequences, Feast glue, scoring and the `lam` CLI."""
