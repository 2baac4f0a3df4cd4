"""Lattice phi^4 in 1+1 D with neural control variates (Bedaque and Oh 2024)."""

from nqs_core import lazy_exports as _lazy_exports

# Public names, imported on first use (see nqs_core._lazy): importing the
# package, as the plugin registration does, imports none of its models.
__getattr__, __dir__, __all__ = _lazy_exports(
    __name__,
    {
        "._space": ["Phi4Field"],
        "._system": ["Phi4Action"],
        "._fit": ["FitResult", "cosh_model", "fit_correlator"],
        "._observables": ["blocking_errors", "correlator", "correlator_at", "effective_mass", "generate_configurations", "integrated_autocorrelation", "jackknife", "load_configurations", "save_configurations"],
        "._sampler": ["HMC", "HMCState", "MetropolisField", "CheckerboardRule"],
        "._cv": ["ControlVariate", "CVNetwork", "variance_ratio"],
        "._train": ["cv_loss", "fit_output_layer", "linear_start", "l2_norm", "paper_schedule", "train_control_variate"],
        "._transfer": ["transfer_train"],
        "._driver": ["ControlVariateDriver", "CVTrainState"],
        "._analysis": ["correlator_table", "load_control_variates", "plot_correlators", "save_control_variates"],
    },
)
