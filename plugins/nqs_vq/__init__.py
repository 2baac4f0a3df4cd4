"""VQ-NQS (Sharir et al. 2022): vector-quantised transformer wave functions with compressed local energies."""

from nqs_core import lazy_exports as _lazy_exports

# Public names, imported on first use (see nqs_core._lazy): importing the
# package, as the plugin registration does, imports none of its models.
__getattr__, __dir__, __all__ = _lazy_exports(
    __name__,
    {
        "._quantizer": ["code_usage", "codes", "lookup", "quantize", "replace_dead_codes", "squared_distances", "straight_through_reference"],
        "._ansatz": ["VQTransformer"],
        "._distill": ["calibrate_capacity", "distill", "log_amplitude_mismatch", "revive_dead_codes", "timed", "vq_from_baseline"],
        "._cost": ["local_energy_flops", "xla_flops"],
    },
)
