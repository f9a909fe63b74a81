"""SAE evaluations beside the training metrics: feature absorption (first-letter task), k-sparse probing on
tasks built from the built-in corpus, the activation-density histogram, and a synthetic ground-truth check of
the trainer. Each returns a dataclass result with ``to_dict()``; nothing here touches the server or the
database."""
from .absorption import AbsorptionConfig, AbsorptionResult, absorption, absorption_from_activations
from .density import DensityResult, density_from_activations, density_histogram
from .sparse_probing import SparseProbingConfig, SparseProbingResult, probe_task, sparse_probing
from .suite import EVALS, SAEEvaluation, compare, compare_summaries, evaluate_sae
from .synthetic import SyntheticResult, SyntheticTrainConfig, synthetic_ground_truth
from .synthetic_data import SyntheticConfig, match_features

__all__ = [
    "AbsorptionConfig", "AbsorptionResult", "absorption", "absorption_from_activations",
    "DensityResult", "density_from_activations", "density_histogram",
    "SparseProbingConfig", "SparseProbingResult", "probe_task", "sparse_probing",
    "EVALS", "SAEEvaluation", "compare", "compare_summaries", "evaluate_sae",
    "SyntheticResult", "SyntheticTrainConfig", "synthetic_ground_truth", "SyntheticConfig", "match_features",
]
