"""The Kubeflow Pipelines DAG of tagcode: compile, submit to a cluster, or run locally."""
