"""Preconditioners (SR, SRt, MinSR) and optax optimizers."""

from nqs_core import lazy_exports as _lazy_exports

# Public names, imported on first use (see nqs_core._lazy): importing the
# package, as the plugin registration does, imports none of its models.
__getattr__, __dir__, __all__ = _lazy_exports(
    __name__,
    {
        "._optimizers": ["adam", "adamw", "make_schedule", "rmsprop", "sgd"],
        "._sr": ["SR", "gram", "gram_threads", "real_sample_matrix", "solve_sr"],
        "._srt": ["MinSR", "SRt", "solve_srt"],
        "._kfac": ["KFAC", "compatible_kfac_jax"],
        "._dgd": ["DGD", "dgd_metric", "score_jacobian"],
        "._optimal_step": ["OptimalStep", "fisher_products", "optimal_coefficients"],
    },
)
