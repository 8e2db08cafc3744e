"""The host run pipeline: device links (`link`, `local_link`), staging, following the agent,
ingestion, and `pipeline.run_experiment`, the entry point."""
