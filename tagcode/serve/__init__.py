"""The search service: a champion model, its database codes and faiss index, served over HTTP with a web page.

- ``catalog``: the dataset side shared by every champion (manifest ids, splits and tags, the decoded-image
  cache for thumbnails, ground truth for the page's relevance marks, tag vectors, the features' backbone);
- ``champions``: loading a champion from the MLflow registry (``models:/<name>@champion``) or from a model
  directory with its codes;
- ``engine``: the searches (by image, by tag words, by image id) over the faiss index ``encode`` exports;
- ``app``: the FastAPI app (OpenAPI schema, 4xx JSON errors, Prometheus metrics, the static page).

Only ``tagcode.cli`` imports this package; it imports the lower layers (data, tags, methods, retrieval,
tracking) and nothing imports it back.
"""
