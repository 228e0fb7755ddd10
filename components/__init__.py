"""Kubeflow Pipelines components: one thin wrapper per tagcode stage, each in its stage's container image."""
