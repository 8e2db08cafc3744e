"""The host run pipeline: staging, following the agent, ingestion, and
`pipeline.run_experiment`, the entry point. Device links are `orchestrator.links`."""
