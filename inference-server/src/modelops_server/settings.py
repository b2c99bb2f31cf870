"""The server's settings, from MODELOPS_* environment variables (the operator sets the model's)
or the command line."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELOPS_", extra="ignore")

    # The artifact's version directory (docs/artifact-contract.md).
    model_dir: Path
    # The name clients address the model by; the artifact's own name when unset.
    model_name: str | None = None
    # When set, the artifact must be this version.
    model_version: str | None = None
    # The digest model.joblib must have; metadata.json's when unset (a local run).
    model_sha256: str | None = None
    # The digest the compiled form (model.npz) must have, to be served without unpickling.
    # Unset while model_sha256 is set: the model file is unpickled (verified) instead, as no
    # one trusted vouches for the compiled one. Both unset (a local run): metadata.json's.
    compiled_sha256: str | None = None
    # The digest metadata.json must have (its features and classes decide every answer);
    # unchecked when unset (a local run, or a version recorded before the digest was kept).
    metadata_sha256: str | None = None
    # A model file in model_dir that came without a metadata.json (trained elsewhere): its
    # features and classes are read off the estimator, and model_sha256 is required.
    model_file: str | None = None
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=1, le=65535)
    # The Open Inference Protocol over gRPC, as KServe and MLServer serve it; 0: no gRPC.
    grpc_port: int = Field(default=8081, ge=0, le=65535)
    max_batch_rows: int = Field(default=10_000, ge=1)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Off: every model is served by scikit-learn itself (a comparison, or a suspected mismatch).
    compile: bool = True
    # Predictions by scikit-learn itself (models not compiled) run in worker threads, this
    # many at once, so the event loop (health probes, other requests) never waits on one; the
    # requests that arrive meanwhile are predicted together in the next call (batching.py).
    # One by default: a small batch's prediction is mostly Python holding the GIL, and more
    # threads at once only take turns at it (bench/server/compare_mlserver.py); more pay off for
    # large batches whose work releases it (KNN, SVC) on a pod with several cores.
    prediction_threads: int = Field(default=1, ge=1)
    # The model's versions, as the operator writes them into a mounted ConfigMap (its page's
    # history); read at each GET /history, as the kubelet replaces it. Unset: no history.
    history_file: Path | None = None
    log_level: str = "info"
