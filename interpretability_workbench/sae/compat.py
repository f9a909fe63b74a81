"""The one rule for whether an SAE can read the loaded model: same base model (when the SAE records one),
same width, a layer the model has. Every service that puts an SAE on the live model asks here."""
from __future__ import annotations

from ..errors import BadRequest
from ..model.loader import LoadedModel
from .model import SparseAutoencoder


def check_sae_fits(lm: LoadedModel, sae: SparseAutoencoder, sae_id: str) -> None:
    """400 with what to do unless ``sae`` reads activations of ``lm``."""
    cfg = sae.cfg
    if cfg.model_id and cfg.model_id != lm.model_id:
        raise BadRequest(f"SAE {sae_id} was trained on {cfg.model_id!r} but the loaded model is "
                         f"{lm.model_id!r}; load it with POST /api/model {{\"name\": \"{cfg.model_id}\"}} "
                         "or pick an SAE of the loaded model")
    if cfg.d_in != lm.d_model:
        raise BadRequest(f"SAE {sae_id} reads d_in={cfg.d_in} activations but the loaded model has "
                         f"d_model={lm.d_model}; load the model the SAE was trained on")
    if cfg.layer >= lm.n_layers:
        raise BadRequest(f"SAE {sae_id} reads {cfg.hook_name} but the loaded model has only {lm.n_layers} layers "
                         f"(0..{lm.n_layers - 1})")
