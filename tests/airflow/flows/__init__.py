"""Pipelines the Airflow end-to-end tests run (their code reaches workers by code archive)."""
