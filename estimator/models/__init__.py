"""Model catalog: Hugging Face configs -> ModelSpec."""
from estimator.models.catalog import catalog_ids, load_model
from estimator.models.hf_config import SUPPORTED, parse_config
from estimator.models.spec import AttentionKind, ModelSpec

__all__ = ["load_model", "catalog_ids", "parse_config", "SUPPORTED", "ModelSpec", "AttentionKind"]
