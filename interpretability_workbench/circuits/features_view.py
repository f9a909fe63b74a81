"""A transcoder seen as an SAE over its features, for everything that analyses SAE features.

Feature analysis, labels, text activations, logit effects and neighbours read ``hook_name``, ``encode``,
``W_dec``, ``scale`` and ``d_sae``. For a transcoder: the encoder reads the MLP input
(``blocks.L.ln2.hook_normalized``), and decoder row ``f`` is what feature ``f`` writes into the residual
stream through the MLP output, so logit effects and decoder neighbours use ``W_dec`` exactly as an SAE's.
``decode`` is the transcoder's output without its skip term. The view shares the transcoder's tensors.
"""
from __future__ import annotations

from torch import Tensor, nn

from ..sae.config import SAEConfig
from ..sae.model import SparseAutoencoder
from .transcoder import Transcoder

_ARCH = {"topk": "topk", "jumprelu": "jumprelu", "relu": "standard"}


class TranscoderFeatures(SparseAutoencoder):
    def __init__(self, tc: Transcoder) -> None:
        nn.Module.__init__(self)  # no fresh weights: the view holds the transcoder's own parameters
        t = tc.cfg
        self.cfg = SAEConfig(
            d_in=t.d_in, d_sae=t.d_tc, architecture=_ARCH[t.architecture], k=t.k if t.architecture == "topk" else None,
            hook_name=t.input_hook, model_id=t.model_id, model_revision=t.model_revision,
            model_class_name=t.model_class_name, context_size=t.context_size, dataset_path=t.dataset_path,
            apply_b_dec_to_input=False, normalize_activations="none",
            extra={**t.extra, "kind": "transcoder", "output_hook": t.output_hook, "skip": t.skip,
                   "transcoder_architecture": t.architecture})
        self.transcoder_architecture = t.architecture
        self.W_enc, self.b_enc, self.W_dec, self.b_dec = tc.W_enc, tc.b_enc, tc.W_dec, tc.b_dec
        self.threshold = tc.threshold

    def activation(self, pre: Tensor) -> Tensor:
        """The transcoder's own rule (a JumpReLU transcoder passes ``pre`` itself above its threshold)."""
        if self.transcoder_architecture == "jumprelu":
            return pre * (pre > self.threshold)
        return super().activation(pre)


def feature_view(tc: Transcoder) -> TranscoderFeatures:
    return TranscoderFeatures(tc)
